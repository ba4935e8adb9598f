import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { recordCarrier, removeLaneTag } from '@graylane/lane-core';
import type { CompiledTable, ServiceView } from '../routing/compiled-table.js';
import { hostWithoutPort, serviceFromHost } from '../routing/entrypoint.js';
import type { ProxyRuntime } from '../runtime.js';
import { AbortSwitch } from '../upstream/abort.js';
import { forwardOnce } from '../upstream/forward.js';
import {
  guarded,
  loopMessage,
  nextVia,
  readRequestLane,
  tableOrRespond,
  tagOptionsOf,
} from './common.js';
import { endToEndHeaders, setForwardedHeaders } from './http-headers.js';
import { ProxyErrorCodes, type Refusal, rawResponse, refusal, respondError } from './respond.js';
import { forwardToService } from './service-route.js';

export interface OutboundTarget {
  /** `http:` or `https:`; origin-form requests are plain http. */
  protocol: string;
  host: string;
  path: string;
}

/** Absolute-form (`GET http://backend:8080/x`, an app's HTTP_PROXY) or origin-form with `Host`. */
function targetOf(req: IncomingMessage): OutboundTarget | undefined {
  const url = req.url ?? '/';
  if (url.startsWith('/')) {
    return req.headers.host ? { protocol: 'http:', host: req.headers.host, path: url } : undefined;
  }
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return undefined;
    return {
      protocol: parsed.protocol,
      host: parsed.host,
      path: `${parsed.pathname}${parsed.search}`,
    };
  } catch {
    return undefined;
  }
}

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '0.0.0.0', '[::]']);

/** A call addressed to the sidecar itself (no Host, or its own address) would loop through it. */
function addressesItself(host: string, self: AddressInfo | undefined): boolean {
  if (!self) return false;
  const bare = hostWithoutPort(host) ?? '';
  const port = Number(host.slice(host.lastIndexOf(':') + 1)) || 80;
  return port === self.port && (LOCAL_HOSTS.has(bare) || bare === self.address);
}

/** Where the sidecar sends a call: a service of the table, or (none) a host outside the mesh. */
export interface OutboundRoute {
  ok: true;
  target: OutboundTarget;
  service: ServiceView | undefined;
  lane: string;
  /** End-to-end headers to forward, x-forwarded-* and Via set (and Host, for a service). */
  headers: Record<string, string | string[]>;
}

/** The sidecar's decision for one call, apart from how it is forwarded (plain request or upgrade). */
export function routeOutbound(
  runtime: ProxyRuntime,
  table: CompiledTable,
  req: IncomingMessage,
  self: AddressInfo | undefined,
): OutboundRoute | Refusal {
  const target = targetOf(req);
  if (!target) return refusal(400, ProxyErrorCodes.badRequest, 'request has no target host');
  const via = nextVia(runtime, req);
  if ('loop' in via) return refusal(508, ProxyErrorCodes.loop, loopMessage(via.loop));
  if (addressesItself(target.host, self)) {
    return refusal(
      400,
      ProxyErrorCodes.badRequest,
      `${target.host} is this proxy: name the service in Host or the URL`,
    );
  }
  const serviceName = serviceFromHost(target.host);
  const service = serviceName === undefined ? undefined : table.services.get(serviceName);
  const tag = readRequestLane(runtime, tagOptionsOf(table), req, 'outbound');
  const headers = endToEndHeaders(req.headers);
  setForwardedHeaders(headers, req, false);
  headers.via = via.via;
  if (service) headers.host = target.host;
  return { ok: true, target, service, lane: tag.lane, headers };
}

/**
 * A call to a host outside the mesh leaves with no lane tag (or is refused, with `unknownHosts:
 * refuse`). Returns the refusal, or undefined after preparing `headers` to pass through.
 */
export function leaveMesh(
  runtime: ProxyRuntime,
  table: CompiledTable,
  route: OutboundRoute,
): Refusal | undefined {
  const { target, headers } = route;
  if (runtime.options.unknownHosts === 'refuse') {
    runtime.metrics.passthrough.inc({ kind: 'http', outcome: 'refused' });
    return refusal(
      502,
      ProxyErrorCodes.unknownHost,
      `${target.host} is not a service in the route table`,
    );
  }
  removeLaneTag(recordCarrier(headers), tagOptionsOf(table));
  headers.host = target.host;
  runtime.metrics.passthrough.inc({ kind: 'http', outcome: 'passed' });
  return undefined;
}

/** The sidecar listener: routes calls to services by lane, and passes other hosts through untagged. */
export function createOutboundHandler(runtime: ProxyRuntime, self: () => AddressInfo | undefined) {
  return guarded(runtime, async (req: IncomingMessage, res: ServerResponse) => {
    const table = tableOrRespond(runtime, res);
    if (!table) return;
    const route = routeOutbound(runtime, table, req, self());
    if (!route.ok) {
      respondError(res, route.status, route.code, route.message);
      return;
    }
    if (route.service) {
      await forwardToService(runtime, req, res, {
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
      respondError(res, refused.status, refused.code, refused.message);
      return;
    }
    await passThrough(runtime, req, res, route.target, route.headers);
  });
}

async function passThrough(
  runtime: ProxyRuntime,
  req: IncomingMessage,
  res: ServerResponse,
  target: OutboundTarget,
  headers: Record<string, string | string[]>,
): Promise<void> {
  const abort = new AbortSwitch();
  res.once('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  const outcome = await forwardOnce(
    runtime.dispatcher,
    req,
    res,
    {
      origin: `${target.protocol}//${target.host}`,
      path: target.path,
      method: req.method ?? 'GET',
      headers,
    },
    () => {},
    abort,
  );
  if (!outcome.ok && !outcome.responded && outcome.failure !== 'aborted') {
    respondError(res, 502, ProxyErrorCodes.upstream, `could not reach ${target.host}`);
  }
}

function tunnel(
  client: Duplex,
  head: Buffer,
  host: string,
  port: number,
  authority: string,
  refuse: (status: number, code: string, reason: string) => void,
) {
  const upstream: Socket = connect({ host, port });
  let established = false;
  upstream.once('error', () => {
    if (established) client.destroy();
    else refuse(502, ProxyErrorCodes.upstream, `could not reach ${authority}`);
  });
  client.once('error', () => upstream.destroy());
  upstream.once('connect', () => {
    established = true;
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
    upstream.once('close', () => client.destroy());
  });
  client.once('close', () => upstream.destroy());
}

/**
 * `CONNECT host:port`. A tunnel to any host outside the mesh is blind, so an app's HTTPS calls through
 * HTTPS_PROXY keep working. A tunnel to a service (undici's ProxyAgent tunnels even plain-http calls
 * by default) is joined to this listener itself, so the HTTP inside is routed by lane like any other
 * call; TLS inside cannot be, and fails there as a bad request.
 */
export function createConnectHandler(runtime: ProxyRuntime, server: Server) {
  return (req: IncomingMessage, client: Duplex, head: Buffer): void => {
    const authority = req.url ?? '';
    const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(authority);
    const refuse = (status: number, code: string, reason: string) => {
      client.end(rawResponse(status, code, reason));
    };
    if (!match) {
      refuse(400, ProxyErrorCodes.badRequest, 'CONNECT needs host:port');
      return;
    }
    const service = serviceFromHost(match[1]);
    if (service !== undefined && runtime.tables.current?.services.has(service)) {
      const self = server.address() as AddressInfo;
      tunnel(client, head, self.address, self.port, authority, refuse);
      return;
    }
    if (runtime.options.unknownHosts === 'refuse') {
      runtime.metrics.passthrough.inc({ kind: 'connect', outcome: 'refused' });
      refuse(502, ProxyErrorCodes.unknownHost, `${authority} is not a service in the route table`);
      return;
    }
    runtime.metrics.passthrough.inc({ kind: 'connect', outcome: 'passed' });
    tunnel(client, head, match[1]!.replace(/^\[|\]$/g, ''), Number(match[2]), authority, refuse);
  };
}
