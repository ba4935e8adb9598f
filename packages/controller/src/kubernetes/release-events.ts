import { createHash } from 'node:crypto';
import type { CoreV1Api, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ReleaseEvent } from '../release/status.js';

/** The API server's default `--event-ttl`: core Events older than this are gone anyway. */
const EVENT_TTL_MS = 60 * 60_000;

/**
 * A release's events as core Events, visible with `kubectl describe release`. Written after the
 * status that holds them, in the background and in order for each release; a replica that died in
 * between leaves some unwritten, and the next leader writes them (`catchUp`). Each has the same
 * name in every replica, so it is written once.
 */
export class ReleaseEvents {
  /** The core Events that existed when this replica started to lead, by name. */
  private recorded = new Set<string>();
  /** Releases (by uid) whose missed core Events this replica has written since it leads. */
  private readonly caughtUp = new Set<string>();
  /** The core Events being written, per release (uid). */
  private readonly writing = new Map<string, Promise<void>>();
  private readonly writes: Limiter;

  constructor(
    private readonly core: CoreV1Api,
    private readonly options: {
      namespace: string;
      apiVersion: string;
      logger: Logger;
      writesInFlight: number;
    },
  ) {
    this.writes = new Limiter(options.writesInFlight);
  }

  /** Lists the core Events that exist, once this replica leads; false when it no longer does. */
  async startLeading(stillLeading: () => boolean): Promise<boolean> {
    const recorded = await this.existing();
    if (!stillLeading()) return false;
    this.recorded = recorded;
    this.caughtUp.clear();
    return true;
  }

  /**
   * Writes, once per release, the status events after the newest one that has its core Event
   * (younger than the API server's event TTL, so that expired ones do not come back).
   */
  async catchUp(
    object: KubernetesObject,
    events: readonly ReleaseEvent[],
    now: number,
  ): Promise<void> {
    const uid = object.metadata!.uid!;
    if (this.caughtUp.has(uid)) return;
    this.caughtUp.add(uid);
    const last = events.findLastIndex((e) => this.recorded.has(coreEventName(object, e)));
    for (const event of events.slice(last + 1)) {
      if (now - Date.parse(event.time) < EVENT_TTL_MS) await this.write(object, event);
    }
  }

  /**
   * Writes the core Events of a status this replica wrote, in the background: a pass that waited
   * for them held every other release's next status back (at 500 releases, a pass wrote ~500
   * statuses and ~1,000 Events). Nothing of this release is left to catch up on.
   */
  record(object: KubernetesObject, events: readonly ReleaseEvent[]): void {
    const uid = object.metadata!.uid!;
    this.caughtUp.add(uid);
    if (events.length === 0) return;
    const next = (this.writing.get(uid) ?? Promise.resolve()).then(async () => {
      for (const event of events) await this.writes.run(() => this.write(object, event));
    });
    this.writing.set(uid, next);
    void next.finally(() => {
      if (this.writing.get(uid) === next) this.writing.delete(uid);
    });
  }

  async settled(): Promise<void> {
    await Promise.allSettled(this.writing.values());
  }

  private async existing(): Promise<Set<string>> {
    try {
      const list = await this.core.listNamespacedEvent({
        namespace: this.options.namespace,
        fieldSelector: 'involvedObject.kind=Release',
      });
      return new Set(list.items.map((e) => e.metadata?.name ?? ''));
    } catch (error) {
      this.options.logger.warn({ err: error }, 'events not listed; missed ones are not recorded');
      return new Set();
    }
  }

  /** One core Event; a 409 means another replica wrote it. */
  private async write(object: KubernetesObject, event: ReleaseEvent): Promise<void> {
    const { namespace } = this.options;
    await this.core
      .createNamespacedEvent({
        namespace,
        body: {
          metadata: { name: coreEventName(object, event), namespace },
          involvedObject: {
            apiVersion: this.options.apiVersion,
            kind: 'Release',
            name: object.metadata!.name,
            namespace,
            uid: object.metadata!.uid,
          },
          reason: event.reason,
          message: event.message,
          type: event.type,
          source: { component: 'graylane-controller' },
          firstTimestamp: new Date(event.time),
          lastTimestamp: new Date(event.time),
          count: 1,
        },
      })
      .catch((error: unknown) => {
        if ((error as { code?: number }).code !== 409)
          this.options.logger.warn({ err: error }, 'event not recorded');
      });
  }
}

/** The same release event has the same core Event name in every replica. */
function coreEventName(object: KubernetesObject, event: ReleaseEvent): string {
  const hash = createHash('sha256')
    .update(`${object.metadata!.uid}\n${event.time}\n${event.reason}\n${event.message}`)
    .digest('hex')
    .slice(0, 12);
  return `${object.metadata!.name}.${hash}`;
}

/** At most `limit` calls of `run` at a time; the others wait their turn. */
class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    while (this.active >= this.limit)
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}
