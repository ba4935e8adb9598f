import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { parseCookie, stringifySetCookie } from 'cookie';
import { readRequestLane, tagOptionsOf } from '../forwarding/lane-tag.js';
import { forwardToService, type ServiceRequest } from '../forwarding/service-route.js';
import type { Tunnels } from '../forwarding/tunnel.js';
import { upgradeToService } from '../forwarding/upgrade.js';
import { nextVia } from '../forwarding/via.js';
import {
  endToEndHeaders,
  setForwarded,
  setForwardedHeaders,
  singleHeader,
} from '../http/headers.js';
import { ProxyErrorCodes, type Refusal, refusal } from '../http/respond.js';
import { type Assignment, assignLane } from '../routing/assign.js';
import {
  type CompiledEntrypoint,
  type CompiledTable,
  laneLabel,
  type ServiceView,
} from '../routing/compiled-table.js';
import { matchEntrypoint } from '../routing/entrypoint.js';
import { WeightedSplitter } from '../routing/sticky.js';
import type { ProxyRuntime } from '../runtime.js';
import { currentTable, driveListener, isRefusal, type ListenerHandlers } from './driver.js';

const STICKY_COOKIE_MAX_AGE_S = 30 * 24 * 3600;

/** Where the gateway sends a request: the entrypoint's service, in the lane it picked. */
export interface GatewayRoute {
  ok: true;
  table: CompiledTable;
  entry: CompiledEntrypoint;
  service: ServiceView;
  assignment: Assignment;
  path: string;
  /** End-to-end headers to forward, x-forwarded-* and Via set; the lane tag is set when forwarding. */
  headers: Record<string, string | string[]>;
  /** Sticky cookies to set on the response. */
  setCookie: string[] | undefined;
}

export type GatewayRouter = (req: IncomingMessage) => GatewayRoute | Refusal;

/**
 * The gateway's decision for one request (entrypoint, loop check, lane, headers), apart from how it is
 * forwarded, so plain requests and upgrades share it, and the weighted splits count them together.
 */
export function createGatewayRouter(runtime: ProxyRuntime): GatewayRouter {
  // Error-diffusion state per rule; a new table revision starts afresh.
  let splitters = new Map<string, WeightedSplitter>();
  let splitterRevision = -1;
  const splitterFor = (table: CompiledTable) => (entrypoint: string, index: number) => {
    if (table.revision !== splitterRevision) {
      splitters = new Map();
      splitterRevision = table.revision;
    }
    const key = `${entrypoint}#${index}`;
    const existing = splitters.get(key);
    if (existing) return existing;
    const splitter = new WeightedSplitter();
    splitters.set(key, splitter);
    return splitter;
  };

  function assign(
    table: CompiledTable,
    entry: CompiledEntrypoint,
    req: IncomingMessage,
  ): Assignment {
    let cookies: Record<string, string | undefined> | undefined;
    return assignLane(entry, {
      clientTag: readRequestLane(runtime, tagOptionsOf(table), req, 'gateway'),
      header: (name) => singleHeader(req.headers[name]),
      cookie: (name) => {
        cookies ??= parseCookie(singleHeader(req.headers.cookie) ?? '');
        return cookies[name];
      },
      knownLanes: table.knownLanes,
      splitter: splitterFor(table),
      newStickyKey: randomUUID,
    });
  }

  return (req) => {
    const table = currentTable(runtime);
    if (isRefusal(table)) return table;
    const url = req.url ?? '/';
    if (!url.startsWith('/')) {
      return refusal(
        400,
        ProxyErrorCodes.badRequest,
        'the gateway takes origin-form requests only',
      );
    }
    const entry = matchEntrypoint(table, req.headers.host, url);
    if (!entry) return refusal(404, ProxyErrorCodes.noEntrypoint, `no entrypoint matches ${url}`);
    const via = nextVia(runtime, req);
    if (typeof via !== 'string') return via;
    const assignment = assign(table, entry, req);
    runtime.metrics.recordAssignment(
      entry.name,
      laneLabel(table, assignment.lane),
      assignment.reason,
    );
    const secretHeader = entry.clientLanesSecret?.header;
    const headers = endToEndHeaders(
      req.headers,
      secretHeader ? new Set([secretHeader]) : undefined,
    );
    const trusted = runtime.trustedProxies.has(req.socket.remoteAddress);
    setForwardedHeaders(headers, req, trusted);
    setForwarded(headers, req, trusted);
    // The client's scheme, as this gateway saw it or a trusted proxy in front said.
    const secure = headers['x-forwarded-proto'] === 'https';
    headers.via = via;
    const setCookie = assignment.setCookies?.map(({ name, value }) =>
      stringifySetCookie({
        name,
        value,
        path: '/',
        maxAge: STICKY_COOKIE_MAX_AGE_S,
        httpOnly: true,
        sameSite: 'lax',
        secure,
      }),
    );
    return {
      ok: true,
      table,
      entry,
      service: table.services.get(entry.service)!,
      assignment,
      path: url,
      headers,
      setCookie,
    };
  };
}

/** The entry listener: matches an entrypoint, picks the request's lane, and forwards it tagged. */
export function createGatewayListener(runtime: ProxyRuntime, tunnels: Tunnels): ListenerHandlers {
  const route = createGatewayRouter(runtime);
  const toService = (r: GatewayRoute) => ({
    listener: 'gateway' as const,
    table: r.table,
    service: r.service,
    lane: r.assignment.lane,
    path: r.path,
    headers: r.headers,
  });
  return driveListener(runtime, 'gateway', tunnels, {
    route,
    request: (req, res, r) => {
      const request: ServiceRequest = toService(r);
      if (r.setCookie) request.responseHeaders = { 'set-cookie': r.setCookie };
      return forwardToService(runtime, req, res, request);
    },
    upgrade: (req, client, head, r) =>
      upgradeToService(runtime, req, client, head, { ...toService(r), setCookie: r.setCookie }),
  });
}
