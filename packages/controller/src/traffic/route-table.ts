import {
  type AssignRule,
  type Entrypoint,
  type RouteTable,
  type RouteTableInput,
  type Service,
  STABLE,
  validateRouteTable,
} from '@graylane/lane-core';
import type { EntrypointDocument, ServiceDocument, Workload } from '../documents/schema.js';
import { invalid } from '../errors.js';
import { isActive, laneRouted, servesStable } from '../release/phases.js';
import type { Release } from '../release/status.js';

/** Where a workload's instances answer: its own `endpoints`, or those the platform runs for it. */
export type EndpointsOf = (service: string, lane: string, workload: Workload) => string[];

export interface RoutingInput {
  services: readonly ServiceDocument[];
  entrypoints: readonly EntrypointDocument[];
  /** Releases oldest first: an older release's entry rules come first. */
  releases: readonly Release[];
  endpointsOf: EndpointsOf;
}

function serviceEntry(doc: ServiceDocument, stable: { version: string; endpoints: string[] }) {
  const { spec } = doc;
  return {
    stable,
    lanes: {} as Record<string, { version: string; endpoints: string[]; fallback: string }>,
    ...(spec.loadBalancing ? { loadBalancing: spec.loadBalancing } : {}),
    ...(spec.healthCheck ? { healthCheck: spec.healthCheck } : {}),
    ...(spec.retryNonIdempotent !== undefined
      ? { retryNonIdempotent: spec.retryNonIdempotent }
      : {}),
  };
}

/** The entry's weighted split: the step's weight, or the canary's share of the instances. */
function entryWeight(
  release: Release,
  entryService: ReturnType<typeof serviceEntry> | undefined,
): number {
  if (!release.spec.trafficFromReplicas) return release.status.weight;
  const canary = entryService?.lanes[release.spec.lane]?.endpoints.length ?? 0;
  const stable = entryService?.stable.endpoints.length ?? 0;
  // The proxy takes whole hundredths of a percent (its buckets are 0..9999).
  return canary === 0 ? 0 : Math.round((10_000 * canary) / (canary + stable)) / 100;
}

function releaseRules(release: Release, weight: number): AssignRule[] {
  const { spec } = release;
  const rules: AssignRule[] = spec.match.map((rule) => ({
    lane: spec.lane,
    when: { headers: rule.headers },
  }));
  if (weight > 0) rules.push({ lane: spec.lane, weight, sticky: spec.sticky });
  return rules;
}

/**
 * The route table that puts every release's current status into effect, without a revision (the
 * publisher numbers it). Pure: documents and statuses in, table out. A promoted service serves its
 * canary as stable and loses the lane in the same table, since the table refuses one endpoint in two
 * sets of a service.
 */
export function buildRouteTable(input: RoutingInput): Omit<RouteTableInput, 'revision'> {
  const services: Record<string, ReturnType<typeof serviceEntry>> = {};
  for (const doc of input.services) {
    const { stable } = doc.spec;
    services[doc.metadata.name] = serviceEntry(doc, {
      version: stable.version,
      endpoints: input.endpointsOf(doc.metadata.name, STABLE, stable),
    });
  }
  for (const release of input.releases) {
    if (!isActive(release.status.phase)) continue;
    const lane = release.spec.lane;
    for (const member of release.spec.services) {
      const target = services[member.name];
      const state = release.status.services[member.name]?.canary;
      if (target === undefined || state === undefined) continue;
      if (laneRouted(state)) {
        const endpoints = input.endpointsOf(member.name, lane, member.canary);
        target.lanes[lane] = { version: member.canary.version, endpoints, fallback: STABLE };
      } else if (servesStable(state)) {
        // Once retiring, the platform runs the canary's instances as the service's stable ones.
        const where = state === 'promoted' ? lane : STABLE;
        target.stable = {
          version: member.canary.version,
          endpoints: input.endpointsOf(member.name, where, member.canary),
        };
      }
    }
  }
  const entrypoints = input.entrypoints.map((doc) => {
    const rules = input.releases
      .filter(
        (r) =>
          isActive(r.status.phase) &&
          r.status.entryRouted &&
          r.spec.entrypoint === doc.metadata.name,
      )
      .flatMap((r) => releaseRules(r, entryWeight(r, services[doc.spec.service])));
    return {
      ...doc.spec,
      name: doc.metadata.name,
      assign: [...rules, ...doc.spec.assign],
    } satisfies Entrypoint;
  });
  return { apiVersion: 'graylane/v1', services: services as Record<string, Service>, entrypoints };
}

/** Numbers and validates a built table; a table the proxies would refuse is never published. */
export function finishRouteTable(
  built: Omit<RouteTableInput, 'revision'>,
  revision: number,
): RouteTable {
  const result = validateRouteTable({ ...built, revision });
  if (!result.ok)
    throw invalid(
      result.problems.map((p) => ({ path: `routeTable.${p.path}`, message: p.message })),
    );
  return result.table;
}
