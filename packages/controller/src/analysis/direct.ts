import { request } from 'undici';
import { parseExposition, type Sample } from './exposition.js';
import {
  DURATIONS,
  FALLBACKS,
  FORWARDING_LISTENERS,
  type MetricQuery,
  type MetricsProvider,
  REQUESTS,
  type Window,
} from './provider.js';

interface Scrape {
  /** When the scrape started: every count in it is at least as new. */
  time: number;
  series: Map<string, Sample>;
}

/** Scrapes kept: enough for the longest window between two analysis intervals. */
const KEPT = 32;

const key = (sample: Sample) =>
  `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;

/**
 * Analysis without a Prometheus server (local mode): the controller scrapes the proxies' admin
 * `/metrics` itself, and a window is the difference between the scrape at its start and one at its
 * end, summed over every proxy. The questions are the same as prometheus.ts asks in PromQL.
 */
export class DirectProvider implements MetricsProvider {
  private readonly scrapes: Scrape[] = [];
  private pending: Promise<Scrape> | undefined;

  constructor(
    private readonly targets: () => readonly string[],
    private readonly timeoutMs = 5_000,
  ) {}

  async isOnline(): Promise<boolean> {
    try {
      await this.scrape();
      return true;
    } catch {
      return false;
    }
  }

  async query(query: MetricQuery, window: Window): Promise<number | undefined> {
    if (query.kind === 'promql') throw new Error('the direct provider does not run PromQL');
    const end = await this.scrapeSince(window.to);
    const start =
      [...this.scrapes].reverse().find((s) => s.time <= window.from) ?? this.scrapes[0]!;
    const delta = (
      names: string | readonly string[],
      match: (labels: Record<string, string>) => boolean,
    ) => increases(start, end, typeof names === 'string' ? [names] : names, match);
    const durations = (suffix: string) => DURATIONS.map((name) => `${name}${suffix}`);
    const { service, lane } = query;
    const forwarded = (labels: Record<string, string>) =>
      labels.service === service &&
      labels.lane === lane &&
      (FORWARDING_LISTENERS as readonly string[]).includes(labels.listener ?? '');
    switch (query.kind) {
      case 'requests':
        return total(delta(REQUESTS, forwarded));
      case 'errors':
        return total(delta(REQUESTS, (l) => forwarded(l) && (l.code ?? '').startsWith('5')));
      case 'fallbacks':
        return total(
          delta(
            FALLBACKS,
            (l) => l.service === service && l.from_lane === lane && l.reason !== 'absent',
          ),
        );
      case 'duration': {
        if (query.stat === 'mean') {
          const count = total(delta(durations('_count'), forwarded));
          return count > 0 ? total(delta(durations('_sum'), forwarded)) / count : undefined;
        }
        const buckets = new Map<number, number>();
        for (const s of delta(durations('_bucket'), forwarded)) {
          const le = Number(s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : s.labels.le);
          buckets.set(le, (buckets.get(le) ?? 0) + s.value);
        }
        return quantile(0.99, buckets);
      }
    }
  }

  /** A scrape started at or after `time`: one shared by every query of the same interval end. */
  private async scrapeSince(time: number): Promise<Scrape> {
    const last = this.scrapes.at(-1);
    if (last && last.time >= time) return last;
    return await this.scrape();
  }

  private scrape(): Promise<Scrape> {
    this.pending ??= this.fetchAll().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async fetchAll(): Promise<Scrape> {
    const time = Date.now();
    const urls = this.targets();
    if (urls.length === 0) throw new Error('no proxy to scrape: give analysis.provider.targets');
    const series = new Map<string, Sample>();
    const texts = await Promise.all(
      urls.map(async (url) => {
        const res = await request(url, {
          headersTimeout: this.timeoutMs,
          bodyTimeout: this.timeoutMs,
        });
        const text = await res.body.text();
        if (res.statusCode !== 200) throw new Error(`${url} answered ${res.statusCode}`);
        return text;
      }),
    );
    for (const text of texts) {
      for (const sample of parseExposition(text)) {
        const k = key(sample);
        const had = series.get(k);
        // Several proxies export the same series: their counts add up.
        series.set(k, had ? { ...had, value: had.value + sample.value } : sample);
      }
    }
    const scrape = { time, series };
    this.scrapes.push(scrape);
    if (this.scrapes.length > KEPT) this.scrapes.shift();
    return scrape;
  }
}

/** Per series, how much a counter grew; a counter that went down was reset and counts from 0. */
function increases(
  start: Scrape,
  end: Scrape,
  names: readonly string[],
  match: (labels: Record<string, string>) => boolean,
): Sample[] {
  const out: Sample[] = [];
  for (const [k, sample] of end.series) {
    if (!names.includes(sample.name) || !match(sample.labels)) continue;
    const before = start === end ? sample.value : (start.series.get(k)?.value ?? 0);
    out.push({ ...sample, value: sample.value >= before ? sample.value - before : sample.value });
  }
  return out;
}

const total = (samples: readonly Sample[]) => samples.reduce((sum, s) => sum + s.value, 0);

/**
 * Prometheus' histogram_quantile: the bucket where the rank falls, interpolated linearly within it;
 * in the +Inf bucket, the highest finite bound.
 */
export function quantile(q: number, cumulative: ReadonlyMap<number, number>): number | undefined {
  const bounds = [...cumulative.keys()].sort((a, b) => a - b);
  const count = cumulative.get(Number.POSITIVE_INFINITY) ?? 0;
  if (count <= 0) return undefined;
  const rank = q * count;
  let lower = 0;
  let below = 0;
  for (const bound of bounds) {
    const upTo = cumulative.get(bound)!;
    if (upTo >= rank) {
      if (bound === Number.POSITIVE_INFINITY) return lower;
      return lower + (bound - lower) * ((rank - below) / Math.max(upTo - below, 1e-9));
    }
    lower = bound;
    below = upTo;
  }
  return lower;
}
