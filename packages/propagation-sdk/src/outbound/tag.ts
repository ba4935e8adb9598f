import { type HeaderCarrier, readLaneTagFrom, STABLE, writeLaneTag } from '@graylane/lane-core';
import { getConfig } from '../config.js';
import { currentContext, isEnded } from '../context.js';
import { LaneLeakError } from '../errors.js';
import { leakDetectionActive, reportLeak } from '../leak.js';
import { internalError } from '../log.js';
import { countInvalidLane, countStaleOutbound, type OutboundClient } from '../metrics.js';

/**
 * The one decision every outbound hook makes. The carrier is built lazily: most calls in a stable
 * context need no header work at all, and the hook then passes the caller's options through
 * untouched.
 *
 * - An explicit, valid tag on the call (lane header or baggage entry) wins over the context, and is
 *   rewritten so that header and baggage agree.
 * - Otherwise a tagged context writes its lane to the header and merges it into `baggage`.
 * - With no context at all while tagged requests are in flight, the call is a possible leak.
 * - In the context of a request that has ended, the call is stale: it goes out untagged (see leak.ts),
 *   with leak detection on or off; only the warning depends on it.
 *
 * `entry` is the SDK function the app called, where a leak report cuts the stack.
 *
 * Returns `tagged` when the carrier was written, `leak` when a leak was reported (the call goes on
 * untagged), else `untouched`. Never throws, except `LaneLeakError` in strict mode.
 */
export type TagOutcome = 'tagged' | 'untouched' | 'leak';

export function tagOutbound(
  carrierOf: () => HeaderCarrier,
  client: OutboundClient,
  entry: (...args: never[]) => unknown,
): TagOutcome {
  try {
    const ctx = currentContext();
    if (ctx === undefined) {
      if (!leakDetectionActive() || hasExplicitTag(carrierOf())) return 'untouched';
      reportLeak(client, 'no-context', entry);
      return 'leak';
    }
    if (ctx.lane === STABLE) return 'untouched';
    // Sent untagged whatever leak detection says: a lane that may be another request's is a routing
    // error, not a diagnostic. Leak detection only decides whether it is also warned about.
    if (isEnded(ctx) && !hasExplicitTag(carrierOf())) {
      if (getConfig().leakDetection) reportLeak(client, 'stale-context', entry, ctx.lane);
      else countStaleOutbound(client);
      return 'leak';
    }
    const options = getConfig();
    const carrier = carrierOf();
    const tag = readLaneTagFrom(carrier, options);
    if (tag.invalid) countInvalidLane('outbound');
    writeLaneTag(carrier, tag.source === 'none' ? ctx.lane : tag.lane, options);
    return 'tagged';
  } catch (err) {
    if (err instanceof LaneLeakError) throw err;
    internalError(`outbound:${client}`, err);
    return 'untouched';
  }
}

function hasExplicitTag(carrier: HeaderCarrier): boolean {
  return readLaneTagFrom(carrier, getConfig()).source !== 'none';
}
