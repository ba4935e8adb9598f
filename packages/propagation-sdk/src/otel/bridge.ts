import { classifyTagValue, STABLE } from '@graylane/lane-core';
import {
  type Context,
  context,
  createContextKey,
  propagation,
  ROOT_CONTEXT,
} from '@opentelemetry/api';

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
