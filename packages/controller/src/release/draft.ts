import type { Observations } from './observations.js';
import { type Phase, TRANSITIONS } from './phases.js';
import { MAX_EVENTS, type Release, type ReleaseEvent, type ReleaseStatus } from './status.js';

export interface Outcome {
  status: ReleaseStatus;
  events: ReleaseEvent[];
}

/** A copy of a release's status being changed, with the events the change makes. */
export class Draft {
  readonly status: ReleaseStatus;
  readonly events: ReleaseEvent[] = [];

  constructor(
    readonly release: Release,
    readonly now: number,
    readonly actor: string,
  ) {
    this.status = structuredClone(release.status);
  }

  event(type: ReleaseEvent['type'], reason: string, message: string): void {
    this.events.push({
      time: new Date(this.now).toISOString(),
      type,
      reason,
      message,
      actor: this.actor,
      phase: this.status.phase,
    });
  }

  phase(next: Phase, reason: string, message: string, type: ReleaseEvent['type'] = 'Normal'): void {
    const from = this.status.phase;
    if (from === next) return;
    if (!TRANSITIONS[from].includes(next)) throw new Error(`no transition ${from} -> ${next}`);
    this.status.phase = next;
    this.event(type, reason, `${from} -> ${next}: ${message}`);
  }

  /** The routing changed: what depends on it waits until every proxy applied the next revision. */
  routingChanged(): void {
    this.status.awaitRevision = -1;
  }

  settled(observations: Observations): boolean {
    return this.status.awaitRevision >= 0 && observations.applied(this.status.awaitRevision);
  }

  /** The next step starts now; an analysis of the last one is over. */
  nextStep(): void {
    this.status.step += 1;
    this.status.stepStartedAt = new Date(this.now).toISOString();
    if (this.status.analysis) delete this.status.analysis.since;
  }

  /** Every service switches to its canary in one routing change; the entry split goes away with it. */
  promote(): void {
    for (const service of Object.values(this.status.services)) {
      if (service.canary === 'routed') service.canary = 'promoted';
    }
    // The split is over: every request of the entry now reaches the new versions as stable.
    this.status.entryRouted = false;
    this.status.weight = 0;
    this.status.awaitingApproval = false;
    delete this.status.pausedFor;
    this.routingChanged();
  }

  /** Rolls back, for `failure` or because a user asked (none given). */
  startRollback(failure?: string): void {
    const { status } = this;
    if (failure !== undefined) status.failure = failure;
    for (const service of Object.values(status.services)) {
      if (service.canary === 'promoted') service.canary = 'routed';
    }
    status.awaitingApproval = false;
    delete status.pausedFor;
    this.phase(
      'RollingBack',
      failure ? 'Failed' : 'RollbackRequested',
      failure ?? 'rollback requested',
      failure ? 'Warning' : 'Normal',
    );
  }

  finish(): Outcome {
    if (this.events.length > 0) {
      this.status.updatedAt = new Date(this.now).toISOString();
      this.status.events = [...this.status.events, ...this.events].slice(-MAX_EVENTS);
    }
    return { status: this.status, events: this.events };
  }
}
