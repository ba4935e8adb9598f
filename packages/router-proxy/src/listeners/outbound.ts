import type { IncomingMessage, ServerResponse } from 'node:http';
import { recordCarrier, removeLaneTag } from '@graylane/lane-core';
import { readRequestLane, tagOptionsOf } from '../forwarding/lane-tag.js';
import { settleForward, watchRequest } from '../forwarding/request-signal.js';
import { addressesItself, type OwnAddresses } from '../forwarding/self-address.js';
import { forwardToService } from '../forwarding/service-route.js';
import { exchange, keepUpgrade, type Tunnels } from '../forwarding/tunnel.js';
import { upgradeToService } from '../forwarding/upgrade.js';
import { nextVia } from '../forwarding/via.js';
import { endToEndHeaders, setForwardedHeaders } from '../http/headers.js';
import { ProxyErrorCodes, type Refusal, refusal, respondError } from '../http/respond.js';
import type { CompiledTable, ServiceView } from '../routing/compiled-table.js';
import { serviceForHost } from '../routing/service-host.js';
import type { ProxyRuntime } from '../runtime.js';
import { forwardOnce } from '../upstream/forward.js';
import { currentTable, driveListener, isRefusal, type ListenerHandlers } from './driver.js';

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

/** Where the sidecar sends a call: a service of the table, or (none) a host outside the mesh. */
export interface OutboundRoute {
  ok: true;
  table: CompiledTable;
  target: OutboundTarget;
  service: ServiceView | undefined;
  lane: string;
  /** End-to-end headers to forward, x-forwarded-* and Via set (and Host, for a service). */
  headers: Record<string, string | string[]>;
}

/** The sidecar's decision for one call, apart from how it is forwarded (plain request or upgrade). */
export function routeOutbound(
  runtime: ProxyRuntime,
  req: IncomingMessage,
  own: OwnAddresses,
): OutboundRoute | Refusal {
  const table = currentTable(runtime);
  if (isRefusal(table)) return table;
  const target = targetOf(req);
  if (!target) return refusal(400, ProxyErrorCodes.badRequest, 'request has no target host');
  const via = nextVia(runtime, req);
  if (typeof via !== 'string') return via;
  if (addressesItself(target.host, target.protocol === 'https:' ? 443 : 80, own)) {
    return refusal(
      400,
      ProxyErrorCodes.badRequest,
      `${target.host} is this proxy: name the service in Host or the URL`,
    );
  }
  const service = serviceForHost(table, target.host, runtime.options.serviceDomains);
  const tag = readRequestLane(runtime, tagOptionsOf(table), req, 'outbound');
  const headers = endToEndHeaders(req.headers);
  setForwardedHeaders(headers, req, true);
  headers.via = via;
  const route: OutboundRoute = { ok: true, table, target, service, lane: tag.lane, headers };
  if (service) {
    headers.host = target.host;
    return route;
  }
  return leaveMesh(runtime, route) ?? route;
}

/**
 * A call to a host outside the mesh leaves with no lane tag (or is refused, with `unknownHosts:
 * refuse`). Returns the refusal, or undefined after preparing `headers` to pass through.
 */
function leaveMesh(runtime: ProxyRuntime, route: OutboundRoute): Refusal | undefined {
  const { table, target, headers } = route;
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
export function createOutboundListener(
  runtime: ProxyRuntime,
  own: OwnAddresses,
  tunnels: Tunnels,
): ListenerHandlers {
  const toService = (route: OutboundRoute, service: ServiceView) => ({
    listener: 'outbound' as const,
    table: route.table,
    service,
    lane: route.lane,
    path: route.target.path,
    headers: route.headers,
  });
  return driveListener(runtime, 'outbound', tunnels, {
    route: (req) => routeOutbound(runtime, req, own),
    request: (req, res, route) =>
      route.service
        ? forwardToService(runtime, req, res, toService(route, route.service))
        : passThrough(runtime, req, res, route.target, route.headers),
    async upgrade(req, client, head, route) {
      if (route.service) {
        await upgradeToService(runtime, req, client, head, toService(route, route.service));
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
        respondError(client, 502, ProxyErrorCodes.upstream, `could not reach ${target.host}`);
      }
    },
  });
}

async function passThrough(
  runtime: ProxyRuntime,
  req: IncomingMessage,
  res: ServerResponse,
  target: OutboundTarget,
  headers: Record<string, string | string[]>,
): Promise<void> {
  const signal = watchRequest(runtime, req, res);
  const outcome = await forwardOnce(
    runtime,
    req,
    res,
    {
      origin: `${target.protocol}//${target.host}`,
      path: target.path,
      method: req.method ?? 'GET',
      headers,
    },
    () => {},
    signal,
  );
  signal.dispose();
  settleForward(runtime, res, signal, outcome, {
    listener: 'outbound',
    what: target.host,
    log: { host: target.host },
    message: 'pass-through failed',
  });
}
