import type { Logger } from 'pino';
import type { Workload } from '../documents/schema.js';
import type { Release } from '../release/status.js';
import { platformCalls } from './calls.js';
import type { Platform, WorkloadRef } from './platform.js';

export interface EffectsOptions {
  logger: Logger;
  /** Called when a call that changes what the core observes has settled, so that it reconciles again. */
  onSettled?: () => void;
}

/**
 * The platform calls a driver has in flight. The pure core asks for the same call on every pass
 * until it sees the result (through `Platform.status`), so each call runs once at a time per key:
 * a pass that finds it running leaves it be, and a failure is logged and asked for again on a
 * later pass. Both drivers (local, Kubernetes) keep their calls here.
 */
export class Effects {
  private readonly running = new Map<string, Promise<void>>();

  constructor(private readonly options: EffectsOptions) {}

  /** Runs `call` unless the call under `key` is still running. */
  start(key: string, call: () => Promise<void>, notify = true): void {
    if (this.running.has(key)) return;
    const done = call()
      .catch((error: unknown) =>
        this.options.logger.error({ err: error, effect: key }, 'platform call failed'),
      )
      .finally(() => {
        this.running.delete(key);
        if (notify) this.options.onSettled?.();
      });
    this.running.set(key, done);
  }

  /**
   * Starts what each canary of the release asks of the platform. A deploy's result shows in the
   * platform's own status (its watch wakes the driver), so only remove and promote notify.
   * `promoting` runs before a promotion is asked for, every pass, for what the driver records.
   */
  converge(
    release: Release,
    platform: Platform,
    promoting?: (ref: WorkloadRef, workload: Workload) => void,
  ): void {
    for (const { call, ref, workload } of platformCalls(release)) {
      const key = `${call} ${ref.service}/${ref.lane}`;
      if (call === 'deploy') {
        this.start(key, () => platform.deploy(ref, workload), false);
      } else if (call === 'remove') {
        this.start(key, () => platform.remove(ref));
      } else {
        promoting?.(ref, workload);
        this.start(key, () => platform.promote(ref.service, ref.lane));
      }
    }
  }

  /** Resolves when every call running now has settled (for a driver's close). */
  async settled(): Promise<void> {
    await Promise.allSettled(this.running.values());
  }
}
