import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BUCKETS, inWeight, stickyBucket, WeightedSplitter } from '../src/routing/sticky.js';
import { referenceBucket, referenceFmix32, referenceFnv1a } from './sticky-reference.js';

const lane = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/);
const key = fc.string({ maxLength: 64 });
const weight = fc.double({ min: 0, max: 100, noNaN: true });

const samples = new Map<string, string[]>();

/** A fixed pseudo-random key set, so that the distribution assertions cannot flake. */
function keys(count: number, seed = 42): string[] {
  const id = `${count}/${seed}`;
  let sample = samples.get(id);
  if (!sample) {
    sample = fc.sample(fc.uuid(), { numRuns: count, seed });
    samples.set(id, sample);
  }
  return sample;
}

describe('stickyBucket', () => {
  it('is an integer in 0..9999', () => {
    expect(BUCKETS).toBe(10_000);
    fc.assert(
      fc.property(key, lane, (k, l) => {
        const bucket = stickyBucket(k, l);
        expect(Number.isInteger(bucket)).toBe(true);
        expect(bucket).toBeGreaterThanOrEqual(0);
        expect(bucket).toBeLessThan(BUCKETS);
      }),
    );
  });

  it('the reference hash matches the published FNV-1a and murmur3 vectors', () => {
    // FNV-1a 32: the test suite of the FNV reference code (isthe.com/chongo/tech/comp/fnv).
    expect(referenceFnv1a('')).toBe(0x811c9dc5n);
    expect(referenceFnv1a('a')).toBe(0xe40c292cn);
    expect(referenceFnv1a('foobar')).toBe(0xbf9cf968n);
    // murmur3_32 of the empty input is fmix32(seed): the vectors for seeds 1 and 0xffffffff.
    expect(referenceFmix32(0n)).toBe(0n);
    expect(referenceFmix32(1n)).toBe(0x514e28b7n);
    expect(referenceFmix32(0xffffffffn)).toBe(0x81f16f39n);
  });

  it('is the reference hash of lane, NUL, key: every proxy and every release agrees (property)', () => {
    // A change of hash reshuffles every sticky user across lanes: this fails unless it is deliberate.
    fc.assert(
      fc.property(key, lane, (k, l) => {
        expect(stickyBucket(k, l)).toBe(referenceBucket(k, l));
      }),
      { numRuns: 1_000 },
    );
    expect(['user-1', 'user-2', ''].map((k) => stickyBucket(k, 'gray'))).toEqual(
      ['user-1', 'user-2', ''].map((k) => referenceBucket(k, 'gray')),
    );
  });

  it('is monotone: a key in the lane at weight w1 stays in it at any w2 >= w1', () => {
    fc.assert(
      fc.property(key, lane, weight, weight, (k, l, a, b) => {
        const [w1, w2] = a <= b ? [a, b] : [b, a];
        const bucket = stickyBucket(k, l);
        if (inWeight(bucket, w1)) expect(inWeight(bucket, w2)).toBe(true);
        // And the contrapositive: out at the higher weight means out at the lower one.
        if (!inWeight(bucket, w2)) expect(inWeight(bucket, w1)).toBe(false);
      }),
      { numRuns: 2_000 },
    );
  });

  it('is monotone over a whole ramp: 2 000 keys, every weight from 0 to 100 in steps of 0.25', () => {
    // A random pair of weights rarely lands on the keys a subtly non-monotone split moves; a full
    // ramp over many keys visits each key at every step a release takes.
    const left: string[] = [];
    const neverIn: string[] = [];
    for (const k of keys(2_000, 5)) {
      const bucket = stickyBucket(k, 'gray');
      let entered = false;
      for (let step = 0; step <= 400; step++) {
        const inLane = inWeight(bucket, step / 4);
        if (entered && !inLane) left.push(`${k} at ${step / 4} %`);
        entered ||= inLane;
      }
      if (!entered) neverIn.push(k);
    }
    expect(left).toEqual([]);
    expect(neverIn).toEqual([]);
  });

  it('weight 0 takes no key and weight 100 takes every key', () => {
    fc.assert(
      fc.property(key, lane, (k, l) => {
        expect(inWeight(stickyBucket(k, l), 0)).toBe(false);
        expect(inWeight(stickyBucket(k, l), 100)).toBe(true);
      }),
    );
    expect(inWeight(0, 0)).toBe(false);
    expect(inWeight(0, 0.01)).toBe(true);
    expect(inWeight(BUCKETS - 1, 100)).toBe(true);
    expect(inWeight(BUCKETS - 1, 99.99)).toBe(false);
  });

  it.each([1, 10, 50, 90])(
    'weight %i: the share of 10 000 random keys is within ±2 points',
    (w) => {
      const sample = keys(10_000);
      const share = sample.filter((k) => inWeight(stickyBucket(k, 'gray'), w)).length / 100;
      expect(Math.abs(share - w)).toBeLessThanOrEqual(2);
    },
  );

  it('spreads the buckets evenly (no decile holds more than 12 % of the keys)', () => {
    const deciles = new Array<number>(10).fill(0);
    for (const k of keys(20_000, 7)) {
      const decile = Math.floor(stickyBucket(k, 'canary') / 1_000);
      deciles[decile] = (deciles[decile] ?? 0) + 1;
    }
    for (const count of deciles) expect(count / 20_000).toBeLessThan(0.12);
  });

  it('spreads sequential keys too (user-1, user-2, ...)', () => {
    let inLane = 0;
    for (let i = 0; i < 10_000; i++) if (inWeight(stickyBucket(`user-${i}`, 'gray'), 10)) inLane++;
    expect(Math.abs(inLane / 100 - 10)).toBeLessThanOrEqual(2);
  });

  it('salts by lane: two 10 % lanes do not pick the same keys', () => {
    const sample = keys(10_000, 3);
    const inGray = new Set(sample.filter((k) => inWeight(stickyBucket(k, 'gray'), 10)));
    const inBlue = sample.filter((k) => inWeight(stickyBucket(k, 'blue'), 10));
    const overlap = inBlue.filter((k) => inGray.has(k)).length;
    // Independent hashes overlap on about 10 % of either slice (~100 keys); the same hash on 100 %.
    expect(overlap / inBlue.length).toBeLessThan(0.2);
    expect(overlap / inGray.size).toBeLessThan(0.2);
  });

  it('separates the lane from the key (no ambiguity by concatenation)', () => {
    // Without a separator `gray` + `1` and `gray1` + `` would hash alike.
    const a = keys(200, 11).map((k) => stickyBucket(`1${k}`, 'gray'));
    const b = keys(200, 11).map((k) => stickyBucket(k, 'gray1'));
    expect(a.filter((x, i) => x === b[i]).length).toBeLessThan(5);
  });

  it('is independent of random keys: a fresh UUID lands anywhere', () => {
    const buckets = new Set(Array.from({ length: 200 }, () => stickyBucket(randomUUID(), 'gray')));
    expect(buckets.size).toBeGreaterThan(190);
  });
});

describe('WeightedSplitter', () => {
  const N = 10_000;

  function count(splitter: WeightedSplitter, w: number, n = N): number {
    let selected = 0;
    for (let i = 0; i < n; i++) if (splitter.next(w)) selected++;
    return selected;
  }

  it('selects N × weight / 100 requests to within one, for any weight and starting credit', () => {
    fc.assert(
      fc.property(weight, fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (w, c) => {
        const selected = count(new WeightedSplitter(c), w);
        expect(Math.abs(selected - (N * w) / 100)).toBeLessThanOrEqual(1);
      }),
      { numRuns: 300 },
    );
  });

  it('stays within one request over every prefix of the sequence, not only at the end', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100 }), (w) => {
        const splitter = new WeightedSplitter(0.5);
        let selected = 0;
        let worst = 0;
        for (let i = 1; i <= 2_000; i++) {
          if (splitter.next(w)) selected++;
          worst = Math.max(worst, Math.abs(selected - (i * w) / 100));
        }
        expect(worst).toBeLessThanOrEqual(1);
      }),
      { numRuns: 101 },
    );
  });

  it('with the default (random) starting credit too', () => {
    for (const w of [0.5, 1, 10, 33.33, 50, 90, 99.9]) {
      expect(Math.abs(count(new WeightedSplitter(), w) - (N * w) / 100)).toBeLessThanOrEqual(1);
    }
  });

  it('never selects at weight 0 and always at weight 100', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (c) => {
        const never = new WeightedSplitter(c);
        const always = new WeightedSplitter(c);
        expect(count(never, 0, 1_000)).toBe(0);
        expect(count(always, 100, 1_000)).toBe(1_000);
      }),
      { numRuns: 50 },
    );
  });

  it('interleaves rather than bursting: 50 % alternates', () => {
    const splitter = new WeightedSplitter(0);
    const picks = Array.from({ length: 8 }, () => splitter.next(50));
    expect(picks).toEqual([false, true, false, true, false, true, false, true]);
  });
});
