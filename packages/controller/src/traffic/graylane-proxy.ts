import { isDeepStrictEqual } from 'node:util';
import type { RouteTable } from '@graylane/lane-core';
import type { RouteTablePublisher } from './publisher.js';
import { finishRouteTable } from './route-table.js';
import type { DesiredRouting, TrafficRouter } from './router.js';

export interface GraylaneProxyRouterOptions {
  /** The last table published before a restart: served again as it was, so no proxy sees a lower revision. */
  previous?: RouteTable | undefined;
  revision: number;
  /** Proxies that must have applied a revision for it to count as applied (the managed ones). */
  requiredProxies: () => readonly string[];
  /** After a restart, proxies take a moment to reconnect; until then nobody is taken to have applied anything new. */
  reconnectGraceMs: number;
  /**
   * Records a table durably before any proxy sees it (write-ahead), so that a controller killed
   * right after publishing restarts at that revision, never below what proxies already serve.
   */
  commit: (table: RouteTable) => Promise<void>;
}

function withoutRevision(table: RouteTable | undefined): unknown {
  if (table === undefined) return undefined;
  const { revision: _revision, ...rest } = table;
  return rest;
}

/** Local mode: routing is the route table that every graylane-proxy watches from the controller. */
export class GraylaneProxyRouter implements TrafficRouter {
  readonly name = 'graylane-proxy';
  private revision: number;
  private readonly startedAt = Date.now();

  constructor(
    private readonly publisher: RouteTablePublisher,
    private readonly options: GraylaneProxyRouterOptions,
  ) {
    this.revision = options.revision;
    if (options.previous) {
      this.revision = Math.max(this.revision, options.previous.revision);
      const served = publisher.current?.revision ?? -1;
      if (options.previous.revision > served) publisher.publish(options.previous);
    }
    this.revision = Math.max(this.revision, publisher.current?.revision ?? 0);
  }

  async apply(desired: DesiredRouting): Promise<number> {
    const current = this.publisher.current;
    const next = finishRouteTable(desired, this.revision + 1);
    if (isDeepStrictEqual(withoutRevision(next), withoutRevision(current))) return this.revision;
    this.revision = next.revision;
    await this.options.commit(next);
    this.publisher.publish(next);
    return this.revision;
  }

  applied(revision: number): boolean {
    if (revision <= 0) return true;
    const watchers = this.publisher.watchers();
    const applied = new Map<string, number>();
    for (const w of watchers) {
      if (w.proxy !== undefined)
        applied.set(w.proxy, Math.max(applied.get(w.proxy) ?? -1, w.appliedRevision ?? -1));
    }
    if ([...applied.values()].some((r) => r < revision)) return false;
    if (this.options.requiredProxies().some((id) => (applied.get(id) ?? -1) < revision))
      return false;
    // A proxy that watched the previous controller may not have reconnected yet.
    return Date.now() - this.startedAt >= this.options.reconnectGraceMs || applied.size > 0;
  }

  current(): RouteTable | undefined {
    return this.publisher.current;
  }

  instances(): Array<{ id: string; appliedRevision: number | undefined }> {
    return this.publisher
      .watchers()
      .filter((w) => w.proxy !== undefined)
      .map((w) => ({ id: w.proxy!, appliedRevision: w.appliedRevision }));
  }

  close(): void {
    this.publisher.close();
  }
}
