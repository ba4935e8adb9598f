import { randomBytes } from 'node:crypto';
import { Agent } from 'undici';
import type { Logger } from './logger.js';
import type { ProxyMetrics } from './metrics.js';
import type { TableHolder } from './routing/table-holder.js';
import { Balancer } from './upstream/balancer.js';

export interface RuntimeOptions {
  /** Names this proxy in `Via`, for loop detection; random per process unless set. */
  proxyId: string;
  /** A request that already passed this proxy this many times is a loop (508). */
  loopLimit: number;
  /** Outbound requests to hosts that are not services: pass them through, or refuse with 502. */
  unknownHosts: 'passthrough' | 'refuse';
  upstream: {
    connectTimeoutMs: number;
    headersTimeoutMs: number;
    bodyTimeoutMs: number;
    /** Kept shorter than common upstream servers' idle timeout (Node: 5 s) to avoid reusing a closing socket. */
    keepAliveTimeoutMs: number;
  };
}

export const defaultRuntimeOptions = (): RuntimeOptions => ({
  proxyId: randomBytes(4).toString('hex'),
  loopLimit: 8,
  unknownHosts: 'passthrough',
  upstream: {
    connectTimeoutMs: 2_000,
    headersTimeoutMs: 30_000,
    bodyTimeoutMs: 60_000,
    keepAliveTimeoutMs: 4_000,
  },
});

/** What every listener of one proxy process shares: the table, the connection pools, the metrics. */
export class ProxyRuntime {
  readonly dispatcher: Agent;
  readonly balancer = new Balancer();
  readonly viaToken: string;

  constructor(
    readonly options: RuntimeOptions,
    readonly tables: TableHolder,
    readonly metrics: ProxyMetrics,
    readonly logger: Logger,
  ) {
    this.viaToken = `graylane-${options.proxyId}`;
    const { upstream } = options;
    this.dispatcher = new Agent({
      connect: { timeout: upstream.connectTimeoutMs },
      headersTimeout: upstream.headersTimeoutMs,
      bodyTimeout: upstream.bodyTimeoutMs,
      keepAliveTimeout: upstream.keepAliveTimeoutMs,
      keepAliveMaxTimeout: upstream.keepAliveTimeoutMs,
    });
    tables.onChange((next) => metrics.routeTableRevision.set(next.revision));
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
