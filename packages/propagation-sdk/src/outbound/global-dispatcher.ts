import diagnosticsChannel from 'node:diagnostics_channel';
import { STABLE } from '@graylane/lane-core';
import { type Dispatcher, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { headersToRecord, objectCarrier } from '../carriers.js';
import { getConfig } from '../config.js';
import { currentContext, currentRelay, isEnded } from '../context.js';
import { LaneLeakError } from '../errors.js';
import { callSiteBelow } from '../leak.js';
import { internalError, warnOnce } from '../log.js';
import { type Relay, rawHeaderValue, recordServed } from '../provenance.js';
import { shared } from '../state.js';
import { tagOutbound } from './tag.js';
import { laneInterceptor } from './undici.js';

/**
 * undici's global dispatcher, which `undici.request/fetch/stream` and Node's own `fetch` send through.
 * The SDK composes its interceptor onto it; an app that sets its own (`setGlobalDispatcher(new
 * Agent({ connections: 50 }))`, at start-up as a rule) would silently drop it. undici stores the
 * dispatcher in a non-configurable global, so the setting cannot be intercepted: instead the SDK
 * looks at it when undici creates a request the interceptor did not see (the outbound path, where it
 * matters; an inbound request pays nothing), composes itself onto whatever the app set, and tags
 * that one request on undici's request object, as OTel's undici instrumentation does. Later calls go
 * through the interceptor. That first call's `x-lane-served` hops are relayed from undici's
 * `undici:request:headers` channel.
 *
 * A request the interceptor did not see while the global dispatcher is its own came through a
 * dispatcher the app made (an `Agent`, `Pool` or `Client` without `laneInterceptor()`): it goes out
 * untagged, and the SDK warns once per call site, naming the fix.
 */

const composedMark = Symbol.for('graylane.sdk.dispatcher');
/** Where undici (and Node's bundled copy) keep the global dispatcher. */
const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

type Marked = Dispatcher & { [composedMark]?: true };

function compose(dispatcher: Dispatcher): Marked {
  const composed = dispatcher.compose(laneInterceptor()) as Marked;
  composed[composedMark] = true;
  return composed;
}

/**
 * Composes the interceptor onto the global dispatcher if the app replaced it. Returns true when it
 * did: the request being created then came through the app's dispatcher, unseen.
 */
function keepComposed(): boolean {
  const current = (globalThis as { [GLOBAL_DISPATCHER]?: Marked })[GLOBAL_DISPATCHER];
  if (current === undefined || current[composedMark]) return false;
  try {
    setGlobalDispatcher(compose(current));
  } catch (err) {
    internalError('undici:global-dispatcher', err);
  }
  return true;
}

/** Whether undici's request has header `name`. */
function requestHasHeader(headers: unknown, name: string): boolean {
  const list = headerList(headers);
  for (let i = 0; i < list.length; i += 2) {
    if (String(list[i]).toLowerCase() === name) return true;
  }
  return false;
}

/** undici's request as its `undici:request:create` channel gives it (v7: a list; v6: text). */
interface CreatedRequest {
  headers?: unknown;
}

/** The request's headers as a flat `[name, value, …]` list, whichever undici made it. */
function headerList(headers: unknown): unknown[] {
  if (Array.isArray(headers)) return headers;
  if (typeof headers !== 'string') return [];
  const list: string[] = [];
  for (const line of headers.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) list.push(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return list;
}

/**
 * Tags a request undici has already created, in place (the lane header and baggage are plain
 * headers to undici: nothing else it derived from the headers changes). Strict mode's error cannot
 * reach the caller from a channel subscriber, where a throw would crash the process: the call goes
 * out untagged and counted, as every leak does.
 */
function tagCreatedRequest(request: CreatedRequest): void {
  const record = headersToRecord(headerList(request.headers));
  let outcome: ReturnType<typeof tagOutbound>;
  try {
    outcome = tagOutbound(() => objectCarrier(record), 'undici', onRequestCreate);
  } catch (err) {
    if (err instanceof LaneLeakError) return;
    throw err;
  }
  if (outcome !== 'tagged') return;
  const pairs: string[] = [];
  for (const [name, value] of Object.entries(record)) {
    for (const v of Array.isArray(value) ? value : [value]) pairs.push(name, String(v));
  }
  if (Array.isArray(request.headers)) request.headers.splice(0, request.headers.length, ...pairs);
  else {
    let text = '';
    for (let i = 0; i < pairs.length; i += 2) text += `${pairs[i]}: ${pairs[i + 1]}\r\n`;
    request.headers = text;
  }
}

interface RequestCreate {
  request?: CreatedRequest;
}

/** The relays of requests tagged after creation, until their response head arrives. */
const createdRelays = new WeakMap<object, Relay>();
let headersSubscribed = false;

/** Relays the hops of a request the interceptor did not see, as the interceptor does for its own. */
function relayCreatedRequest(request: CreatedRequest): void {
  const relay = currentRelay();
  if (relay === undefined) return;
  createdRelays.set(request, relay);
  if (headersSubscribed) return;
  headersSubscribed = true;
  diagnosticsChannel.subscribe('undici:request:headers', onRequestHeaders);
}

interface RequestHeaders {
  request?: object;
  response?: { statusCode?: number; headers?: unknown };
}

function onRequestHeaders(message: unknown): void {
  const { request, response } = message as RequestHeaders;
  const relay = request === undefined ? undefined : createdRelays.get(request);
  if (relay === undefined || request === undefined) return;
  createdRelays.delete(request);
  try {
    recordServed(relay, rawHeaderValue(response?.headers, getConfig().servedHeader));
  } catch (err) {
    internalError('provenance:undici', err);
  }
}

function onRequestCreate(message: unknown): void {
  // Created inside the interceptor's dispatch: seen and tagged.
  if (shared.dispatching > 0 || shared.keepGlobalDispatcher === undefined) return;
  try {
    const request = (message as RequestCreate).request;
    if (keepComposed()) {
      if (request !== undefined) {
        relayCreatedRequest(request);
        tagCreatedRequest(request);
      }
      return;
    }
    const ctx = currentContext();
    if (ctx === undefined || ctx.lane === STABLE || isEnded(ctx)) return;
    const { laneHeader } = getConfig();
    if (requestHasHeader(request?.headers, laneHeader)) return;
    const callSite = callSiteBelow(onRequestCreate);
    warnOnce(
      `unseen-dispatcher:${callSite}`,
      { client: 'undici', lane: ctx.lane, callSite },
      'undici request through a dispatcher the SDK does not see went out untagged: compose ' +
        'laneInterceptor() onto your Agent/Pool/Client (new Agent().compose(laneInterceptor()))',
    );
  } catch (err) {
    internalError('undici:request-create', err);
  }
}

let subscribed = false;

/**
 * Makes undici's global dispatcher tag every request, and keeps it so when the app sets its own.
 * Returns a function that stops that and restores the dispatcher the SDK found.
 */
export function installGlobalDispatcher(): () => void {
  const previous = getGlobalDispatcher() as Marked;
  if (previous[composedMark]) return () => {};
  const composed = compose(previous);
  setGlobalDispatcher(composed);
  shared.keepGlobalDispatcher = keepComposed;
  if (!subscribed) {
    subscribed = true;
    diagnosticsChannel.subscribe('undici:request:create', onRequestCreate);
  }
  return () => {
    if (shared.keepGlobalDispatcher === keepComposed) shared.keepGlobalDispatcher = undefined;
    if (getGlobalDispatcher() === composed) setGlobalDispatcher(previous);
  };
}
