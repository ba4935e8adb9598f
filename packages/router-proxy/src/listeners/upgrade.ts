import {
  type ClientRequest,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  STATUS_CODES,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { recordCarrier, writeLaneTag } from '@graylane/lane-core';
import type { CompiledTable, EndpointSetView, ServiceView } from '../routing/compiled-table.js';
import { type FallbackReason, type FallbackStep, resolveRoute } from '../routing/resolve.js';
import type { ProxyRuntime } from '../runtime.js';
import { excludingTried } from '../upstream/endpoint-health.js';
import { classifyUpstreamError, nothingSent, type UpstreamFailure } from '../upstream/errors.js';
import { tagOptionsOf } from './common.js';
import type { GatewayRouter } from './gateway.js';
import { responseHeaders } from './http-headers.js';
import { leaveMesh, routeOutbound } from './outbound.js';
import { ProxyErrorCodes } from './respond.js';
import {
  countFallbacks,
  LANE_SERVED_HEADER,
  type ListenerName,
  mergeHeaders,
  prependHop,
  provenance,
} from './service-route.js';

/**
 * `Upgrade` requests (WebSocket): routed by lane exactly like a plain request, then tunnelled both
 * ways. The endpoint's answer to the handshake is relayed with this hop's provenance; after a `101`
 * the two sockets are piped, and nothing more is parsed.
 */

export type UpgradeHandler = (req: IncomingMessage, client: Duplex, head: Buffer) => void;

/**
 * Open tunnels: an upgraded socket is no longer the HTTP server's, so `closeAllConnections` does not
 * reach it and `close` would wait for it forever. A stopping proxy cuts them after its drain.
 */
export class Tunnels {
  private readonly sockets = new Set<Duplex>();

  get size(): number {
    return this.sockets.size;
  }

  track(socket: Duplex): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  destroyAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }
}

/** An HTTP/1.1 response head for a raw socket. */
function rawHead(status: number, headers: OutgoingHttpHeaders, reason?: string): string {
  let head = `HTTP/1.1 ${status} ${reason || STATUS_CODES[status] || ''}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) head += `${name}: ${one}\r\n`;
  }
  return `${head}\r\n`;
}

/** Answers an upgrade request on its socket (there is no `ServerResponse`) and closes it. */
export function refuseUpgrade(
  client: Duplex,
  status: number,
  code: string,
  message: string,
  extra: OutgoingHttpHeaders = {},
): void {
  const body = `graylane: ${message}\n`;
  const head = rawHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-graylane-error': code,
    connection: 'close',
    ...extra,
  });
  client.end(head + body);
}

/** The forwarded head keeps what an upgrade needs, which `endToEndHeaders` strips as hop-by-hop. */
export function keepUpgrade(
  req: IncomingMessage,
  headers: Record<string, string | string[]>,
): void {
  headers.connection = 'upgrade';
  headers.upgrade = req.headers.upgrade ?? 'websocket';
}

export interface UpgradeAttempt {
  /** `http://host:port` (or https). */
  origin: string;
  path: string;
  headers: Record<string, string | string[]>;
  /** Adds this hop's headers (provenance, cookies) to the endpoint's answer. */
  decorate(headers: OutgoingHttpHeaders): void;
}

export type ExchangeOutcome =
  /** The endpoint answered (101: tunnelled; anything else: relayed, then the connection closed). */
  | { ok: true; status: number }
  /** No answer: the client may be told why, or the caller may try elsewhere. */
  | { ok: false; failure: UpstreamFailure; error: unknown };

function originOptions(origin: string) {
  const url = new URL(origin);
  const secure = url.protocol === 'https:';
  return {
    send: secure ? httpsRequest : httpRequest,
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: Number(url.port) || (secure ? 443 : 80),
  };
}

function pipeBoth(client: Duplex, upstream: Duplex): void {
  upstream.on('error', () => client.destroy());
  upstream.once('close', () => client.destroy());
  client.once('close', () => upstream.destroy());
  upstream.pipe(client);
  client.pipe(upstream);
}

/**
 * One handshake with one endpoint over a fresh connection: writes the request head, and on `101`
 * relays the answer and pipes both ways (`head`, what the client sent past its head, goes after).
 * Resolves once the endpoint answered or failed; a client that leaves first resolves as `aborted`.
 */
export function exchange(
  runtime: ProxyRuntime,
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  attempt: UpgradeAttempt,
): Promise<ExchangeOutcome> {
  const { send, host, port } = originOptions(attempt.origin);
  const { connectTimeoutMs, headersTimeoutMs } = runtime.options.upstream;
  return new Promise((resolve) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    let upstreamReq: ClientRequest;
    const settle = (outcome: ExchangeOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.off('close', onClientGone);
      resolve(outcome);
    };
    const fail = (failure: UpstreamFailure, error: unknown) => {
      upstreamReq.destroy();
      settle({ ok: false, failure, error });
    };
    const onClientGone = () => fail('aborted', new Error('client went away'));
    try {
      upstreamReq = send({
        host,
        port,
        method: req.method ?? 'GET',
        path: attempt.path,
        headers: attempt.headers,
        agent: false,
      });
    } catch (error) {
      settle({ ok: false, failure: 'other', error });
      return;
    }
    client.once('close', onClientGone);
    timer = setTimeout(
      () => fail('connect_timeout', new Error('connect timeout')),
      connectTimeoutMs,
    );
    upstreamReq.once('socket', (socket) => {
      socket.once('connect', () => {
        clearTimeout(timer);
        timer = setTimeout(() => fail('timeout', new Error('headers timeout')), headersTimeoutMs);
      });
    });
    upstreamReq.on('error', (error) => {
      if (!settled) settle({ ok: false, failure: classifyUpstreamError(error), error });
    });
    upstreamReq.once('upgrade', (res: IncomingMessage, upstream: Duplex, upgradeHead: Buffer) => {
      const status = res.statusCode ?? 101;
      const headers: OutgoingHttpHeaders = { ...res.headers };
      attempt.decorate(headers);
      client.write(rawHead(status, headers, res.statusMessage));
      if (upgradeHead.length > 0) client.write(upgradeHead);
      if (head.length > 0) upstream.write(head);
      settle({ ok: true, status });
      pipeBoth(client, upstream);
    });
    upstreamReq.once('response', (res: IncomingMessage) => {
      // The endpoint declined the upgrade: relay its answer and close, as the client's connection
      // is no longer one this proxy parses requests on.
      const status = res.statusCode ?? 502;
      const headers = responseHeaders(res.headers);
      attempt.decorate(headers);
      headers.connection = 'close';
      client.write(rawHead(status, headers, res.statusMessage));
      res.on('error', () => client.destroy());
      res.pipe(client);
      settle({ ok: true, status });
    });
    upstreamReq.end();
  });
}

export interface ServiceUpgrade {
  listener: ListenerName;
  table: CompiledTable;
  service: ServiceView;
  lane: string;
  path: string;
  headers: Record<string, string | string[]>;
  setCookie?: string[] | undefined;
}

/**
 * Routes an upgrade to the service's endpoints for its lane with the same fallback walk, health and
 * balancing as a plain request. A connection that could not be made is tried once more on the next
 * candidate (nothing was sent). The tunnel counts as one request in flight on its endpoint until it
 * closes; the duration metric records the handshake, not the life of the connection.
 */
export async function upgradeToService(
  runtime: ProxyRuntime,
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  request: ServiceUpgrade,
): Promise<void> {
  const { listener, table, service, lane, headers } = request;
  const started = process.hrtime.bigint();
  writeLaneTag(recordCarrier(headers), lane, tagOptionsOf(table));
  keepUpgrade(req, headers);
  runtime.budget.recordRequest(service.name);
  const tried = new Map<string, FallbackReason>();
  let last: UpgradeAttempted | undefined;
  for (;;) {
    const availability = tried.size === 0 ? runtime.health : excludingTried(runtime.health, tried);
    const resolution = resolveRoute(service, lane, availability);
    if (!resolution.ok) {
      if (last) break;
      refuseUpgrade(client, 503, ProxyErrorCodes.noEndpoint, resolution.reason, {
        [LANE_SERVED_HEADER]: `${service.name}=none`,
      });
      runtime.metrics.requests.inc({
        listener,
        service: service.name,
        lane,
        version: '',
        code: 503,
      });
      return;
    }
    const { set, endpoints, fallbacks } = resolution;
    const endpoint = runtime.balancer.pick(
      endpoints,
      service.loadBalancing,
      `${service.name}/${set.lane}`,
    )!;
    const hop = provenance(service.name, set.lane, fallbacks);
    const done = runtime.balancer.begin(endpoint);
    const outcome = await exchange(runtime, req, client, head, {
      origin: endpoint,
      path: request.path,
      headers,
      decorate: (response) => {
        if (request.setCookie) mergeHeaders(response, { 'set-cookie': request.setCookie });
        prependHop(response, hop);
      },
    });
    if (outcome.ok && outcome.status === 101) client.once('close', done);
    else done();
    last = { endpoint, set, fallbacks, hop, outcome };
    const failed = outcome.ok
      ? outcome.status >= 500
      : outcome.failure !== 'aborted' && outcome.failure !== 'other';
    if (failed) runtime.outliers.recordFailure(service.name, set.lane, endpoint, set.endpoints);
    else if (outcome.ok) runtime.outliers.recordSuccess(service.name, endpoint);
    const retry =
      !outcome.ok &&
      nothingSent(outcome.failure) &&
      tried.size === 0 &&
      runtime.budget.tryRetry(service.name);
    if (!retry) break;
    tried.set(endpoint, outcome.failure === 'connect_timeout' ? 'timeout' : 'connect_error');
  }
  countFallbacks(runtime, service.name, last.fallbacks);
  answerFailure(runtime, client, request, last);
  const { set } = last;
  const labels = { listener, service: service.name, lane: set.lane, version: set.version ?? '' };
  runtime.metrics.requests.inc({ ...labels, code: codeOf(last.outcome) });
  runtime.metrics.duration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
}

interface UpgradeAttempted {
  endpoint: string;
  set: EndpointSetView;
  fallbacks: readonly FallbackStep[];
  hop: string;
  outcome: ExchangeOutcome;
}

export const isTimeout = (failure: UpstreamFailure) =>
  failure === 'timeout' || failure === 'connect_timeout';

/** The status the client got: the endpoint's, 502/504 from the proxy, 0 when the client left. */
export function codeOf(outcome: ExchangeOutcome): number {
  if (outcome.ok) return outcome.status;
  if (outcome.failure === 'aborted') return 0;
  return isTimeout(outcome.failure) ? 504 : 502;
}

/** Tells the client why the last attempt got no answer from the endpoint (nothing when it did). */
function answerFailure(
  runtime: ProxyRuntime,
  client: Duplex,
  request: ServiceUpgrade,
  last: UpgradeAttempted,
): void {
  const { outcome, set, endpoint, hop } = last;
  if (outcome.ok || outcome.failure === 'aborted') return;
  const { service, lane } = request;
  runtime.logger.warn(
    { service: service.name, lane, endpoint, failure: outcome.failure, err: outcome.error },
    'upstream upgrade failed',
  );
  const timeout = isTimeout(outcome.failure);
  const what = `service ${service.name} lane ${set.lane} endpoint ${endpoint}`;
  refuseUpgrade(
    client,
    codeOf(outcome),
    timeout ? ProxyErrorCodes.upstreamTimeout : ProxyErrorCodes.upstream,
    `${timeout ? 'timed out waiting for' : 'could not reach'} ${what}`,
    { [LANE_SERVED_HEADER]: hop },
  );
}

/**
 * Runs an upgrade handler on a socket the proxy now owns: errors on it are expected (a client that
 * leaves), data waits until a tunnel reads it, and anything thrown is answered 500, not a crash.
 */
export function guardedUpgrade(
  runtime: ProxyRuntime,
  tunnels: Tunnels,
  handler: (req: IncomingMessage, client: Duplex, head: Buffer) => Promise<void>,
): UpgradeHandler {
  return (req, client, head) => {
    client.on('error', () => client.destroy());
    client.pause();
    tunnels.track(client);
    handler(req, client, head).catch((error: unknown) => {
      runtime.logger.error({ err: error, url: req.url }, 'upgrade handler failed');
      if (client.writable)
        refuseUpgrade(client, 500, 'GRAYLANE_ERR_INTERNAL', 'internal proxy error');
      else client.destroy();
    });
  };
}

function tableOrRefuse(runtime: ProxyRuntime, client: Duplex): CompiledTable | undefined {
  const table = runtime.tables.current;
  if (!table) refuseUpgrade(client, 503, ProxyErrorCodes.notReady, 'no route table loaded yet');
  return table;
}

/** The gateway's upgrades: the same entrypoint match and lane assignment as its plain requests. */
export function createGatewayUpgradeHandler(
  runtime: ProxyRuntime,
  router: GatewayRouter,
  tunnels: Tunnels,
): UpgradeHandler {
  return guardedUpgrade(runtime, tunnels, async (req, client, head) => {
    const table = tableOrRefuse(runtime, client);
    if (!table) return;
    const route = router(table, req);
    if (!route.ok) {
      refuseUpgrade(client, route.status, route.code, route.message);
      return;
    }
    await upgradeToService(runtime, req, client, head, {
      listener: 'gateway',
      table,
      service: route.service,
      lane: route.assignment.lane,
      path: route.path,
      headers: route.headers,
      setCookie: route.setCookie,
    });
  });
}

/** The sidecar's upgrades: to a service by lane, or through to a host outside the mesh untagged. */
export function createOutboundUpgradeHandler(
  runtime: ProxyRuntime,
  self: () => AddressInfo | undefined,
  tunnels: Tunnels,
): UpgradeHandler {
  return guardedUpgrade(runtime, tunnels, async (req, client, head) => {
    const table = tableOrRefuse(runtime, client);
    if (!table) return;
    const route = routeOutbound(runtime, table, req, self());
    if (!route.ok) {
      refuseUpgrade(client, route.status, route.code, route.message);
      return;
    }
    if (route.service) {
      await upgradeToService(runtime, req, client, head, {
        listener: 'outbound',
        table,
        service: route.service,
        lane: route.lane,
        path: route.target.path,
        headers: route.headers,
      });
      return;
    }
    const refused = leaveMesh(runtime, table, route);
    if (refused) {
      refuseUpgrade(client, refused.status, refused.code, refused.message);
      return;
    }
    keepUpgrade(req, route.headers);
    const { target } = route;
    const outcome = await exchange(runtime, req, client, head, {
      origin: `${target.protocol}//${target.host}`,
      path: target.path,
      headers: route.headers,
      decorate: () => {},
    });
    if (!outcome.ok && outcome.failure !== 'aborted') {
      refuseUpgrade(client, 502, ProxyErrorCodes.upstream, `could not reach ${target.host}`);
    }
  });
}
