import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Assignment, assignLane } from '../routing/assign.js';
import type { CompiledEntrypoint, CompiledTable, ServiceView } from '../routing/compiled-table.js';
import { matchEntrypoint } from '../routing/entrypoint.js';
import { WeightedSplitter } from '../routing/sticky.js';
import type { ProxyRuntime } from '../runtime.js';
import {
  guarded,
  loopMessage,
  nextVia,
  parseCookies,
  readRequestLane,
  tableOrRespond,
  tagOptionsOf,
} from './common.js';
import { endToEndHeaders, setForwardedHeaders, singleHeader } from './http-headers.js';
import { ProxyErrorCodes, type Refusal, refusal, respondError } from './respond.js';
import { forwardToService } from './service-route.js';

const STICKY_COOKIE_MAX_AGE_S = 30 * 24 * 3600;

/** Where the gateway sends a request: the entrypoint's service, in the lane it picked. */
export interface GatewayRoute {
  ok: true;
  entry: CompiledEntrypoint;
  service: ServiceView;
  assignment: Assignment;
  path: string;
  /** End-to-end headers to forward, x-forwarded-* and Via set; the lane tag is set when forwarding. */
  headers: Record<string, string | string[]>;
  /** Sticky cookies to set on the response. */
  setCookie: string[] | undefined;
}

export type GatewayRouter = (table: CompiledTable, req: IncomingMessage) => GatewayRoute | Refusal;

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
    let cookies: Map<string, string> | undefined;
    return assignLane(entry, {
      clientTag: readRequestLane(runtime, tagOptionsOf(table), req, 'gateway'),
      header: (name) => singleHeader(req.headers[name]),
      cookie: (name) => {
        cookies ??= parseCookies(singleHeader(req.headers.cookie));
        return cookies.get(name);
      },
      knownLanes: table.knownLanes,
      splitter: splitterFor(table),
      newStickyKey: randomUUID,
    });
  }

  return (table, req) => {
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
    if ('loop' in via) return refusal(508, ProxyErrorCodes.loop, loopMessage(via.loop));
    const assignment = assign(table, entry, req);
    runtime.metrics.laneAssignments.inc({
      entrypoint: entry.name,
      lane: assignment.lane,
      reason: assignment.reason,
    });
    const secretHeader = entry.clientLanesSecret?.header;
    const headers = endToEndHeaders(
      req.headers,
      secretHeader ? new Set([secretHeader]) : undefined,
    );
    setForwardedHeaders(headers, req, true);
    headers.via = via.via;
    const setCookie = assignment.setCookies?.map(
      ({ name, value }) =>
        `${name}=${value}; Path=/; Max-Age=${STICKY_COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Lax`,
    );
    return {
      ok: true,
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
export function createGatewayHandler(
  runtime: ProxyRuntime,
  router: GatewayRouter = createGatewayRouter(runtime),
) {
  return guarded(runtime, async (req: IncomingMessage, res: ServerResponse) => {
    const table = tableOrRespond(runtime, res);
    if (!table) return;
    const route = router(table, req);
    if (!route.ok) {
      respondError(res, route.status, route.code, route.message);
      return;
    }
    await forwardToService(runtime, req, res, {
      listener: 'gateway',
      table,
      service: route.service,
      lane: route.assignment.lane,
      path: route.path,
      headers: route.headers,
      ...(route.setCookie ? { responseHeaders: { 'set-cookie': route.setCookie } } : {}),
    });
  });
}
