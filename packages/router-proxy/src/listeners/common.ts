import type { IncomingMessage, ServerResponse } from 'node:http';
import { defaultTagOptions, type LaneTag, readLaneTag, type TagOptions } from '@graylane/lane-core';
import type { CompiledTable } from '../routing/compiled-table.js';
import type { ProxyRuntime } from '../runtime.js';
import { ProxyErrorCodes, respondError } from './respond.js';
import type { ListenerName } from './service-route.js';

/** The table to route with, or a 503 while none is loaded yet. */
export function tableOrRespond(
  runtime: ProxyRuntime,
  res: ServerResponse,
): CompiledTable | undefined {
  const table = runtime.tables.current;
  if (!table) respondError(res, 503, ProxyErrorCodes.notReady, 'no route table loaded yet');
  return table;
}

function viaEntries(req: IncomingMessage): string[] {
  const via = req.headers.via;
  if (!via) return [];
  return via.split(',').map((entry) => entry.trim());
}

/**
 * Loop protection in the manner of `Via` (RFC 9110 §7.6.3): each pass adds this proxy's token, and a
 * request that already carries it `loopLimit` times is a loop. Returns the `Via` value to forward, or
 * how many times the request already passed when it is a loop.
 */
export function nextVia(
  runtime: ProxyRuntime,
  req: IncomingMessage,
): { via: string } | { loop: number } {
  const entries = viaEntries(req);
  const token = runtime.viaToken;
  const passes = entries.filter((entry) => entry.endsWith(` ${token}`)).length;
  if (passes >= runtime.options.loopLimit) return { loop: passes };
  return { via: [...entries, `1.1 ${token}`].join(', ') };
}

export const loopMessage = (passes: number) => `request passed this proxy ${passes} times`;

/** `nextVia` for a request handler: a loop is answered 508, and undefined returned. */
export function passVia(
  runtime: ProxyRuntime,
  req: IncomingMessage,
  res: ServerResponse,
): string | undefined {
  const next = nextVia(runtime, req);
  if ('via' in next) return next.via;
  respondError(res, 508, ProxyErrorCodes.loop, loopMessage(next.loop));
  return undefined;
}

/** The table's lane header and baggage key; the defaults while no table is loaded. */
export function tagOptionsOf(table: CompiledTable | undefined): TagOptions {
  if (!table) return defaultTagOptions;
  return { laneHeader: table.table.laneHeader, baggageKey: table.table.baggageKey };
}

/** Reads the lane tag of a request and counts an invalid one, which is then dropped. */
export function readRequestLane(
  runtime: ProxyRuntime,
  options: TagOptions,
  req: IncomingMessage,
  listener: ListenerName,
): LaneTag {
  const tag = readLaneTag(req.headers[options.laneHeader], req.headers.baggage, options);
  if (tag.invalid) runtime.metrics.invalidLane.inc({ listener });
  return tag;
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  if (!header) return cookies;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const name = part.slice(0, eq).trim();
    if (name && !cookies.has(name)) cookies.set(name, part.slice(eq + 1).trim());
  }
  return cookies;
}

/** Runs a request handler and turns anything it throws into a 500, so no request crashes the process. */
export function guarded(
  runtime: ProxyRuntime,
  handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    handler(req, res).catch((error: unknown) => {
      runtime.logger.error({ err: error, url: req.url }, 'request handler failed');
      respondError(res, 500, 'GRAYLANE_ERR_INTERNAL', 'internal proxy error');
    });
  };
}
