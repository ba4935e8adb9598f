import type { EventEmitter } from 'node:events';
import { IncomingMessage } from 'node:http';
import {
  BAGGAGE_HEADER,
  joinHeaderValues,
  readLaneTagOnce,
  STABLE,
  setBaggageValue,
} from '@graylane/lane-core';
import { getConfig } from '../config.js';
import {
  applyInContext,
  bindEmitterTo,
  bindPrototypeEvents,
  boundContextOf,
  type LaneContext,
  markBound,
  requestStore,
} from '../context.js';
import { trackTaggedRequest, trackTaggedResult } from '../leak.js';
import { internalError } from '../log.js';
import { countInvalidLane } from '../metrics.js';
import { otelContextActive } from '../otel/bridge.js';

/** The part of a `node:http` `IncomingMessage` the SDK reads (also Fastify's `request.raw`, Koa's `ctx.req`). */
export interface IncomingLike {
  headers: Record<string, string | string[] | undefined>;
  emit?: EventEmitter['emit'];
}

/**
 * The part of a `ServerResponse` the SDK uses: its `close` ends the request for leak detection. A
 * Node response (`writeHead`, `getHeader`, `setHeader`) also gets the provenance hops of the
 * request's outbound calls (`x-lane-served`) when its head is written.
 */
export interface OutgoingLike {
  once(event: 'close', listener: () => void): unknown;
}

const entered = Symbol.for('graylane.sdk.entered');
type Marked = IncomingLike & { [entered]?: LaneContext };

/** A request's context: node:http requests carry it as their bound-events mark, others a mark of their own. */
function enteredContext(req: Marked): LaneContext | undefined {
  return req instanceof IncomingMessage ? boundContextOf(req) : req[entered];
}

/**
 * Reads the lane from an incoming request and runs `fn` in it. Any framework: call it from the
 * earliest hook with the raw Node request, and pass the response so leak detection knows when the
 * request ends (without one, the end is when `fn`'s result settles).
 *
 * A malformed tag is dropped and counted (the request runs in the stable lane); an internal error is
 * logged once and `fn` runs with no lane. Calling it twice for one request (a global hook and a
 * middleware) reuses the first context.
 */
export function runWithIncoming<T>(req: IncomingLike, fn: () => T, res?: OutgoingLike): T {
  return applyWithIncoming(req, res, fn, undefined, NO_ARGS);
}

const NO_ARGS: readonly unknown[] = Object.freeze([]);

/** `runWithIncoming` for `fn.apply(thisArg, args)`: the server hook's form, with no closure per request. */
export function applyWithIncoming<T>(
  req: IncomingLike,
  res: OutgoingLike | undefined,
  fn: (...args: never[]) => T,
  thisArg: unknown,
  args: ArrayLike<unknown>,
): T {
  const marked = req as Marked;
  const existing = enteredContext(marked);
  if (existing !== undefined) return applyInContext(existing, fn, thisArg, args);
  let store: LaneContext;
  try {
    store = enterRequest(marked, res);
  } catch (err) {
    internalError('inbound', err);
    return Reflect.apply(fn, thisArg, args);
  }
  const result = applyInContext(store, fn, thisArg, args);
  if (store.lane !== STABLE && res === undefined) trackTaggedResult(result, store);
  return result;
}

function enterRequest(req: Marked, res: OutgoingLike | undefined): LaneContext {
  const options = getConfig();
  const tag = readLaneTagOnce(
    req.headers[options.laneHeader],
    req.headers[BAGGAGE_HEADER],
    options,
  );
  if (tag.invalid) countInvalidLane('inbound');
  if (tag.source === 'header' || tag.invalid) agreeOtelBaggage(req, tag.lane, options.baggageKey);
  // Only a Node response can relay provenance; without one nothing is collected.
  const store = requestStore(tag.lane, tag.source, typeof res === 'object' ? res : undefined);
  // Body events are emitted from the connection's context; bind them to the request's.
  if (req instanceof IncomingMessage) {
    bindPrototypeEvents(IncomingMessage.prototype);
    markBound(req, store);
  } else {
    req[entered] = store;
    if (typeof req.emit === 'function') bindEmitterTo(req as Pick<EventEmitter, 'emit'>, store);
  }
  if (store.lane !== STABLE && res !== undefined && typeof res.once === 'function') {
    trackTaggedRequest(res, store);
  }
  return store;
}

/**
 * With OTel managing context, its http instrumentation extracts the request's context from the
 * `baggage` header alone, from the root context; when its server hook runs inside ours (OTel loaded
 * first) that extraction replaces the lane our hook put in the OTel baggage. So the lane the SDK read
 * (the header wins) is written into the request's `baggage` header, where any extraction finds it,
 * whatever the hook order; an invalid tag's baggage entry is removed, as the SDK dropped it.
 */
function agreeOtelBaggage(req: IncomingLike, lane: string, baggageKey: string): void {
  if (!otelContextActive()) return;
  const baggage = joinHeaderValues(req.headers[BAGGAGE_HEADER]);
  const next = setBaggageValue(baggage, baggageKey, lane === STABLE ? undefined : lane);
  if (next === baggage) return;
  if (next === undefined) delete req.headers[BAGGAGE_HEADER];
  else req.headers[BAGGAGE_HEADER] = next;
}
