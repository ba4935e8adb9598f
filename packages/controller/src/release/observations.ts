import type { CheckResult, GateType } from './status.js';

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
