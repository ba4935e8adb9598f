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
