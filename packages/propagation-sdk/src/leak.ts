import { getConfig } from './config.js';
import { type LaneContext, markEnded } from './context.js';
import { LaneLeakError, type LeakKind } from './errors.js';
import { warnOnce } from './log.js';
import { countStaleOutbound, countUntaggedOutbound, type OutboundClient } from './metrics.js';
import { shared } from './state.js';

/**
 * Lane-leak detection. Two kinds of outbound call most likely lost their request's async context:
 *
 * - `no-context`: made in no context at all while the process serves tagged requests (a callback of
 *   something made at start-up: a worker loop, a pooled connection's event, a timer-drained queue).
 *   It goes out untagged and hits stable instead of the lane.
 * - `stale-context`: made in the context of a request that has already ended (its response closed).
 *   Either fire-and-forget work that outlived its request, or, far more often, a job of some other
 *   request run by a queue created at start-up: a promise chain keeps the context of whoever started
 *   it, so every later job inherits the lane of the request that first fed the queue. Such a call is
 *   sent untagged rather than with a lane that may be someone else's.
 *
 * Work bound on purpose (`bindLane(job)`, `withLane(lane, job)`) is neither: its context never ends.
 * A job run in the context of another request that is still in flight cannot be told apart here;
 * libraries/ binds the jobs of the libraries where that happens (p-queue, DataLoader).
 */

export function taggedRequestsInFlight(): number {
  return shared.taggedInFlight;
}

interface Closable {
  once(event: 'close', listener: () => void): unknown;
  on?(event: 'close', listener: () => void): unknown;
}

const trackedKey = Symbol.for('graylane.sdk.tracked');
type Tracked = Closable & { [trackedKey]?: LaneContext | undefined };

/**
 * One listener for every tracked response, which finds the request's store on the response: no
 * closure and no `once` wrapper per request.
 */
function endTracked(this: Tracked): void {
  const store = this[trackedKey];
  if (store === undefined) return;
  this[trackedKey] = undefined;
  shared.taggedInFlight--;
  markEnded(store);
}

/** Counts a tagged request as in flight until `res` closes; its context then ends. */
export function trackTaggedRequest(res: Closable, store: LaneContext): void {
  shared.taggedInFlight++;
  (res as Tracked)[trackedKey] = store;
  // `on`, not `once`: `once` wraps the listener in a closure per call; endTracked runs only once.
  if (typeof res.on === 'function') res.on('close', endTracked);
  else res.once('close', endTracked);
}

/** For a framework without a response object: in flight until `result` settles. */
export function trackTaggedResult(result: unknown, store: LaneContext): void {
  shared.taggedInFlight++;
  const end = () => {
    shared.taggedInFlight--;
    markEnded(store);
  };
  if (result instanceof Promise) result.then(end, end);
  else end();
}

export function leakDetectionActive(): boolean {
  return shared.taggedInFlight > 0 && getConfig().leakDetection;
}

/** Frames that are never the app's own code. */
const INTERNAL = ['node:', '(native)', '(<anonymous>)', '/node_modules/', '\\node_modules\\'];

/**
 * The directory of the SDK's own modules, read from a stack frame of this one rather than from
 * `import.meta.url`, which a CommonJS bundle does not have. Bundled, the SDK shares a file with the
 * app, so no directory is skipped; the stack is cut at the SDK's entry function instead.
 */
let sdkDir: string | null | undefined;
function ownDir(): string | null {
  if (sdkDir !== undefined) return sdkDir;
  const frame = new Error().stack?.split('\n')[1] ?? '';
  const file = /\(?((?:file:\/\/)?[^()\s]+[\\/])leak\.js:\d+:\d+\)?$/.exec(frame.trim());
  sdkDir = file?.[1] ?? null;
  return sdkDir;
}

function locationOf(frame: string): string {
  const text = frame.trim();
  return /\(([^()]+)\)$/.exec(text)?.[1] ?? text.replace(/^at\s+/, '');
}

/**
 * The app's call site: the first stack frame outside the SDK, Node's internals and `node_modules`.
 * When a library started the call from a later tick (got, superagent) no frame of the app is on the
 * stack; the first library frame is given then, marked as such.
 */
export function appCallSite(stack: string | undefined): string {
  const dir = ownDir();
  const frames = (stack ?? '')
    .split('\n')
    .slice(1)
    .filter((frame) => dir === null || !frame.includes(dir));
  let library: string | undefined;
  for (const frame of frames) {
    const location = locationOf(frame);
    if (location === '' || location === '<anonymous>') continue;
    if (!INTERNAL.some((marker) => frame.includes(marker))) return location;
    if (library === undefined && /[\\/]node_modules[\\/]/.test(location)) library = location;
  }
  return library === undefined ? 'unknown' : `${library} (library; no app frame on the stack)`;
}

/** The app's call site of the call now being made, `entry` being the SDK function it called. */
export function callSiteBelow(entry: (...args: never[]) => unknown): string {
  const holder: { stack?: string } = {};
  const limit = Error.stackTraceLimit;
  // Library frames (axios, follow-redirects, undici's fetch) come before the app's.
  Error.stackTraceLimit = 60;
  Error.captureStackTrace(holder, entry);
  Error.stackTraceLimit = limit;
  return appCallSite(holder.stack);
}

const MESSAGES: Record<LeakKind, string> = {
  'no-context':
    'outbound call with no lane context while tagged requests are in flight: possible lane leak',
  'stale-context':
    "outbound call in the context of a request that has ended: sent untagged, not with that request's lane",
};

/**
 * Counts a leak, warns once per call site and kind, and in strict mode throws `LaneLeakError`.
 * `entry` is the SDK function the app's code called; frames above it are the SDK's own.
 */
export function reportLeak(
  client: OutboundClient,
  kind: LeakKind,
  entry: (...args: never[]) => unknown,
  lane?: string,
): void {
  if (kind === 'stale-context') countStaleOutbound(client);
  else countUntaggedOutbound(client);
  const callSite = callSiteBelow(entry);
  if (getConfig().strict) throw new LaneLeakError(client, callSite, kind);
  const fields: Record<string, unknown> = {
    client,
    kind,
    callSite,
    taggedInFlight: shared.taggedInFlight,
  };
  if (lane !== undefined) fields.lane = lane;
  warnOnce(`leak:${kind}:${callSite}`, fields, MESSAGES[kind]);
}
