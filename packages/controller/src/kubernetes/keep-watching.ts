import type { Informer, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';

export const FIRST_RETRY_MS = 1_000;
export const MAX_RETRY_MS = 30_000;
/** Failures further apart than this are a new outage: the wait starts from the first again. */
const CALM_MS = 60_000;

const messageOf = (error: unknown) =>
  error instanceof Error
    ? error.message
    : String((error as { message?: unknown })?.message ?? error);

/**
 * Keeps an informer listing and watching through API server trouble. The client starts a watch
 * again by itself after a clean end and after 410 Gone; after any other error it stops and says
 * so, and this starts it again after 1 s, doubling up to 30 s while failures keep coming (as
 * client-go's reflector backs off), so an outage costs a line now and then, not a stack trace every
 * second. `stop()` is for good: the client reports its own stop as an error, which must not bring
 * the informer back.
 */
export class KeepWatching<T extends KubernetesObject> {
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;
  private delayMs = 0;
  private lastFailure = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly informer: Informer<T>,
    private readonly what: string,
    private readonly logger: Logger,
  ) {
    informer.on('error', (error: unknown) => this.failed(error));
  }

  start(): Promise<void> {
    this.stopped = false;
    return this.informer.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    await this.informer.stop();
  }

  private failed(error: unknown): void {
    if (this.stopped) return;
    const now = Date.now();
    this.delayMs =
      now - this.lastFailure > CALM_MS ? FIRST_RETRY_MS : Math.min(this.delayMs * 2, MAX_RETRY_MS);
    this.lastFailure = now;
    this.logger.warn(
      { watch: this.what, error: messageOf(error), retryInMs: this.delayMs },
      'watch failed; listing again after a pause',
    );
    clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      // A failed start reports through the 'error' event, which schedules the next one.
      if (!this.stopped) void this.informer.start().catch(() => {});
    }, this.delayMs);
  }
}
