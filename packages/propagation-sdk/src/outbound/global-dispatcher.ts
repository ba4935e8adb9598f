import diagnosticsChannel from 'node:diagnostics_channel';
import { STABLE } from '@graylane/lane-core';
import { type Dispatcher, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { getConfig } from '../config.js';
import { currentContext, isEnded } from '../context.js';
import { callSiteBelow } from '../leak.js';
import { internalError, warnOnce } from '../log.js';
import { shared } from '../state.js';
import { laneInterceptor } from './undici.js';

/**
 * undici's global dispatcher, which `undici.request/fetch/stream` and Node's own `fetch` send through.
 * The SDK composes its interceptor onto it; an app that sets its own (`setGlobalDispatcher(new
 * Agent({ connections: 50 }))`, at start-up as a rule) would silently drop it. undici stores the
 * dispatcher in a non-configurable global, so the setting cannot be intercepted: instead the SDK
 * looks at it on every inbound request and whenever undici creates a request the interceptor did not
 * see, and composes itself onto whatever the app set.
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

/** Composes the interceptor onto the global dispatcher if the app replaced it. One read when not. */
function keepComposed(): void {
  const current = (globalThis as { [GLOBAL_DISPATCHER]?: Marked })[GLOBAL_DISPATCHER];
  if (current === undefined || current[composedMark]) return;
  try {
    setGlobalDispatcher(compose(current));
  } catch (err) {
    internalError('undici:global-dispatcher', err);
  }
}

/** Whether undici's request (v7: `[name, value, …]`; v6: `name: value\r\n` text) has header `name`. */
function requestHasHeader(headers: unknown, name: string): boolean {
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === name) return true;
    }
    return false;
  }
  if (typeof headers !== 'string') return false;
  return `\r\n${headers.toLowerCase()}`.includes(`\r\n${name}:`);
}

interface RequestCreate {
  request?: { headers?: unknown };
}

function onRequestCreate(message: unknown): void {
  // Created inside the interceptor's dispatch: seen and tagged.
  if (shared.dispatching > 0 || shared.keepGlobalDispatcher === undefined) return;
  try {
    keepComposed();
    const ctx = currentContext();
    if (ctx === undefined || ctx.lane === STABLE || isEnded(ctx)) return;
    const { laneHeader } = getConfig();
    if (requestHasHeader((message as RequestCreate).request?.headers, laneHeader)) return;
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
