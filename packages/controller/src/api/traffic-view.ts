import { request } from 'undici';
import { parseExposition } from '../analysis/exposition.js';
import { FALLBACKS } from '../analysis/provider.js';

const EJECTED = 'graylane_endpoint_ejected';

/** What the proxies say about one service right now, for the status page. */
export interface ServiceTraffic {
  /** Fallbacks per second since the previous look, by `from->to (reason)`. */
  fallbacksPerSecond: Record<string, number>;
  /** Endpoints the proxies keep out of rotation, by lane. */
  ejected: Array<{ lane: string; endpoint: string }>;
}

interface Look {
  time: number;
  fallbacks: Map<string, number>;
}

/**
 * The proxies' metrics as the status page shows them: it scrapes their admin `/metrics`, turns the
 * fallback counters into rates against the previous scrape, and lists ejected endpoints. One scrape
 * serves every open page (callers share the pending one).
 */
export class TrafficView {
  private previous: Look | undefined;
  private pending: Promise<Record<string, ServiceTraffic>> | undefined;

  constructor(
    private readonly targets: () => readonly string[],
    private readonly now: () => number = Date.now,
  ) {}

  look(): Promise<Record<string, ServiceTraffic>> {
    this.pending ??= this.scrape().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async scrape(): Promise<Record<string, ServiceTraffic>> {
    const time = this.now();
    const texts = await Promise.all(
      this.targets().map((url) =>
        request(url, { headersTimeout: 2_000, bodyTimeout: 2_000 })
          .then((res) => res.body.text())
          // A proxy that does not answer leaves its numbers out; the page stays up.
          .catch(() => ''),
      ),
    );
    const services: Record<string, ServiceTraffic> = {};
    const of = (name: string) => {
      services[name] ??= { fallbacksPerSecond: {}, ejected: [] };
      return services[name];
    };
    const fallbacks = new Map<string, number>();
    for (const sample of texts.flatMap(parseExposition)) {
      const { service, lane } = sample.labels;
      if (service === undefined) continue;
      if (sample.name === FALLBACKS) {
        const key = `${service}\t${sample.labels.from_lane}->${sample.labels.to_lane} (${sample.labels.reason})`;
        fallbacks.set(key, (fallbacks.get(key) ?? 0) + sample.value);
      } else if (sample.name === EJECTED && sample.value > 0) {
        of(service).ejected.push({ lane: lane ?? '', endpoint: sample.labels.endpoint ?? '' });
      }
    }
    const before = this.previous;
    this.previous = { time, fallbacks };
    for (const [key, total] of fallbacks) {
      const [service, what] = key.split('\t') as [string, string];
      const seconds = before ? (time - before.time) / 1000 : 0;
      const rate =
        seconds > 0 ? Math.max(0, total - (before?.fallbacks.get(key) ?? 0)) / seconds : 0;
      of(service).fallbacksPerSecond[what] = Math.round(rate * 10) / 10;
    }
    return services;
  }
}
