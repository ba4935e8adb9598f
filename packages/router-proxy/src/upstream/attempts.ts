import { formatHop } from '@graylane/lane-core';
import { type EndpointSetView, laneLabel, type ServiceView } from '../routing/compiled-table.js';
import { type FallbackReason, type FallbackStep, resolveRoute } from '../routing/resolve.js';
import type { ProxyRuntime } from '../runtime.js';
import { excludingTried } from './endpoint-health.js';
import type { UpstreamFailure } from './errors.js';

/** Where one attempt goes: the endpoint, its set, how the walk got there, and the hop to report. */
export interface AttemptTarget {
  endpoint: string;
  set: EndpointSetView;
  fallbacks: readonly FallbackStep[];
  /** `service=lane[;fallback=reason]`, for `x-lane-served`. */
  hop: string;
}

/** How an attempt went: the endpoint answered with a status, or it failed, and may be retried. */
export type Verdict = { answered: number } | { failure: UpstreamFailure; retry: boolean };

/** What a kind of request (a plain one, an upgrade) does at each attempt. */
export interface AttemptKind<O> {
  /** Makes one attempt; `release` frees the endpoint's in-flight count when the exchange is over. */
  send(target: AttemptTarget, release: () => void): Promise<O>;
  judge(outcome: O): Verdict;
}

export type Attempted<O> =
  | { ok: false; reason: string }
  | { ok: true; target: AttemptTarget; outcome: O };

/** `service=lane`, with `;fallback=<reason>` when the walk left the requested lane. */
export function provenance(
  service: string,
  servedLane: string,
  fallbacks: readonly FallbackStep[],
) {
  return formatHop(service, servedLane, fallbacks.at(-1)?.reason);
}

/** `provenance` for a set reached by a fallback, made once per set and reason. */
function fallbackHop(service: string, set: EndpointSetView, fallbacks: readonly FallbackStep[]) {
  const reason = fallbacks.at(-1)!.reason;
  let hop = set.fallbackHops.get(reason);
  if (hop === undefined) {
    hop = provenance(service, set.lane, fallbacks);
    set.fallbackHops.set(reason, hop);
  }
  return hop;
}

function fallbackReasonOf(failure: UpstreamFailure): FallbackReason {
  if (failure === 'timeout' || failure === 'connect_timeout') return 'timeout';
  return failure === 'tls_error' ? 'tls_error' : 'connect_error';
}

function recordOutlier(
  runtime: ProxyRuntime,
  service: string,
  target: AttemptTarget,
  verdict: Verdict,
) {
  const { set, endpoint } = target;
  const failed =
    'answered' in verdict
      ? verdict.answered >= 500
      : verdict.failure !== 'aborted' && verdict.failure !== 'other';
  if (failed) runtime.outliers.recordFailure(service, set.lane, endpoint, set.endpoints);
  else if ('answered' in verdict) runtime.outliers.recordSuccess(service, endpoint);
}

/**
 * Picks an endpoint for the lane (walking the fallback chain past unavailable sets), makes the
 * attempt, and when it failed in a way the kind allows to retry, tries once more on the next
 * candidate — the same lane's next endpoint, then the fallback lane — if the service's retry budget
 * has room. Outliers are recorded per attempt; fallbacks are counted for the attempt whose hop the
 * client sees, so the metric and `x-lane-served` agree.
 */
export async function attemptEndpoints<O>(
  runtime: ProxyRuntime,
  service: ServiceView,
  lane: string,
  kind: AttemptKind<O>,
): Promise<Attempted<O>> {
  runtime.budget.recordRequest(service.name);
  // Made on a retry only.
  let tried: Map<string, FallbackReason> | undefined;
  let last: { target: AttemptTarget; outcome: O } | undefined;
  for (;;) {
    const availability = tried ? excludingTried(runtime.health, tried) : runtime.health;
    const resolution = resolveRoute(service, lane, availability);
    if (!resolution.ok) {
      if (!last) return { ok: false, reason: resolution.reason };
      break;
    }
    const { set, endpoints, fallbacks } = resolution;
    const endpoint = runtime.balancer.pick(endpoints, service.loadBalancing, set.key)!;
    const hop = fallbacks.length === 0 ? set.hop : fallbackHop(service.name, set, fallbacks);
    const target = { endpoint, set, fallbacks, hop };
    const outcome = await kind.send(target, runtime.balancer.begin(endpoint));
    last = { target, outcome };
    const verdict = kind.judge(outcome);
    recordOutlier(runtime, service.name, target, verdict);
    const retry =
      'failure' in verdict && verdict.retry && !tried && runtime.budget.tryRetry(service.name);
    if (!retry) break;
    tried = new Map([[endpoint, fallbackReasonOf(verdict.failure)]]);
  }
  const table = runtime.tables.current;
  for (const step of last.target.fallbacks) {
    runtime.metrics.recordFallback(
      service.name,
      laneLabel(table, step.from),
      laneLabel(table, step.to),
      step.reason,
    );
  }
  return { ok: true, ...last };
}
