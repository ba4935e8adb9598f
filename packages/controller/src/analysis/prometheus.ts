import { request } from 'undici';
import {
  DURATIONS,
  FALLBACKS,
  FORWARDING_LISTENERS,
  type MetricQuery,
  type MetricsProvider,
  REQUESTS,
  type Window,
} from './provider.js';

interface QueryResponse {
  status: string;
  error?: string;
  data?: { resultType: string; result: Array<{ value: [number, string] }> };
}

/** The PromQL for a query over a window of `range` (`30s`); exported for docs and tests. */
export function promql(query: MetricQuery, range: string): string {
  if (query.kind === 'promql') return query.query;
  const { service, lane } = query;
  const forwarded = `service="${service}",lane="${lane}",listener=~"${FORWARDING_LISTENERS.join('|')}"`;
  const increase = (metric: string, selector: string) =>
    `increase(${metric}{${selector}}[${range}])`;
  /**
   * Business and synthetic series added up. Not one `{__name__=~…}` selector: increase() drops the
   * name, and two series left with the same labels are an error.
   */
  const both = (names: readonly string[], selector: string, by = '') => {
    const [a, b] = names.map((name) => `sum${by}(${increase(name, selector)})`);
    return `((${a} + ${b}) or ${a} or ${b})`;
  };
  const durations = (suffix: string) => DURATIONS.map((name) => `${name}${suffix}`);
  switch (query.kind) {
    case 'requests':
      return both(REQUESTS, forwarded);
    case 'errors':
      return both(REQUESTS, `${forwarded},code=~"5.."`);
    case 'fallbacks':
      return `sum(${increase(FALLBACKS, `service="${service}",from_lane="${lane}",reason!="absent"`)})`;
    case 'duration':
      return query.stat === 'mean'
        ? `${both(durations('_sum'), forwarded)} / ${both(durations('_count'), forwarded)}`
        : `histogram_quantile(0.99, ${both(durations('_bucket'), forwarded, ' by (le)')})`;
  }
}

/** Whole seconds, at least one: the range a window covers in PromQL. */
export const rangeOf = (window: Window) =>
  `${Math.max(1, Math.round((window.to - window.from) / 1000))}s`;

/** A Prometheus server that scrapes the proxies' `/metrics`: instant queries at the window's end. */
export class PrometheusProvider implements MetricsProvider {
  constructor(
    private readonly address: string,
    private readonly timeoutMs = 5_000,
  ) {}

  async isOnline(): Promise<boolean> {
    try {
      return (await this.instant('vector(1)', Date.now())) === 1;
    } catch {
      return false;
    }
  }

  query(query: MetricQuery, window: Window): Promise<number | undefined> {
    return this.instant(promql(query, rangeOf(window)), window.to);
  }

  private async instant(query: string, at: number): Promise<number | undefined> {
    const url = new URL('/api/v1/query', this.address);
    url.searchParams.set('query', query);
    url.searchParams.set('time', String(at / 1000));
    const res = await request(url, { headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs });
    const body = (await res.body.json()) as QueryResponse;
    if (res.statusCode !== 200 || body.status !== 'success') {
      throw new Error(`prometheus: ${body.error ?? `status ${res.statusCode}`} (query ${query})`);
    }
    const values = (body.data?.result ?? [])
      .map((r) => Number(r.value[1]))
      .filter((v) => Number.isFinite(v));
    // An empty result (no series, or NaN from 0/0) is no data, never 0.
    return values.length === 0 ? undefined : values.reduce((a, b) => a + b, 0);
  }
}
