/**
 * Where analysis gets its numbers, as Flagger's `MetricsProvider { query, isOnline }`: one
 * implementation per source (direct.ts scrapes the proxies, prometheus.ts asks a server). A query
 * names what it wants from the proxies' metrics, so both providers answer the same questions.
 */

/** Of one service's lane (`stable` for the stable version), over a window. */
export type MetricQuery =
  /** Requests served by that lane (any code), as counted where they were forwarded. */
  | { kind: 'requests'; service: string; lane: string }
  /** Those of them answered 5xx. */
  | { kind: 'errors'; service: string; lane: string }
  /** Requests meant for that lane that fell back away from it for any reason but `absent`. */
  | { kind: 'fallbacks'; service: string; lane: string }
  /** Duration statistic in seconds. */
  | { kind: 'duration'; stat: 'mean' | 'p99'; service: string; lane: string }
  /** PromQL, placeholders already replaced (prometheus only). */
  | { kind: 'promql'; query: string };

export interface Window {
  /** Epoch milliseconds. */
  from: number;
  to: number;
}

export interface MetricsProvider {
  /** Whether the source answers; the direct provider also takes a baseline scrape. */
  isOnline(): Promise<boolean>;
  /** The value over the window; undefined when there is no data (an empty result, a division by 0). */
  query(query: MetricQuery, window: Window): Promise<number | undefined>;
  close?(): void;
}

/** Business and synthetic (analysis load) requests: the proxies count them apart, checks read both. */
export const REQUESTS = ['graylane_requests_total', 'graylane_synthetic_requests_total'] as const;
export const DURATIONS = [
  'graylane_request_duration_seconds',
  'graylane_synthetic_request_duration_seconds',
] as const;
export const FALLBACKS = 'graylane_fallbacks_total';
/**
 * The inbound listener sees again what the caller's outbound listener forwarded; counting both
 * would count a request twice, so checks read the forwarding listeners only.
 */
export const FORWARDING_LISTENERS = ['gateway', 'outbound'] as const;
