import {
  BAGGAGE_HEADER,
  BAGGAGE_MAX_BYTES,
  BAGGAGE_MAX_MEMBERS,
  type BaggageMember,
  classifyTagValue,
  type HeaderCarrier,
  joinHeaderValues,
  parseBaggage,
  STABLE,
  serializeBaggageMember,
} from '@graylane/lane-core';
import {
  type Context,
  context,
  createContextKey,
  propagation,
  ROOT_CONTEXT,
} from '@opentelemetry/api';
import { shared } from '../state.js';

/**
 * The bridge to OpenTelemetry's context. It matters only when an OTel context manager is registered:
 * then the lane is also an OTel baggage entry, so OTel's own propagators and instrumentations (and
 * services in other languages) carry it, and a lane OTel extracted is seen by `getLane()`.
 */

const probeKey = createContextKey('graylane.probe');
const probe = ROOT_CONTEXT.setValue(probeKey, true);
let managerSeen = false;
const apiGlobal = Symbol.for('opentelemetry.js.api.1');

/**
 * With the no-op manager `context.with` does not make its context active. A manager is usually
 * registered once at start-up (possibly after this module loaded), so a positive answer is cached;
 * until then, a look at the API's global registry (where every 1.x API copy registers its manager)
 * keeps the check to one property read per request.
 */
export function otelContextActive(): boolean {
  if (managerSeen) return true;
  const registry = (globalThis as { [apiGlobal]?: { context?: unknown } })[apiGlobal];
  if (registry?.context === undefined) return false;
  managerSeen = context.with(probe, () => context.active() === probe);
  return managerSeen;
}

/** The valid lane in an OTel context's baggage, if any (an invalid entry reads as absent). */
export function laneFromOtelContext(ctx: Context, baggageKey: string): string | undefined {
  const entry = propagation.getBaggage(ctx)?.getEntry(baggageKey);
  if (entry === undefined) return undefined;
  const lane = classifyTagValue(entry.value);
  return typeof lane === 'string' ? lane : undefined;
}

/** The lane in the active OTel context, when OTel manages context. */
export function activeOtelLane(baggageKey: string): string | undefined {
  if (!otelContextActive()) return undefined;
  return laneFromOtelContext(context.active(), baggageKey);
}

/** A copy of `ctx` whose baggage carries `lane` (the stable lane removes the entry). */
export function contextWithLane(ctx: Context, lane: string, baggageKey: string): Context {
  const baggage = propagation.getBaggage(ctx) ?? propagation.createBaggage();
  const next =
    lane === STABLE
      ? baggage.removeEntry(baggageKey)
      : baggage.setEntry(baggageKey, { value: lane });
  return propagation.setBaggage(ctx, next);
}

/** Runs `fn` with the lane also in the active OTel baggage, when OTel manages context. */
export function runWithOtelLane<T>(lane: string, baggageKey: string, fn: () => T): T {
  if (!otelContextActive()) return fn();
  const active = context.active();
  if (laneFromOtelContext(active, baggageKey) === lane) return fn();
  return context.with(contextWithLane(active, lane, baggageKey), fn);
}

/**
 * Runs an outbound dispatch whose lane header and `baggage` the SDK has already written, so that
 * OTel's instrumentation (undici's adds its headers when undici creates the request, after every
 * interceptor) does not add a second of each: the OTel baggage members other than the lane are merged
 * into the call's one `baggage` header here, the dispatch runs in the active OTel context less its
 * baggage (trace context is kept); the caller counts itself in `shared.dispatching`, which keeps
 * `GraylanePropagator` out meanwhile. Without an OTel context manager it is just `fn()`.
 *
 * `carrierOf` is only called when there are OTel members to merge.
 */
export function dispatchWithoutOtelBaggage<T>(
  baggageKey: string,
  carrierOf: () => HeaderCarrier,
  fn: () => T,
): T {
  if (!otelContextActive()) return fn();
  const active = context.active();
  const baggage = propagation.getBaggage(active);
  if (baggage !== undefined) {
    const members: BaggageMember[] = [];
    for (const [key, entry] of baggage.getAllEntries()) {
      if (key === baggageKey) continue;
      const properties = entry.metadata?.toString();
      members.push(
        properties ? { key, value: entry.value, properties } : { key, value: entry.value },
      );
    }
    if (members.length > 0) mergeBaggage(carrierOf(), members);
  }
  const stripped = baggage === undefined ? active : propagation.deleteBaggage(active);
  return context.with(stripped, fn);
}

/** Whether an SDK hook is dispatching a call it tagged itself (`GraylanePropagator` then stays out). */
export function otelInjectPaused(): boolean {
  return shared.dispatching > 0;
}

/**
 * Appends `members` to the carrier's `baggage`, a member the call already has winning, within the W3C
 * limits (what does not fit is left out, never the call's own members).
 */
function mergeBaggage(carrier: HeaderCarrier, members: readonly BaggageMember[]): void {
  const existing = joinHeaderValues(carrier.get(BAGGAGE_HEADER));
  const parsed = existing === undefined ? undefined : parseBaggage(existing);
  const keys = new Set(parsed?.ok ? parsed.members.map((m) => m.key) : []);
  const parts = existing === undefined || existing.trim() === '' ? [] : [existing];
  let bytes = existing === undefined ? 0 : Buffer.byteLength(existing);
  let count = keys.size;
  for (const member of members) {
    if (keys.has(member.key)) continue;
    const text = serializeBaggageMember(member);
    const size = Buffer.byteLength(text) + (parts.length > 0 ? 1 : 0);
    if (bytes + size > BAGGAGE_MAX_BYTES || count + 1 > BAGGAGE_MAX_MEMBERS) continue;
    parts.push(text);
    keys.add(member.key);
    bytes += size;
    count++;
  }
  if (parts.length > 0) carrier.set(BAGGAGE_HEADER, parts.join(','));
}
