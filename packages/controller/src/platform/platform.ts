import type { Workload } from '../documents/schema.js';
import type { CanaryObservation } from '../release/observations.js';

/** One service's workload in one lane (`stable` for the stable version). */
export interface WorkloadRef {
  service: string;
  lane: string;
}

export interface WorkloadStatus extends CanaryObservation {
  /** Base URLs of its instances, whether ready or not (the proxies fall back from those that are not). */
  endpoints: string[];
}

/**
 * Where workloads run: local processes today, Kubernetes Deployments next. The release core knows
 * only this interface. Every method is idempotent, so a controller that restarts mid-way calls it
 * again and converges.
 */
export interface Platform {
  readonly name: string;
  /** Makes the workload run with this spec; starts what is missing, leaves what runs. */
  deploy(ref: WorkloadRef, workload: Workload): Promise<void>;
  /** What the workload looks like now (no I/O: platforms watch in the background). */
  status(ref: WorkloadRef, workload: Workload): WorkloadStatus;
  /** Stops the workload after its in-flight requests drained; `absent` once done. */
  remove(ref: WorkloadRef): Promise<void>;
  /**
   * The canary of `lane` becomes the service's stable workload, and the previous stable one is
   * stopped after drain. Called once every proxy routes stable traffic to the canary.
   */
  promote(service: string, lane: string): Promise<void>;
  /** Stops watching. `stopWorkloads` also stops every workload (a local controller's clean exit). */
  close(options?: { stopWorkloads?: boolean }): Promise<void>;
}
