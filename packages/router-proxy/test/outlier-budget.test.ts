import { describe, expect, it } from 'vitest';
import { type EjectionEvent, OutlierDetector } from '../src/upstream/outlier.js';
import { RetryBudget } from '../src/upstream/retry-budget.js';

const options = {
  consecutiveFailures: 5,
  baseEjectionMs: 30_000,
  maxEjectionMs: 300_000,
  maxEjectionPercent: 50,
};

function detector() {
  let now = 1_000_000;
  const events: EjectionEvent[] = [];
  const outliers = new OutlierDetector(
    options,
    (e) => events.push(e),
    () => now,
  );
  return { outliers, events, advance: (ms: number) => (now += ms) };
}

const fail = (o: OutlierDetector, lane: string, endpoint: string, set: string[], times: number) => {
  for (let i = 0; i < times; i++) o.recordFailure('web', lane, endpoint, set);
};

describe('outlier detection', () => {
  it('ejects after N consecutive failures, and a success in between resets the count', () => {
    const { outliers } = detector();
    const set = ['http://a:1', 'http://b:1'];
    fail(outliers, 'gray', 'http://a:1', set, 4);
    outliers.recordSuccess('web', 'http://a:1');
    fail(outliers, 'gray', 'http://a:1', set, 4);
    expect(outliers.isEjected('web', 'gray', 'http://a:1')).toBe(false);
    fail(outliers, 'gray', 'http://a:1', set, 1);
    expect(outliers.isEjected('web', 'gray', 'http://a:1')).toBe(true);
  });

  it('ejects for base × times ejected, capped, and brings the endpoint back after', () => {
    const { outliers, events, advance } = detector();
    const set = ['http://a:1'];
    const durations: number[] = [];
    for (let round = 0; round < 12; round++) {
      fail(outliers, 'gray', 'http://a:1', set, 5);
      let waited = 0;
      while (outliers.isEjected('web', 'gray', 'http://a:1')) {
        advance(1_000);
        waited += 1_000;
      }
      durations.push(waited);
    }
    expect(durations.slice(0, 3)).toEqual([30_000, 60_000, 90_000]);
    expect(Math.max(...durations)).toBe(300_000);
    expect(events.filter((e) => e.ejected)).toHaveLength(12);
    expect(events.filter((e) => !e.ejected)).toHaveLength(12);
  });

  it('never ejects more than half of the stable set', () => {
    const { outliers } = detector();
    const set = ['http://a:1', 'http://b:1', 'http://c:1', 'http://d:1'];
    for (const endpoint of set) fail(outliers, 'stable', endpoint, set, 10);
    expect(set.filter((e) => outliers.isEjected('web', 'stable', e))).toHaveLength(2);
  });

  it("lets a lane's whole set be ejected, so its traffic falls back", () => {
    const { outliers } = detector();
    const set = ['http://a:1', 'http://b:1'];
    for (const endpoint of set) fail(outliers, 'gray', endpoint, set, 5);
    expect(set.every((e) => outliers.isEjected('web', 'gray', e))).toBe(true);
  });

  it('reinstates an endpoint early and forgets endpoints that left the table', () => {
    const { outliers, events } = detector();
    fail(outliers, 'gray', 'http://a:1', ['http://a:1'], 5);
    outliers.reinstate('web', 'gray', 'http://a:1');
    expect(outliers.isEjected('web', 'gray', 'http://a:1')).toBe(false);
    expect(events.at(-1)).toEqual({
      service: 'web',
      lane: 'gray',
      endpoint: 'http://a:1',
      ejected: false,
    });
    fail(outliers, 'gray', 'http://a:1', ['http://a:1'], 5);
    outliers.retain(() => false);
    expect(outliers.isEjected('web', 'gray', 'http://a:1')).toBe(false);
  });
});

describe('retry budget', () => {
  const budget = () => {
    let now = 5_000_000;
    return {
      b: new RetryBudget({ ratio: 0.2, windowMs: 10_000, minRetries: 10 }, () => now),
      advance: (ms: number) => (now += ms),
    };
  };

  it('allows the floor with no traffic, then 20 % of requests', () => {
    const { b } = budget();
    let granted = 0;
    for (let i = 0; i < 50; i++) if (b.tryRetry('web')) granted++;
    expect(granted).toBe(10);
    for (let i = 0; i < 100; i++) b.recordRequest('web');
    for (let i = 0; i < 50; i++) if (b.tryRetry('web')) granted++;
    expect(granted).toBe(30);
  });

  it('keeps one budget per service', () => {
    const { b } = budget();
    for (let i = 0; i < 10; i++) b.tryRetry('web');
    expect(b.tryRetry('web')).toBe(false);
    expect(b.tryRetry('api')).toBe(true);
  });

  it('slides: retries spent leave the window after it passes', () => {
    const { b, advance } = budget();
    for (let i = 0; i < 10; i++) b.tryRetry('web');
    expect(b.tryRetry('web')).toBe(false);
    advance(5_000);
    expect(b.tryRetry('web')).toBe(false);
    advance(5_001);
    expect(b.tryRetry('web')).toBe(true);
  });
});
