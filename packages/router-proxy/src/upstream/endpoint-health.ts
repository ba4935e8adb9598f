import type { EndpointSetView } from '../routing/compiled-table.js';
import type { Availability, FallbackReason } from '../routing/resolve.js';
import type { ActiveHealthChecker } from './health-check.js';
import type { OutlierDetector } from './outlier.js';

/** Which endpoints can take traffic: not ejected by outlier detection, not failing active checks. */
export class EndpointHealth implements Availability {
  constructor(
    private readonly outliers: OutlierDetector,
    private readonly checks: ActiveHealthChecker,
  ) {}

  available(set: EndpointSetView, service: string): readonly string[] {
    const { endpoints, lane } = set;
    for (const endpoint of endpoints) {
      if (!this.usable(service, lane, endpoint)) {
        return endpoints.filter((e) => this.usable(service, lane, e));
      }
    }
    // Every endpoint usable (the usual case): the set's own list, no copy per request.
    return endpoints;
  }

  private usable(service: string, lane: string, endpoint: string): boolean {
    return (
      !this.checks.isUnhealthy(service, endpoint) &&
      !this.outliers.isEjected(service, lane, endpoint)
    );
  }

  unavailableReason(set: EndpointSetView, service: string): FallbackReason {
    return set.endpoints.some((e) => this.checks.isUnhealthy(service, e)) ? 'unhealthy' : 'ejected';
  }
}

/** `base`, less the endpoints this request already tried; a set emptied by them falls back for their reason. */
export function excludingTried(
  base: Availability,
  tried: ReadonlyMap<string, FallbackReason>,
): Availability {
  return {
    available: (set, service) => base.available(set, service).filter((e) => !tried.has(e)),
    unavailableReason: (set, service) => {
      const failed = set.endpoints.find((e) => tried.has(e));
      return failed === undefined ? base.unavailableReason(set, service) : tried.get(failed)!;
    },
  };
}
