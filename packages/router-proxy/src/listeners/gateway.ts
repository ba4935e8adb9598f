import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Assignment, assignLane } from '../routing/assign.js';
import type { CompiledEntrypoint, CompiledTable } from '../routing/compiled-table.js';
import { matchEntrypoint } from '../routing/entrypoint.js';
import { WeightedSplitter } from '../routing/sticky.js';
import type { ProxyRuntime } from '../runtime.js';
import { guarded, parseCookies, passVia, readRequestLane, tableOrRespond } from './common.js';
import { endToEndHeaders, setForwardedHeaders, singleHeader } from './http-headers.js';
import { ProxyErrorCodes, respondError } from './respond.js';
import { forwardToService } from './service-route.js';

const STICKY_COOKIE_MAX_AGE_S = 30 * 24 * 3600;

/** The entry listener: matches an entrypoint, picks the request's lane, and forwards it tagged. */
export function createGatewayHandler(runtime: ProxyRuntime) {
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
      clientTag: readRequestLane(runtime, table, req, 'gateway'),
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

  return guarded(runtime, async (req: IncomingMessage, res: ServerResponse) => {
    const table = tableOrRespond(runtime, res);
    if (!table) return;
    const url = req.url ?? '/';
    if (!url.startsWith('/')) {
      respondError(
        res,
        400,
        ProxyErrorCodes.badRequest,
        'the gateway takes origin-form requests only',
      );
      return;
    }
    const entry = matchEntrypoint(table, req.headers.host, url);
    if (!entry) {
      respondError(res, 404, ProxyErrorCodes.noEntrypoint, `no entrypoint matches ${url}`);
      return;
    }
    const via = passVia(runtime, req, res);
    if (via === undefined) return;
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
    headers.via = via;
    const setCookie = assignment.setCookies?.map(
      ({ name, value }) =>
        `${name}=${value}; Path=/; Max-Age=${STICKY_COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Lax`,
    );
    await forwardToService(runtime, req, res, {
      listener: 'gateway',
      table,
      service: table.services.get(entry.service)!,
      lane: assignment.lane,
      path: url,
      headers,
      ...(setCookie ? { responseHeaders: { 'set-cookie': setCookie } } : {}),
    });
  });
}
