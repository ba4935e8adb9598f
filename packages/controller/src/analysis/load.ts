import { SYNTHETIC_HEADER } from '@graylane/lane-core';
import { request } from 'undici';
import type { Load } from '../documents/analysis.js';
import { parseDuration } from '../documents/duration.js';

/**
 * Synthetic load through an entry while a step is analysed, for lanes with too little traffic to
 * judge (Flagger's load tester, built in). Every request carries the lane and
 * `x-graylane-synthetic: 1`, so proxies count it in `graylane_synthetic_*`, not in business metrics.
 * Bounded: at most `rps` requests in flight, and none after `duration` or `stop()`.
 */
export class LoadGenerator {
  private readonly timer: NodeJS.Timeout;
  private readonly until: number;
  private inFlight = 0;
  sent = 0;
  failed = 0;

  constructor(
    private readonly load: Load,
    private readonly base: string,
    private readonly lane: string,
  ) {
    const duration = load.duration === undefined ? undefined : parseDuration(load.duration)!;
    this.until = duration === undefined ? Number.POSITIVE_INFINITY : Date.now() + duration;
    this.timer = setInterval(() => this.tick(), Math.max(1, Math.round(1000 / load.rps)));
    this.timer.unref();
  }

  private tick(): void {
    if (Date.now() >= this.until) {
      this.stop();
      return;
    }
    if (this.inFlight >= Math.max(1, this.load.rps)) return;
    this.inFlight += 1;
    this.sent += 1;
    request(new URL(this.load.path, this.base), {
      headers: { 'x-lane': this.lane, [SYNTHETIC_HEADER]: '1' },
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
    })
      .then((res) => res.body.dump())
      .catch(() => {
        this.failed += 1;
      })
      .finally(() => {
        this.inFlight -= 1;
      });
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
