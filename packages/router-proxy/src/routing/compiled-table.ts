import type {
  AssignRule,
  Entrypoint,
  HealthCheck,
  LoadBalancing,
  RouteTable,
  StringMatch,
  TagOptions,
} from '@graylane/lane-core';
import { BoundedMemo, formatHop, STABLE } from '@graylane/lane-core';

/**
 * A route table prepared for the hot path: regexes compiled, entrypoints ordered, endpoint sets keyed
 * by lane. Built once per revision; requests hold the snapshot they started with, so a reload never
 * changes the routing of a request in flight.
 */

export interface EndpointSetView {
  lane: string;
  version: string | undefined;
  endpoints: readonly string[];
  /** `stable`, another lane, or `none`; the stable set's own fallback is always `none`. */
  fallback: string;
  /** `service/lane`: names the set's own state (the round-robin cursor). */
  key: string;
  /** `service=lane`, the `x-lane-served` hop of a request this set serves in its own lane. */
  hop: string;
  /** `service=lane;fallback=<reason>` by reason, for a request a fallback brought here; made on use. */
  fallbackHops: Map<string, string>;
}

export interface ServiceView {
  name: string;
  sets: ReadonlyMap<string, EndpointSetView>;
  loadBalancing: LoadBalancing;
  healthCheck: HealthCheck | undefined;
  retryNonIdempotent: boolean;
}

export type HeaderMatcher = (value: string | undefined) => boolean;

export interface CompiledRule {
  lane: string;
  headers: ReadonlyArray<readonly [name: string, match: HeaderMatcher]>;
  weight: number | undefined;
  sticky: { kind: 'cookie' | 'header'; name: string } | undefined;
}

export interface CompiledEntrypoint {
  name: string;
  /** Lower case; `*.example.com` for a wildcard; undefined for any host. */
  host: string | undefined;
  /** How specific the host is: an exact name before a wildcard before any host. */
  hostRank: HostRank;
  pathPrefix: string;
  service: string;
  clientLanes: Entrypoint['clientLanes'];
  clientLanesSecret: Entrypoint['clientLanesSecret'];
  rules: readonly CompiledRule[];
}

export interface CompiledTable {
  table: RouteTable;
  /** The table's lane header and baggage key. */
  tagOptions: TagOptions;
  revision: number;
  services: ReadonlyMap<string, ServiceView>;
  /** Lanes that at least one service defines: what `clientLanes: known` accepts. */
  knownLanes: ReadonlySet<string>;
  /** Lanes a metric label may name: the known lanes, the lanes assign rules give, and stable. */
  labelLanes: ReadonlySet<string>;
  /** In match order: exact host, wildcard, any host; within each, the longest path prefix first. */
  entrypoints: readonly CompiledEntrypoint[];
  /** Every endpoint origin in the table, for pool lifecycle. */
  origins: ReadonlySet<string>;
  /** The `hosts:` the table gives services, lower case, to the service's name. */
  serviceHosts: ReadonlyMap<string, string>;
  /** What `serviceForHost` found for a host, kept with the table it was found in (null: none). */
  hostMemo: {
    serviceDomains: readonly string[] | undefined;
    services: BoundedMemo<string, ServiceView | null>;
  };
}

export enum HostRank {
  exact = 0,
  wildcard = 1,
  any = 2,
}

function hostRankOf(host: string | undefined): HostRank {
  if (host === undefined) return HostRank.any;
  return host.startsWith('*.') ? HostRank.wildcard : HostRank.exact;
}

function compileMatch(match: StringMatch): HeaderMatcher {
  if ('exact' in match) return (v) => v === match.exact;
  if ('prefix' in match) return (v) => v?.startsWith(match.prefix) ?? false;
  const regex = new RegExp(match.regex);
  return (v) => v !== undefined && regex.test(v);
}

function compileRule(rule: AssignRule): CompiledRule {
  const headers = Object.entries(rule.when?.headers ?? {}).map(
    ([name, match]) => [name, compileMatch(match)] as const,
  );
  let sticky: CompiledRule['sticky'];
  if (rule.sticky) {
    const [kind, name] = rule.sticky.split(':', 2) as ['cookie' | 'header', string];
    sticky = { kind, name: kind === 'header' ? name.toLowerCase() : name };
  }
  return { lane: rule.lane, headers, weight: rule.weight, sticky };
}

function compileEntrypoint(entry: Entrypoint): CompiledEntrypoint {
  const host = entry.match.host?.toLowerCase();
  return {
    name: entry.name,
    host,
    hostRank: hostRankOf(host),
    pathPrefix: entry.match.pathPrefix,
    service: entry.service,
    clientLanes: entry.clientLanes,
    clientLanesSecret: entry.clientLanesSecret,
    rules: entry.assign.map(compileRule),
  };
}

/**
 * Gateway API's HTTPRoute precedence (and nginx's `server_name` before `location`): an exact host
 * before a wildcard (the longer suffix first) before any host; within one host, the longest path
 * prefix. The first entrypoint in this order that matches both host and path takes the request.
 */
function byMatchPriority(a: CompiledEntrypoint, b: CompiledEntrypoint): number {
  if (a.hostRank !== b.hostRank) return a.hostRank - b.hostRank;
  const byHost = (b.host?.length ?? 0) - (a.host?.length ?? 0);
  if (byHost !== 0) return byHost;
  return b.pathPrefix.length - a.pathPrefix.length;
}

export function compileTable(table: RouteTable): CompiledTable {
  const services = new Map<string, ServiceView>();
  const knownLanes = new Set<string>();
  const origins = new Set<string>();
  const serviceHosts = new Map<string, string>();
  for (const [name, service] of Object.entries(table.services)) {
    for (const host of service.hosts) serviceHosts.set(host.toLowerCase(), name);
    const sets = new Map<string, EndpointSetView>();
    const normalise = (endpoints: readonly string[]) => endpoints.map((e) => new URL(e).origin);
    sets.set(STABLE, {
      lane: STABLE,
      version: service.stable.version,
      endpoints: normalise(service.stable.endpoints),
      fallback: 'none',
      key: `${name}/${STABLE}`,
      hop: formatHop(name, STABLE),
      fallbackHops: new Map(),
    });
    for (const [lane, set] of Object.entries(service.lanes)) {
      knownLanes.add(lane);
      sets.set(lane, {
        lane,
        version: set.version,
        endpoints: normalise(set.endpoints),
        fallback: set.fallback,
        key: `${name}/${lane}`,
        hop: formatHop(name, lane),
        fallbackHops: new Map(),
      });
    }
    for (const set of sets.values()) for (const origin of set.endpoints) origins.add(origin);
    services.set(name, {
      name,
      sets,
      loadBalancing: service.loadBalancing,
      healthCheck: service.healthCheck,
      retryNonIdempotent: service.retryNonIdempotent,
    });
  }
  const entrypoints = table.entrypoints.map(compileEntrypoint).sort(byMatchPriority);
  const labelLanes = new Set([
    STABLE,
    ...knownLanes,
    ...table.entrypoints.flatMap((entry) => entry.assign.map((rule) => rule.lane)),
  ]);
  return {
    table,
    tagOptions: { laneHeader: table.laneHeader, baggageKey: table.baggageKey },
    revision: table.revision,
    services,
    knownLanes,
    labelLanes,
    entrypoints,
    origins,
    serviceHosts,
    // Hosts come from clients: a table keeps at most this many answers.
    hostMemo: { serviceDomains: undefined, services: new BoundedMemo(1024) },
  };
}

/**
 * The `lane` label for a lane that came from a request. Clients may send any valid lane (with
 * `clientLanes: any`, and always on the outbound listener), and a label value per lane would let
 * them grow the series without bound; every lane the table does not name is counted as one,
 * `_other` (not a DNS label, so no lane can be called that).
 */
export const OTHER_LANE_LABEL = '_other';

export function laneLabel(table: CompiledTable | undefined, lane: string): string {
  return table?.labelLanes.has(lane) ? lane : OTHER_LANE_LABEL;
}
