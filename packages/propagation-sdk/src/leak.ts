import { fileURLToPath } from 'node:url';
import { getConfig } from './config.js';
import { LaneLeakError } from './errors.js';
import { warnOnce } from './log.js';
import { countUntaggedOutbound, type OutboundClient } from './metrics.js';

/**
 * Lane-leak detection. An outbound call made in no context at all while the process is serving
 * tagged requests most likely comes from a callback that lost the request's async context (a queue
 * drained by a timer made at start-up, a pooled connection's event, a hand-rolled promise cache);
 * that call goes out untagged and hits stable instead of the lane. We cannot know which request it
 * belonged to, only that it probably belonged to one.
 */

let taggedInFlight = 0;

export function taggedRequestsInFlight(): number {
  return taggedInFlight;
}

interface Closable {
  once(event: 'close', listener: () => void): unknown;
}

/** Counts a tagged request as in flight until `res` closes. */
export function trackTaggedRequest(res: Closable): void {
  taggedInFlight++;
  let done = false;
  res.once('close', () => {
    if (done) return;
    done = true;
    taggedInFlight--;
  });
}

/** For a framework without a response object: in flight until `result` settles. */
export function trackTaggedResult(result: unknown): void {
  taggedInFlight++;
  const end = () => {
    taggedInFlight--;
  };
  if (result instanceof Promise) result.then(end, end);
  else end();
}

export function leakDetectionActive(): boolean {
  return taggedInFlight > 0 && getConfig().leakDetection;
}

const sdkDir = fileURLToPath(new URL('.', import.meta.url));
const INTERNAL = [sdkDir, 'node:', 'node_modules/undici', 'node_modules/.pnpm/undici', '(native)'];

/** The first stack frame outside the SDK, Node's internals and undici: the app's call site. */
export function appCallSite(stack: string | undefined): string {
  const frames = (stack ?? '').split('\n').slice(1);
  for (const frame of frames) {
    const text = frame.trim();
    if (INTERNAL.some((marker) => text.includes(marker))) continue;
    const location = /\(([^()]+)\)$/.exec(text)?.[1] ?? text.replace(/^at\s+/, '');
    if (location !== '') return location;
  }
  return 'unknown';
}

/** Counts a leak, warns once per call site, and in strict mode throws `LaneLeakError`. */
export function reportLeak(client: OutboundClient): void {
  countUntaggedOutbound(client);
  const holder: { stack?: string } = {};
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 30;
  Error.captureStackTrace(holder, reportLeak);
  Error.stackTraceLimit = limit;
  const callSite = appCallSite(holder.stack);
  if (getConfig().strict) throw new LaneLeakError(client, callSite);
  warnOnce(
    `leak:${callSite}`,
    { client, callSite, taggedInFlight },
    'outbound call with no lane context while tagged requests are in flight: possible lane leak',
  );
}
