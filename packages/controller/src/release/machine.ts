import { parseDuration } from '../documents/duration.js';
import { ControllerError } from '../errors.js';
import { deployOrder } from './order.js';
import { type Phase, TRANSITIONS } from './phases.js';
import {
  type AnalysisStatus,
  type CheckResult,
  type GateType,
  MAX_EVENTS,
  MAX_INTERVALS,
  type Release,
  type ReleaseEvent,
  type ReleaseStatus,
} from './status.js';
import { releaseSteps } from './steps.js';

/** What the platform says of one canary workload. */
export type CanaryHealth = 'absent' | 'starting' | 'ready' | 'unready' | 'failed';

export interface CanaryObservation {
  health: CanaryHealth;
  message?: string;
}

/** Everything `advance` may look at besides the release itself: no I/O behind it. */
export interface Observations {
  now: number;
  canaries: Readonly<Record<string, CanaryObservation>>;
  /** Whether every watching proxy has applied this route-table revision. */
  applied(revision: number): boolean;
  /** The latest analysis interval the driver measured for this release, if any. */
  analysis?: MeasuredInterval;
  /** The latest answer of the webhooks of the gate the release waits on (`status.analysis.gate`). */
  gate?: GateOutcome;
}

export interface GateOutcome {
  type: GateType;
  /** When the answer came (epoch milliseconds). */
  at: number;
  ok: boolean;
  reason?: string;
}

/** What the driver measured over one window (epoch milliseconds). */
export interface MeasuredInterval {
  from: number;
  to: number;
  checks: CheckResult[];
  /** A rollback webhook answered 2xx: its name. */
  rollback?: string;
}

export interface Outcome {
  status: ReleaseStatus;
  events: ReleaseEvent[];
}

export type ReleaseAction = 'approve' | 'pause' | 'resume' | 'promote' | 'rollback';
export const RELEASE_ACTIONS: readonly ReleaseAction[] = [
  'approve',
  'pause',
  'resume',
  'promote',
  'rollback',
];

/** A copy of a release's status being changed, with the events the change makes. */
class Draft {
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

  finish(): Outcome {
    if (this.events.length > 0) {
      this.status.updatedAt = new Date(this.now).toISOString();
      this.status.events = [...this.status.events, ...this.events].slice(-MAX_EVENTS);
    }
    return { status: this.status, events: this.events };
  }
}

/**
 * Top-down: callers before callees, and the entry service first when nothing in the release calls
 * it (then its lane leaves together with the entry split). A callee never leaves before its callers.
 */
export function teardownOrder(release: Release, entryService: string | undefined): string[] {
  const services = release.spec.services;
  const order = deployOrder(services).reverse();
  if (entryService === undefined || !order.includes(entryService)) return order;
  const called = services.some((s, i) =>
    (s.dependsOn ?? (i > 0 ? [services[i - 1]!.name] : [])).includes(entryService),
  );
  if (called) return order;
  return [entryService, ...order.filter((name) => name !== entryService)];
}

function stepDuration(release: Release, index: number): number | undefined {
  const step = releaseSteps(release.spec)[index];
  if (step === undefined || !('pause' in step) || step.pause.duration === undefined)
    return undefined;
  return parseDuration(step.pause.duration);
}

function recordHealth(draft: Draft, observations: Observations): void {
  for (const [name, service] of Object.entries(draft.status.services)) {
    if (service.canary !== 'routed' && service.canary !== 'deploying') continue;
    const seen = observations.canaries[name] ?? { health: 'absent' as const };
    if (seen.health === service.health) continue;
    const was = service.health;
    service.health = seen.health;
    if (seen.message === undefined) delete service.message;
    else service.message = seen.message;
    if (service.canary !== 'routed') continue;
    if (seen.health === 'ready') {
      draft.event('Normal', 'CanaryHealthy', `canary ${name} is ready again (was ${was})`);
    } else {
      const why = seen.message ? `: ${seen.message}` : '';
      draft.event(
        'Warning',
        'CanaryUnhealthy',
        `canary ${name} is ${seen.health}${why}; proxies fall back to the stable version meanwhile`,
      );
    }
  }
}

function deploying(draft: Draft, observations: Observations): boolean {
  const { status, release } = draft;
  for (const name of deployOrder(release.spec.services)) {
    const service = status.services[name]!;
    if (service.canary === 'pending') {
      service.canary = 'deploying';
      draft.event(
        'Normal',
        'CanaryDeploying',
        `deploying canary ${name} (lane ${release.spec.lane})`,
      );
      return true;
    }
    if (service.canary === 'deploying') {
      const seen = observations.canaries[name] ?? { health: 'absent' as const };
      if (seen.health === 'failed') {
        startRollback(
          draft,
          `canary ${name} failed to deploy: ${seen.message ?? 'no reason given'}`,
        );
        return true;
      }
      if (seen.health !== 'ready') return false;
      service.canary = 'routed';
      draft.routingChanged();
      draft.event(
        'Normal',
        'CanaryReady',
        `canary ${name} is ready; lane ${release.spec.lane} of ${name} enters the route table`,
      );
      return true;
    }
    if (!draft.settled(observations)) return false;
  }
  status.step = 0;
  status.stepStartedAt = new Date(draft.now).toISOString();
  status.entryRouted = true;
  draft.routingChanged();
  draft.phase(
    'Progressing',
    'Deployed',
    `every canary is in the route table; matched and tagged traffic reaches lane ${release.spec.lane}`,
  );
  return true;
}

function nextStep(draft: Draft): void {
  draft.status.step += 1;
  draft.status.stepStartedAt = new Date(draft.now).toISOString();
  if (draft.status.analysis) delete draft.status.analysis.since;
}

const describeFailures = (checks: readonly CheckResult[]) =>
  checks
    .filter((c) => c.verdict === 'fail')
    .map((c) => `${c.service} ${c.check}: ${c.reason ?? 'failed'}`)
    .join('; ');

/**
 * A weight step with analysis: its intervals start once every proxy applied the weight; one that
 * passes moves to the next step, one that fails counts, and `threshold` failures roll back.
 */
function analysing(draft: Draft, observations: Observations): boolean {
  const { status } = draft;
  const analysis = analysisStatus(draft);
  if (analysis.since === undefined) {
    analysis.since = new Date(draft.now).toISOString();
    return true;
  }
  const measured = observations.analysis;
  const last = analysis.intervals.at(-1);
  if (
    measured === undefined ||
    measured.from < Date.parse(analysis.since) ||
    (last !== undefined && measured.to <= Date.parse(last.to))
  ) {
    return false;
  }
  if (measured.rollback !== undefined) {
    startRollback(draft, `rollback webhook ${measured.rollback} answered 2xx`);
    return true;
  }
  const passed = measured.checks.every((c) => c.verdict === 'pass');
  const verdict: 'pass' | 'fail' = passed ? 'pass' : 'fail';
  analysis.intervals = [
    ...analysis.intervals,
    {
      from: new Date(measured.from).toISOString(),
      to: new Date(measured.to).toISOString(),
      step: status.step,
      weight: status.weight,
      verdict,
      checks: measured.checks,
    },
  ].slice(-MAX_INTERVALS);
  const where = `step ${status.step + 1} (weight ${status.weight}%)`;
  if (passed) {
    draft.event('Normal', 'AnalysisPassed', `${where}: every check passed`);
    nextStep(draft);
    return true;
  }
  failInterval(draft, where, describeFailures(measured.checks));
  return true;
}

/** One more failed interval; at the threshold, the rollback. */
function failInterval(draft: Draft, where: string, failures: string): void {
  const analysis = analysisStatus(draft);
  const threshold = draft.release.spec.analysis!.threshold;
  analysis.failed += 1;
  draft.event(
    'Warning',
    'AnalysisFailed',
    `${where}: failed interval ${analysis.failed}/${threshold}: ${failures}`,
  );
  if (analysis.failed >= threshold) {
    startRollback(draft, `analysis failed ${analysis.failed} times; last: ${failures}`);
  }
}

function analysisStatus(draft: Draft): AnalysisStatus {
  draft.status.analysis ??= { failed: 0, intervals: [] };
  return draft.status.analysis;
}

const hasWebhook = (release: Release, type: GateType) =>
  (release.spec.analysis?.webhooks ?? []).some((hook) => hook.type === type);

/**
 * Waits on the webhooks of a gate, which the driver calls while `status.analysis.gate` names it.
 * Returns their answer once one came after the wait began (then the gate is open again).
 */
function awaitGate(
  draft: Draft,
  observations: Observations,
  type: GateType,
): GateOutcome | undefined {
  const analysis = analysisStatus(draft);
  if (analysis.gate?.type !== type) {
    analysis.gate = { type, since: new Date(draft.now).toISOString() };
    draft.event('Normal', 'Webhook', `calling the ${type} webhooks`);
    return undefined;
  }
  const outcome = observations.gate;
  if (outcome?.type !== type || outcome.at < Date.parse(analysis.gate.since)) return undefined;
  delete analysis.gate;
  return outcome;
}

/** Pre-rollout webhooks before the first weight: a failure counts as a failed interval. */
function preRollout(draft: Draft, observations: Observations): 'open' | 'waiting' | 'moved' {
  const { release, status } = draft;
  if (!hasWebhook(release, 'pre-rollout') || status.analysis?.preRolloutPassed) return 'open';
  const waited = status.analysis?.gate?.type === 'pre-rollout';
  const outcome = awaitGate(draft, observations, 'pre-rollout');
  if (outcome === undefined) return waited ? 'waiting' : 'moved';
  if (outcome.ok) {
    analysisStatus(draft).preRolloutPassed = true;
    draft.event('Normal', 'WebhookPassed', 'the pre-rollout webhooks passed');
  } else failInterval(draft, 'pre-rollout', `webhook ${outcome.reason}`);
  return 'moved';
}

/** Confirm-promotion webhooks after the last step: the release waits until they answer 2xx. */
function confirmPromotion(draft: Draft, observations: Observations): 'open' | 'waiting' | 'moved' {
  if (!hasWebhook(draft.release, 'confirm-promotion')) return 'open';
  const waited = draft.status.analysis?.gate?.type === 'confirm-promotion';
  const outcome = awaitGate(draft, observations, 'confirm-promotion');
  if (outcome === undefined) return waited ? 'waiting' : 'moved';
  if (outcome.ok) return 'open';
  draft.event('Warning', 'PromotionNotConfirmed', `webhook ${outcome.reason}; asking again`);
  return 'moved';
}

/** Post-rollout webhooks before the release ends, either way; their answer is only reported. */
function postRollout(draft: Draft, observations: Observations): boolean {
  if (!hasWebhook(draft.release, 'post-rollout')) return true;
  const outcome = awaitGate(draft, observations, 'post-rollout');
  if (outcome === undefined) return false;
  if (outcome.ok) draft.event('Normal', 'WebhookPassed', 'the post-rollout webhooks passed');
  else draft.event('Warning', 'WebhookFailed', `post-rollout webhook ${outcome.reason}`);
  return true;
}

function progressing(draft: Draft, observations: Observations): boolean {
  const { status, release } = draft;
  // With analysis, an unhealthy canary is judged by its metrics: fallbacks away from it fail checks.
  const unhealthy = Object.entries(status.services).find(
    ([, service]) => service.canary === 'routed' && service.health !== 'ready',
  );
  if (unhealthy && status.phase === 'Progressing' && release.spec.analysis === undefined) {
    const [name, service] = unhealthy;
    status.pausedFor = `canary ${name} is ${service.health}`;
    draft.phase(
      'Paused',
      'CanaryUnhealthy',
      `${status.pausedFor}; resume when it is healthy`,
      'Warning',
    );
    return true;
  }
  if (status.phase !== 'Progressing') return false;
  const step = releaseSteps(release.spec)[status.step];
  if (step === undefined) {
    const confirmed = confirmPromotion(draft, observations);
    if (confirmed !== 'open') return confirmed === 'moved';
    draft.phase('Promoting', 'StepsDone', 'every step is done');
    promote(draft);
    return true;
  }
  if ('weight' in step) {
    if (status.weight !== step.weight) {
      const gate = preRollout(draft, observations);
      if (gate !== 'open') return gate === 'moved';
      status.weight = step.weight;
      draft.routingChanged();
      draft.event(
        'Normal',
        'Weight',
        `step ${status.step + 1}: ${step.weight}% of entry traffic to lane ${release.spec.lane}`,
      );
      return true;
    }
    if (!draft.settled(observations)) return false;
    if (release.spec.analysis !== undefined) return analysing(draft, observations);
    nextStep(draft);
    return true;
  }
  const duration = stepDuration(release, status.step);
  if (duration === undefined) {
    status.awaitingApproval = true;
    draft.phase('Paused', 'AwaitingApproval', `step ${status.step + 1}: waiting for approval`);
    return true;
  }
  const started = Date.parse(status.stepStartedAt ?? new Date(draft.now).toISOString());
  if (draft.now < started + duration) return false;
  nextStep(draft);
  return true;
}

/** Every service switches to its canary in one routing change; the entry split goes away with it. */
function promote(draft: Draft): void {
  for (const service of Object.values(draft.status.services)) {
    if (service.canary === 'routed') service.canary = 'promoted';
  }
  // The split is over: every request of the entry now reaches the new versions as stable.
  draft.status.entryRouted = false;
  draft.status.weight = 0;
  draft.status.awaitingApproval = false;
  delete draft.status.pausedFor;
  draft.routingChanged();
}

function promoting(draft: Draft, observations: Observations): boolean {
  if (!draft.settled(observations)) return false;
  draft.phase(
    'Finalising',
    'Promoted',
    'every proxy serves the new versions as stable; stopping the old ones top-down',
  );
  return true;
}

function finalising(
  draft: Draft,
  observations: Observations,
  entryService: string | undefined,
): boolean {
  const { status } = draft;
  for (const name of teardownOrder(draft.release, entryService)) {
    const service = status.services[name]!;
    if (service.canary === 'promoted') {
      service.canary = 'retiring';
      draft.event(
        'Normal',
        'Retiring',
        `${name}: the canary is the stable version now; stopping the previous one after drain`,
      );
      return true;
    }
    if (service.canary === 'retiring') {
      if ((observations.canaries[name]?.health ?? 'absent') !== 'absent') return false;
      service.canary = 'retired';
      service.health = 'absent';
    }
  }
  if (!postRollout(draft, observations)) return false;
  draft.phase(
    'Succeeded',
    'Finalised',
    'the release is promoted and the previous versions are stopped',
  );
  return true;
}

function startRollback(draft: Draft, failure?: string): void {
  const { status } = draft;
  if (failure !== undefined) status.failure = failure;
  for (const service of Object.values(status.services)) {
    if (service.canary === 'promoted') service.canary = 'routed';
  }
  status.awaitingApproval = false;
  delete status.pausedFor;
  draft.phase(
    'RollingBack',
    failure ? 'Failed' : 'RollbackRequested',
    failure ?? 'rollback requested',
    failure ? 'Warning' : 'Normal',
  );
}

function rollingBack(
  draft: Draft,
  observations: Observations,
  entryService: string | undefined,
): boolean {
  const { status, release } = draft;
  const order = teardownOrder(release, entryService);
  if (status.entryRouted || status.weight > 0) {
    status.entryRouted = false;
    status.weight = 0;
    const first =
      order[0] === entryService && entryService !== undefined
        ? status.services[entryService]
        : undefined;
    if (first?.canary === 'routed') first.canary = 'unrouted';
    draft.routingChanged();
    draft.event(
      'Normal',
      'EntryClosed',
      `entry split to 0; lane ${release.spec.lane} leaves the entrypoint first`,
    );
    return true;
  }
  for (const name of order) {
    const service = status.services[name]!;
    switch (service.canary) {
      case 'pending':
        service.canary = 'removed';
        continue;
      case 'deploying':
        service.canary = 'removing';
        draft.event(
          'Normal',
          'CanaryRemoving',
          `stopping canary ${name}, which never entered the route table`,
        );
        return true;
      case 'routed':
        service.canary = 'unrouted';
        draft.routingChanged();
        draft.event(
          'Normal',
          'CanaryUnrouted',
          `lane ${release.spec.lane} of ${name} leaves the route table`,
        );
        return true;
      case 'unrouted':
        if (!draft.settled(observations)) return false;
        service.canary = 'removing';
        draft.event(
          'Normal',
          'CanaryRemoving',
          `every proxy stopped sending lane ${release.spec.lane} to ${name}; stopping its canary after drain`,
        );
        return true;
      case 'removing':
        if ((observations.canaries[name]?.health ?? 'absent') !== 'absent') return false;
        service.canary = 'removed';
        service.health = 'absent';
        delete service.message;
        continue;
      default:
        continue;
    }
  }
  if (!postRollout(draft, observations)) return false;
  if (status.failure !== undefined)
    draft.phase('Failed', 'RolledBack', `rolled back after: ${status.failure}`, 'Warning');
  else
    draft.phase(
      'RolledBack',
      'RolledBack',
      'every canary is removed; traffic is on the stable versions',
    );
  return true;
}

/**
 * One reconcile of a release: given what the platform and the proxies report now, moves the
 * release as far as it can go without waiting, and says what happened. Pure: the same input gives
 * the same output, and the input is not changed. `entryService` is the service of the release's
 * entrypoint (undefined when that entrypoint is gone).
 */
export function advance(
  release: Release,
  observations: Observations,
  entryService?: string,
): Outcome {
  const draft = new Draft(release, observations.now, 'controller');
  recordHealth(draft, observations);
  // Each pass takes one transition; a release never needs more than a few per reconcile.
  for (let pass = 0; pass < 64; pass++) {
    let moved = false;
    switch (draft.status.phase) {
      case 'Pending':
        draft.phase(
          'Deploying',
          'Deploying',
          `deploying canaries bottom-up: ${deployOrder(release.spec.services).join(', ')}`,
        );
        moved = true;
        break;
      case 'Deploying':
        moved = deploying(draft, observations);
        break;
      case 'Progressing':
      case 'Paused':
        moved = progressing(draft, observations);
        break;
      case 'Promoting':
        moved = promoting(draft, observations);
        break;
      case 'Finalising':
        moved = finalising(draft, observations, entryService);
        break;
      case 'RollingBack':
        moved = rollingBack(draft, observations, entryService);
        break;
      default:
        break;
    }
    if (!moved) break;
  }
  return draft.finish();
}

function refuse(release: Release, action: ReleaseAction, why: string): never {
  throw new ControllerError(
    'invalidAction',
    `cannot ${action} release ${release.metadata.name} (${release.status.phase}): ${why}`,
  );
}

/**
 * A user's action on a release. Idempotent where repeating makes sense (rollback, promote, pause);
 * refused with GRAYLANE_ERR_INVALID_ACTION where the phase does not allow it.
 */
export function act(release: Release, action: ReleaseAction, now: number, actor = 'user'): Outcome {
  const draft = new Draft(release, now, actor);
  const { status } = draft;
  const phase = status.phase;
  switch (action) {
    case 'approve':
      if (!status.awaitingApproval) refuse(release, action, 'it is not waiting for approval');
      status.awaitingApproval = false;
      draft.event('Normal', 'Approved', `step ${status.step + 1} approved`);
      nextStep(draft);
      if (status.pausedFor === undefined) draft.phase('Progressing', 'Approved', 'approved');
      break;
    case 'pause':
      if (phase === 'Paused') break;
      if (phase !== 'Progressing') refuse(release, action, 'only a progressing release can pause');
      status.pausedFor = 'paused by user';
      draft.phase('Paused', 'PausedByUser', 'paused');
      break;
    case 'resume':
      if (phase !== 'Paused') refuse(release, action, 'it is not paused');
      if (status.pausedFor === undefined)
        refuse(release, action, 'it waits for approval (graylane approve)');
      delete status.pausedFor;
      if (status.awaitingApproval)
        draft.event('Normal', 'Resumed', 'resumed; still waiting for approval');
      else draft.phase('Progressing', 'Resumed', 'resumed');
      break;
    case 'promote':
      if (['Promoting', 'Finalising', 'Succeeded'].includes(phase)) break;
      if (phase !== 'Progressing' && phase !== 'Paused') {
        refuse(release, action, 'only a progressing or paused release can promote');
      }
      draft.phase(
        'Promoting',
        'PromoteRequested',
        'promotion requested; skipping the remaining steps',
      );
      promote(draft);
      break;
    case 'rollback':
      if (['RollingBack', 'RolledBack', 'Failed'].includes(phase)) break;
      if (phase === 'Finalising' || phase === 'Succeeded') {
        refuse(
          release,
          action,
          'it is promoted; release the previous version as a new release instead',
        );
      }
      startRollback(draft);
      break;
  }
  return draft.finish();
}
