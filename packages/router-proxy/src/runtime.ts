import { randomBytes } from 'node:crypto';
import type { Agent } from 'undici';
import { Deadlines } from './deadline-queue.js';
import { AddressRanges } from './http/addresses.js';
import { type BodyLimits, BodyWatcher, DEFAULT_BODY_LIMITS } from './http/body-watch.js';
import type { Logger } from './logger.js';
import type { ProxyMetrics } from './metrics.js';
import type { CompiledTable } from './routing/compiled-table.js';
import type { TableHolder } from './routing/table-holder.js';
import { SETTINGS_DEFAULTS } from './settings.js';
import { Balancer } from './upstream/balancer.js';
import { HostResolver, type ResolveHost } from './upstream/dns.js';
import { EndpointHealth } from './upstream/endpoint-health.js';
import { ActiveHealthChecker, httpProbe } from './upstream/health-check.js';
import { OutlierDetector, type OutlierOptions } from './upstream/outlier.js';
import { RetryBudget, type RetryBudgetOptions } from './upstream/retry-budget.js';
import { tlsAgent, type UpstreamTls } from './upstream/tls.js';

export interface RuntimeOptions {
  /** Names this proxy in `Via`, for loop detection; random per process unless set. */
  proxyId: string;
  /** A request that already passed this proxy this many times is a loop (508). */
  loopLimit: number;
  /** Outbound requests to hosts that are not services: pass them through, or refuse with 502. */
  unknownHosts: 'passthrough' | 'refuse';
  /**
   * Peers (CIDRs) whose x-forwarded-* the gateway keeps: the load balancer in front of it. None by
   * default: the gateway is the edge and replaces what clients claim.
   */
  trustedProxies: string[];
  /** TLS settings for https endpoints, by origin (`*`: all of them). */
  upstreamTls: UpstreamTls;
  /** Suffixes under which `<service>.<suffix>` names a service at the outbound listener. */
  serviceDomains: string[];
  upstream: {
    connectTimeoutMs: number;
    /** Time for an upstream to start its response; past it the attempt fails as a timeout. */
    headersTimeoutMs: number;
    bodyTimeoutMs: number;
    /** Whole request, retries included; past it the client gets 504. */
    requestTimeoutMs: number;
    /** Kept shorter than common upstream servers' idle timeout (Node: 5 s) to avoid reusing a closing socket. */
    keepAliveTimeoutMs: number;
    /** How long a host-name endpoint's addresses are kept; the table's own are refreshed this often. */
    dnsTtlMs: number;
  };
  /** The system resolver by default; tests stand a DNS of their own in for it. */
  resolveHost?: ResolveHost;
  retry: RetryBudgetOptions & {
    /** Request bodies up to this size are kept so that a retry can send them again. */
    bufferBytes: number;
  };
  outlier: OutlierOptions;
}

/** The runtime's settings as the config schema gives them by default, a random `proxyId` added. */
export const defaultRuntimeOptions = (): RuntimeOptions => {
  const d = SETTINGS_DEFAULTS;
  return {
    proxyId: randomBytes(4).toString('hex'),
    loopLimit: d.loopLimit,
    unknownHosts: d.unknownHosts,
    serviceDomains: [...d.serviceDomains],
    upstreamTls: {},
    trustedProxies: [...d.trustedProxies],
    upstream: { ...d.upstream },
    retry: { ...d.retry },
    outlier: { ...d.outlier },
  };
};

/** What every listener of one proxy process shares: the table, the connection pools, the metrics. */
export class ProxyRuntime {
  readonly dispatcher: Agent;
  readonly balancer = new Balancer();
  /** Every request's deadlines, one timer per length (the request's, the response head's). */
  readonly deadlines = new Deadlines();
  readonly viaToken: string;
  /** This proxy's own `Via` entry. */
  readonly viaEntry: string;
  readonly budget: RetryBudget;
  readonly outliers: OutlierDetector;
  readonly healthChecks: ActiveHealthChecker;
  readonly health: EndpointHealth;
  readonly bodies: BodyWatcher;
  readonly trustedProxies: AddressRanges;
  readonly hosts: HostResolver;
  private readonly warned = new Set<string>();

  constructor(
    readonly options: RuntimeOptions,
    readonly tables: TableHolder,
    readonly metrics: ProxyMetrics,
    readonly logger: Logger,
    bodyLimits: BodyLimits = DEFAULT_BODY_LIMITS,
  ) {
    this.bodies = new BodyWatcher(bodyLimits);
    this.trustedProxies = new AddressRanges(options.trustedProxies);
    this.viaToken = `graylane-${options.proxyId}`;
    this.viaEntry = `1.1 ${this.viaToken}`;
    const { upstream } = options;
    this.hosts = new HostResolver(upstream.dnsTtlMs, options.resolveHost);
    const { lookup } = this.hosts;
    // One pool per origin, each with its endpoint's TLS settings.
    this.dispatcher = tlsAgent(options.upstreamTls, {
      connect: { timeout: upstream.connectTimeoutMs, lookup },
      headersTimeout: upstream.headersTimeoutMs,
      bodyTimeout: upstream.bodyTimeoutMs,
      keepAliveTimeout: upstream.keepAliveTimeoutMs,
      keepAliveMaxTimeout: upstream.keepAliveTimeoutMs,
    });
    this.budget = new RetryBudget(options.retry);
    this.outliers = new OutlierDetector(options.outlier, ({ service, lane, endpoint, ejected }) => {
      metrics.endpointEjected.set({ service, lane, endpoint }, ejected ? 1 : 0);
      logger[ejected ? 'warn' : 'info'](
        { service, lane, endpoint },
        ejected ? 'endpoint ejected' : 'endpoint back from ejection',
      );
    });
    // Checks reach https endpoints with the same TLS settings as the traffic they stand for.
    const checks = tlsAgent(options.upstreamTls, {
      keepAliveTimeout: 1_000,
      connections: 2,
      connect: { lookup },
    });
    this.healthChecks = new ActiveHealthChecker(
      ({ service, lane, endpoint, healthy }) => {
        if (healthy) this.outliers.reinstate(service, lane, endpoint);
      },
      logger,
      { probe: httpProbe(checks), agent: checks },
    );
    this.health = new EndpointHealth(this.outliers, this.healthChecks);
    tables.onChange((next) => {
      metrics.routeTableRevision.set(next.revision);
      this.healthChecks.reconcile(next);
      this.hosts.track(endpointsOf(next));
      this.outliers.retain((service, endpoint) =>
        [...(next.services.get(service)?.sets.values() ?? [])].some((set) =>
          set.endpoints.includes(endpoint),
        ),
      );
    });
  }

  /**
   * A warning a client can cause at will (a stalled body) is logged the first time only; the
   * metrics count every one.
   */
  warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.logger.warn(fields, `${message} (logged once; see graylane_refused_requests_total)`);
  }

  async close(): Promise<void> {
    await this.healthChecks.close();
    await this.dispatcher.close();
    this.hosts.close();
  }
}

function* endpointsOf(table: CompiledTable): Iterable<string> {
  for (const service of table.services.values()) {
    for (const set of service.sets.values()) yield* set.endpoints;
  }
}
