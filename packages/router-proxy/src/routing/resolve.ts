import { STABLE } from '@graylane/lane-core';
import type { EndpointSetView, ServiceView } from './compiled-table.js';

export type FallbackReason =
  | 'absent'
  | 'ejected'
  | 'connect_error'
  | 'tls_error'
  | 'timeout'
  | 'unhealthy';

/** One step of the walk from the requested lane to the set that serves it. */
export interface FallbackStep {
  from: string;
  to: string;
  reason: FallbackReason;
}

export type Resolution =
  | {
      ok: true;
      set: EndpointSetView;
      /** The endpoints of `set` that can take traffic now. */
      endpoints: readonly string[];
      fallbacks: readonly FallbackStep[];
    }
  | {
      ok: false;
      service: string;
      lane: string;
      fallbacks: readonly FallbackStep[];
      reason: string;
    };

/** Tells which endpoints of a set can take traffic; the routing core knows nothing of health itself. */
export interface Availability {
  available(set: EndpointSetView, service: string): readonly string[];
  /** Why a set with endpoints has none available: `ejected` (passive) or `unhealthy` (active checks). */
  unavailableReason(set: EndpointSetView, service: string): FallbackReason;
}

const NO_FALLBACKS: readonly FallbackStep[] = Object.freeze([]);

export const everyEndpointAvailable: Availability = {
  available: (set) => set.endpoints,
  unavailableReason: () => 'ejected',
};

/**
 * Walks the fallback chain from the requested lane: a lane the service does not define goes to stable;
 * a lane with no available endpoint goes to its `fallback` (`stable`, another lane, or `none`).
 * The chain is acyclic by validation; the visited set guards against a table that slipped through.
 */
export function resolveRoute(
  service: ServiceView,
  requestedLane: string,
  availability: Availability = everyEndpointAvailable,
): Resolution {
  // Made only when the walk leaves the requested set: most requests are served by it (issue 21).
  let fallbacks: readonly FallbackStep[] = NO_FALLBACKS;
  let visited: Set<string> | undefined;
  let set: EndpointSetView = service.sets.get(requestedLane) ?? service.sets.get(STABLE)!;
  if (set.lane !== requestedLane) {
    if (requestedLane !== STABLE)
      fallbacks = [{ from: requestedLane, to: STABLE, reason: 'absent' }];
  }
  for (;;) {
    const endpoints = availability.available(set, service.name);
    if (endpoints.length > 0) return { ok: true, set, endpoints, fallbacks };
    visited ??= new Set();
    visited.add(set.lane);
    const reason: FallbackReason =
      set.endpoints.length === 0 ? 'absent' : availability.unavailableReason(set, service.name);
    const next: EndpointSetView | undefined =
      set.fallback === 'none' ? undefined : service.sets.get(set.fallback);
    if (!next || visited.has(next.lane)) {
      const why =
        set.lane === STABLE
          ? `service ${service.name} has no available stable endpoint`
          : `lane ${set.lane} of service ${service.name} has no available endpoint and no fallback`;
      return { ok: false, service: service.name, lane: requestedLane, fallbacks, reason: why };
    }
    fallbacks = [...fallbacks, { from: set.lane, to: next.lane, reason }];
    set = next;
  }
}
