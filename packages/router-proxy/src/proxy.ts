import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { RouteTable } from '@graylane/lane-core';
import { createConnectHandler } from './forwarding/connect.js';
import { Tunnels } from './forwarding/tunnel.js';
import { guardRequest, guardSocketRequest } from './http/guard.js';
import {
  applyServerLimits,
  type ServerLimits,
  type ServerLimitsInput,
  serverLimits,
  serverOptions,
} from './http/limits.js';
import { type OnRefused, refusalReason } from './http/respond.js';
import { createAdminHandler } from './listeners/admin.js';
import type { ListenerHandlers } from './listeners/driver.js';
import { createGatewayListener } from './listeners/gateway.js';
import { createInboundListener, type InboundApp } from './listeners/inbound.js';
import { createOutboundListener } from './listeners/outbound.js';
import { createLogger, type Logger } from './logger.js';
import { ProxyMetrics } from './metrics.js';
import { TableHolder } from './routing/table-holder.js';
import { ProxyRuntime, type RuntimeOptions } from './runtime.js';
import { openRouteTableSource, type RouteTableSource } from './sources/index.js';

export type ListenerKind = 'gateway' | 'outbound' | 'inbound' | 'admin';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface ProxyOptions {
  /**
   * Where the route table comes from: a file (JSON or YAML), watched for changes, or the controller's
   * `http(s)://…/v1/routetable`, watched over HTTP.
   */
  routeTable?: string;
  /** The controller's bearer token, for a `routeTable` URL. */
  routeTableToken?: string;
  /** How long `start` waits for the controller's first table before listening without one (10 s). */
  routeTableStartTimeoutMs?: number;
  /** A table given in code instead of a file (tests, embedding). */
  initialTable?: RouteTable;
  gateway?: ListenAddress;
  outbound?: ListenAddress;
  /** The inbound listener, in front of `inboundApp`; it needs no route table. */
  inbound?: ListenAddress;
  inboundApp?: InboundApp;
  admin?: ListenAddress;
  adminAllowRemote?: boolean;
  drainTimeoutMs: number;
  /**
   * How long a stopping proxy keeps accepting after `/readyz` turned 503, for load balancers and
   * kube-proxy to stop sending to it; 0 by default in code, 5 s from the bin's config.
   */
  drainDelayMs?: number;
  server: ServerLimitsInput;
  runtime: RuntimeOptions;
  logger?: Logger;
}

/**
 * One proxy process: gateway, outbound, inbound and admin listeners, each optional, over one runtime.
 * Built apart from listening (the fastify way): the constructor makes everything, `start` loads the
 * table and binds the ports.
 */
export class GraylaneProxy {
  readonly runtime: ProxyRuntime;
  readonly logger: Logger;
  private readonly servers = new Map<ListenerKind, Server>();
  /** Forwarding requests not yet answered or closed: what a drain waits for. */
  private active = 0;
  /** Every response's `close` listener (a response closes once): no closure per request. */
  private readonly settled = () => {
    this.active -= 1;
  };
  private readonly tunnels: Tunnels;
  private source: RouteTableSource | undefined;
  private draining = false;
  private readonly limits: ServerLimits;
  /** The listeners' bound addresses, kept between a listener starting or stopping. */
  private ownAddresses: readonly AddressInfo[] | undefined;

  constructor(private readonly options: ProxyOptions) {
    this.limits = serverLimits(options.server);
    this.tunnels = new Tunnels(this.limits.tunnelIdleTimeoutMs);
    this.logger = options.logger ?? createLogger();
    this.runtime = new ProxyRuntime(
      options.runtime,
      new TableHolder(),
      new ProxyMetrics(),
      this.logger,
      this.limits,
    );
    if (options.gateway) {
      this.addServer('gateway', createGatewayListener(this.runtime, this.tunnels));
    }
    if (options.outbound) {
      // Bound addresses change only when a listener starts or stops: asking the kernel on every
      // call (getsockname, per listener) was 5 % of the sidecar's CPU in a profile (issue 21).
      const own = () => (this.ownAddresses ??= this.boundAddresses());
      const server = this.addServer(
        'outbound',
        createOutboundListener(this.runtime, own, this.tunnels),
      );
      this.onSocket(
        server,
        'outbound',
        'connect',
        createConnectHandler(this.runtime, server, own, this.tunnels),
      );
    }
    if (options.inbound && options.inboundApp) {
      this.addServer(
        'inbound',
        createInboundListener(this.runtime, options.inboundApp, this.tunnels),
      );
    }
    if (options.admin) {
      const handler = createAdminHandler(this.runtime, {
        allowRemote: options.adminAllowRemote ?? false,
        isDraining: () => this.draining,
        // An inbound-only sidecar routes without a table; one that was given a table waits for it.
        needsTable: Boolean(
          options.routeTable || options.initialTable || options.gateway || options.outbound,
        ),
      });
      this.addServer('admin', { request: handler });
    }
  }

  /** Counts an answer a listener made itself, by its code. */
  private refusedOn(kind: ListenerKind): OnRefused {
    return (code) => this.metrics.refused.inc({ listener: kind, reason: refusalReason(code) });
  }

  /**
   * A listener behind the head guard and the limits (the admin listener too); the requests of the
   * forwarding ones are what a drain waits for.
   */
  private addServer(
    kind: ListenerKind,
    handlers: Pick<ListenerHandlers, 'request'> & Partial<ListenerHandlers>,
  ) {
    const { limits } = this;
    const onRefused = this.refusedOn(kind);
    const server = createServer(serverOptions(limits), (req, res) => {
      if (kind !== 'admin') {
        this.active += 1;
        res.on('close', this.settled);
      }
      if (this.draining) res.shouldKeepAlive = false;
      if (guardRequest(req, res, limits, onRefused)) handlers.request(req, res);
    });
    applyServerLimits(server, limits, onRefused);
    if (handlers.upgrade) this.onSocket(server, kind, 'upgrade', handlers.upgrade);
    this.servers.set(kind, server);
    return server;
  }

  /** A `connect` or `upgrade` handler, behind the same head checks as plain requests. */
  private onSocket(
    server: Server,
    kind: ListenerKind,
    event: 'connect' | 'upgrade',
    handler: (req: IncomingMessage, socket: Duplex, head: Buffer) => void,
  ): void {
    server.on(event, guardSocketRequest(handler, this.limits, this.refusedOn(kind)));
  }

  get tables() {
    return this.runtime.tables;
  }

  get metrics() {
    return this.runtime.metrics;
  }

  /**
   * Loads the route table, then binds every listener. Rejects with the reason when either fails; a
   * controller that sends no table in time is not a failure (the listeners answer 503 until one comes).
   */
  async start(): Promise<void> {
    if (this.options.initialTable) this.tables.set(this.options.initialTable, 'inline');
    const spec = this.options.routeTable;
    if (spec) {
      this.source = openRouteTableSource(
        spec,
        {
          onTable: (table) => {
            this.tables.set(table, spec);
            this.logger.info({ revision: table.revision }, 'route table applied');
          },
          onError: (error) => {
            this.metrics.routeTableErrors.inc();
            const problems = 'problems' in error ? error.problems : undefined;
            this.logger.error(
              { err: error, code: error.code, problems },
              'route table refused; keeping the last good one',
            );
          },
        },
        {
          proxyId: this.runtime.options.proxyId,
          token: this.options.routeTableToken,
          logger: this.logger,
          startTimeoutMs: this.options.routeTableStartTimeoutMs,
        },
      );
      await this.source.start();
    }
    for (const [kind, server] of this.servers) {
      const address = this.options[kind]!;
      await new Promise<void>((resolve, reject) => {
        const refuse = (error: NodeJS.ErrnoException) =>
          reject(
            new Error(
              `cannot listen on ${kind} ${address.host}:${address.port}: ${error.code ?? error.message}`,
              { cause: error },
            ),
          );
        server.once('error', refuse);
        server.listen(address.port, address.host, () => {
          server.off('error', refuse);
          this.ownAddresses = undefined;
          resolve();
        });
      });
      this.logger.info({ listener: kind, address: this.address(kind) }, 'listening');
    }
  }

  private boundAddresses(): AddressInfo[] {
    return [...this.servers.values()]
      .map((server) => server.address())
      .filter((address): address is AddressInfo => typeof address === 'object' && !!address);
  }

  /** The bound address of a listener (the real port when 0 was asked for). */
  address(kind: ListenerKind): ListenAddress | undefined {
    const info = this.servers.get(kind)?.address() as AddressInfo | null | undefined;
    return info ? { host: info.address, port: info.port } : undefined;
  }

  url(kind: ListenerKind): string {
    const address = this.address(kind);
    if (!address) throw new Error(`listener ${kind} is not running`);
    const host = address.host.includes(':') ? `[${address.host}]` : address.host;
    return `http://${host}:${address.port}`;
  }

  /**
   * Graceful stop: `/readyz` reports draining at once while the listeners keep accepting for
   * `drainDelayMs` (the time endpoint changes take to reach load balancers), then new connections are
   * refused, requests in flight and open tunnels (WebSocket, CONNECT) get up to `drainTimeoutMs`, and
   * what is left is cut. The admin listener stays up meanwhile.
   */
  async close(
    drainTimeoutMs = this.options.drainTimeoutMs,
    drainDelayMs = this.options.drainDelayMs ?? 0,
  ): Promise<void> {
    this.draining = true;
    this.source?.stop();
    if (drainDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, drainDelayMs));
    const traffic = [...this.servers].filter(([kind]) => kind !== 'admin').map(([, s]) => s);
    const closed = traffic.map(
      (server) => new Promise<void>((resolve) => server.close(() => resolve())),
    );
    for (const server of traffic) server.closeIdleConnections();
    const deadline = Date.now() + drainTimeoutMs;
    while ((this.active > 0 || this.tunnels.size > 0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      for (const server of traffic) server.closeIdleConnections();
    }
    for (const server of traffic) server.closeAllConnections();
    this.tunnels.destroyAll();
    await Promise.all(closed);
    const admin = this.servers.get('admin');
    if (admin) {
      admin.closeAllConnections();
      await new Promise<void>((resolve) => admin.close(() => resolve()));
    }
    this.ownAddresses = undefined;
    await this.runtime.close();
  }
}
