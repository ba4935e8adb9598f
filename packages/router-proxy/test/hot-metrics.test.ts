import fc from 'fast-check';
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { LabelIndex, SeriesHistogram, Tally } from '../src/hot-metrics.js';

const BUCKETS = [0.001, 0.01, 0.1, 1];
const LABELS = [
  { listener: 'gateway', lane: 'gray' },
  { listener: 'outbound', lane: 'stable' },
];

describe('SeriesHistogram', () => {
  it('exposes the same lines as prom-client Histogram for the same observations', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.tuple(fc.integer({ min: 0, max: 1 }), fc.double({ min: 0, max: 5, noNaN: true })),
        ),
        async (observations) => {
          const theirs = new Registry();
          const reference = new Histogram({
            name: 'd',
            help: 'h',
            labelNames: ['listener', 'lane'],
            buckets: BUCKETS,
            registers: [theirs],
          });
          const ours = new Registry();
          const histogram = new SeriesHistogram('d', 'h', BUCKETS, ours);
          for (const [which, value] of observations) {
            const labels = LABELS[which]!;
            reference.observe(labels, value);
            histogram.observe(histogram.series(String(which), labels), value);
          }
          expect(await ours.metrics()).toBe(await theirs.metrics());
        },
      ),
      { numRuns: 200 },
    );
  });

  it('counts a value equal to a bound in that bound', async () => {
    const registry = new Registry();
    const histogram = new SeriesHistogram('d', 'h', BUCKETS, registry);
    histogram.observe(histogram.series('a', { lane: 'gray' }), 0.01);
    const text = await registry.metrics();
    expect(text).toContain('d_bucket{le="0.001",lane="gray"} 0');
    expect(text).toContain('d_bucket{le="0.01",lane="gray"} 1');
    expect(text).toContain('d_count{lane="gray"} 1');
  });
});

describe('Tally', () => {
  it('hands every count to the counter when scraped, and only once', async () => {
    const registry = new Registry();
    const tally = new Tally<'code'>();
    const counter: Counter<'code'> = new Counter({
      name: 'c',
      help: 'h',
      labelNames: ['code'],
      registers: [registry],
      collect: () => tally.drainInto(counter),
    });
    const ok = tally.series({ code: 200 });
    for (let i = 0; i < 3; i++) ok.count++;
    tally.series({ code: 503 }).count++;
    expect(await registry.metrics()).toContain('c{code="200"} 3');
    ok.count++;
    const text = await registry.metrics();
    expect(text).toContain('c{code="200"} 4');
    expect(text).toContain('c{code="503"} 1');
  });
});

describe('LabelIndex', () => {
  it('finds a value by all four label values, and only by them', () => {
    const index = new LabelIndex<number>();
    index.set('gateway', 'web', 'gray', 'v2', 1);
    index.set('gateway', 'web', 'gray', '', 2);
    index.set('gateway', 'web', 'stable', 'v2', 3);
    expect(index.get('gateway', 'web', 'gray', 'v2')).toBe(1);
    expect(index.get('gateway', 'web', 'gray', '')).toBe(2);
    expect(index.get('gateway', 'web', 'stable', 'v2')).toBe(3);
    expect(index.get('outbound', 'web', 'gray', 'v2')).toBeUndefined();
    // Values that would collide if joined into one key do not.
    index.set('a\u0000b', 'c', 'd', 'e', 4);
    expect(index.get('a', 'b\u0000c', 'd', 'e')).toBeUndefined();
  });
});
