import type { ReleaseDocument } from '../documents/schema.js';
import type { CanaryState, Phase } from './phases.js';

export interface ReleaseEvent {
  time: string;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  /** Who caused it: `controller`, or `user` for an API action. */
  actor: string;
  phase: Phase;
}

/** One check of one service over one interval. */
export interface CheckResult {
  service: string;
  /** `request-success-rate`, `request-duration` or a custom check's id. */
  check: string;
  /** The limit it was held to (`>= 99%`, `<= 200ms`, `<= 1.2 x stable`). */
  limit: string;
  /** Canary requests in the interval, fallbacks away from the canary included. */
  samples: number;
  /** The canary's value (percent, milliseconds, or the query's unit); absent: no data. */
  value?: number;
  /** The stable version's value, for a relative check. */
  stable?: number;
  verdict: 'pass' | 'fail';
  /** Why it failed (`no data: …`, `312ms > 200ms`). */
  reason?: string;
}

/** One analysis interval: its window, the step and weight it measured, every check's result. */
export interface AnalysisInterval {
  from: string;
  to: string;
  step: number;
  weight: number;
  verdict: 'pass' | 'fail';
  checks: CheckResult[];
}

/** The webhooks a release waits on; the driver calls them while `gate` names one. */
export type GateType = 'pre-rollout' | 'confirm-promotion' | 'post-rollout';

export interface AnalysisStatus {
  /** Failed intervals so far; `analysis.threshold` of them roll the release back. */
  failed: number;
  /** The webhook the release waits on, and since when: only an answer after that counts. */
  gate?: { type: GateType; since: string };
  /** Whether the pre-rollout webhooks passed (then the first weight may go out). */
  preRolloutPassed?: boolean;
  /** When every proxy applied the current step's routing: its intervals measure from then on. */
  since?: string;
  /** The latest intervals, oldest first. */
  intervals: AnalysisInterval[];
}

export const MAX_INTERVALS = 50;

export interface ServiceStatus {
  canary: CanaryState;
  /** The platform's last word on the canary: `ready`, `starting`, `unready`, `failed` or `absent`. */
  health: string;
  message?: string;
}

/**
 * What the controller knows of a release. Written by `advance` (pure) and by the driver for the one
 * thing only the driver can know: the route-table revision that carries the latest change.
 */
export interface ReleaseStatus {
  phase: Phase;
  /** Index of the current step while Progressing or Paused; -1 before, steps.length after. */
  step: number;
  stepStartedAt?: string;
  /** The entry's weighted split for the lane (percent). */
  weight: number;
  /** Whether the release's match rules and split are in its entrypoint. */
  entryRouted: boolean;
  awaitingApproval: boolean;
  /** Why the release is paused other than for approval (a user, an unhealthy canary). */
  pausedFor?: string;
  /** Set when the release rolls back because something failed; it then ends Failed, not RolledBack. */
  failure?: string;
  services: Record<string, ServiceStatus>;
  /**
   * The revision every proxy must apply before the next step that depends on the latest routing
   * change. -1: a change is decided but not published yet; the driver fills in the revision.
   */
  awaitRevision: number;
  /** Metric analysis, when the release has one. */
  analysis?: AnalysisStatus;
  createdAt: string;
  updatedAt: string;
  events: ReleaseEvent[];
}

export type Release = ReleaseDocument & { status: ReleaseStatus };

export const MAX_EVENTS = 200;

export function initialStatus(spec: ReleaseDocument['spec'], now: number): ReleaseStatus {
  const time = new Date(now).toISOString();
  return {
    phase: 'Pending',
    step: -1,
    weight: 0,
    entryRouted: false,
    awaitingApproval: false,
    services: Object.fromEntries(
      spec.services.map((s) => [
        s.name,
        { canary: 'pending', health: 'absent' } satisfies ServiceStatus,
      ]),
    ),
    awaitRevision: 0,
    createdAt: time,
    updatedAt: time,
    events: [
      {
        time,
        type: 'Normal',
        reason: 'Created',
        message: `release of lane ${spec.lane} created`,
        actor: 'user',
        phase: 'Pending',
      },
    ],
  };
}
