import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Balancer } from '../src/upstream/balancer.js';

const endpoints = (n: number) => Array.from({ length: n }, (_, i) => `http://10.0.0.${i + 1}:80`);

function tally(picks: Array<string | undefined>): Map<string | undefined, number> {
  const counts = new Map<string | undefined, number>();
  for (const p of picks) counts.set(p, (counts.get(p) ?? 0) + 1);
  return counts;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('Balancer: round robin', () => {
  it('cycles through every endpoint in order', () => {
    const b = new Balancer();
    const set = endpoints(3);
    const picks = Array.from({ length: 7 }, () => b.pick(set, 'round-robin', 'svc/stable'));
    expect(picks).toEqual([set[0], set[1], set[2], set[0], set[1], set[2], set[0]]);
  });

  it('property: N rounds give every endpoint exactly N picks', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 50 }), (n, rounds) => {
        const b = new Balancer();
        const set = endpoints(n);
        const counts = tally(
          Array.from({ length: n * rounds }, () => b.pick(set, 'round-robin', 'k')),
        );
        expect(counts.size).toBe(n);
        for (const e of set) expect(counts.get(e)).toBe(rounds);
      }),
    );
  });

  it('keeps one cursor per key', () => {
    const b = new Balancer();
    const set = endpoints(2);
    expect(b.pick(set, 'round-robin', 'a')).toBe(set[0]);
    expect(b.pick(set, 'round-robin', 'b')).toBe(set[0]);
    expect(b.pick(set, 'round-robin', 'a')).toBe(set[1]);
    expect(b.pick(set, 'round-robin', 'b')).toBe(set[1]);
  });

  it('ignores load', () => {
    const b = new Balancer();
    const set = endpoints(2);
    for (let i = 0; i < 10; i++) b.begin(set[0]!);
    const counts = tally(Array.from({ length: 10 }, () => b.pick(set, 'round-robin', 'k')));
    expect(counts.get(set[0])).toBe(5);
  });

  it('honours exclude and spreads evenly over the rest', () => {
    const b = new Balancer();
    const set = endpoints(4);
    const exclude = new Set([set[1]!]);
    const picks = Array.from({ length: 30 }, () => b.pick(set, 'round-robin', 'k', exclude));
    const counts = tally(picks);
    expect(counts.has(set[1])).toBe(false);
    for (const e of [set[0], set[2], set[3]]) expect(counts.get(e)).toBe(10);
  });

  it('survives the set shrinking between picks', () => {
    const b = new Balancer();
    const set = endpoints(5);
    for (let i = 0; i < 4; i++) b.pick(set, 'round-robin', 'k');
    const smaller = set.slice(0, 2);
    const picks = Array.from({ length: 6 }, () => b.pick(smaller, 'round-robin', 'k'));
    expect(picks.every((p) => p !== undefined && smaller.includes(p))).toBe(true);
    const counts = tally(picks);
    expect(counts.get(smaller[0])).toBe(3);
    expect(counts.get(smaller[1])).toBe(3);
  });
});

describe('Balancer: least request (two random choices)', () => {
  it('between two endpoints, always picks the less loaded', () => {
    const b = new Balancer();
    const [x, y] = endpoints(2) as [string, string];
    b.begin(x);
    b.begin(x);
    b.begin(y);
    for (let i = 0; i < 200; i++) expect(b.pick([x, y], 'least-request', 'k')).toBe(y);
    for (let i = 0; i < 2; i++) b.begin(y);
    for (let i = 0; i < 200; i++) expect(b.pick([x, y], 'least-request', 'k')).toBe(x);
  });

  it('compares two distinct endpoints even when Math.random repeats itself', () => {
    const b = new Balancer();
    const [x, y] = endpoints(2) as [string, string];
    b.begin(y);
    for (const r of [0, 0.4999, 0.5, 0.9999]) {
      vi.spyOn(Math, 'random').mockReturnValue(r);
      expect(b.pick([y, x], 'least-request', 'k')).toBe(x);
      vi.restoreAllMocks();
    }
  });

  it('property: never picks the most loaded endpoint when it is the only one at that load', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 2, maxLength: 8 }),
        (loads) => {
          const b = new Balancer();
          const set = endpoints(loads.length);
          loads.forEach((load, i) => {
            for (let k = 0; k < load; k++) b.begin(set[i]!);
          });
          const max = Math.max(...loads);
          const busiest =
            loads.filter((l) => l === max).length === 1 ? set[loads.indexOf(max)] : undefined;
          const counts = tally(
            Array.from({ length: 100 }, () => b.pick(set, 'least-request', 'k')),
          );
          expect([...counts.keys()].every((p) => p !== undefined && set.includes(p))).toBe(true);
          if (busiest !== undefined) expect(counts.has(busiest)).toBe(false);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('prefers idle endpoints: with one busy endpoint among four, it gets (almost) nothing', () => {
    const b = new Balancer();
    const set = endpoints(4);
    b.begin(set[0]!);
    const counts = tally(Array.from({ length: 4_000 }, () => b.pick(set, 'least-request', 'k')));
    expect(counts.get(set[0]) ?? 0).toBe(0);
    for (const e of set.slice(1)) expect(counts.get(e)).toBeGreaterThan(1_000);
  });

  it('spreads evenly when every endpoint is equally loaded', () => {
    const b = new Balancer();
    const set = endpoints(4);
    const counts = tally(Array.from({ length: 8_000 }, () => b.pick(set, 'least-request', 'k')));
    for (const e of set) {
      expect(counts.get(e)).toBeGreaterThan(1_700);
      expect(counts.get(e)).toBeLessThan(2_300);
    }
  });

  it('property: never picks an excluded endpoint', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 8 })
          .chain((n) =>
            fc.tuple(fc.constant(n), fc.subarray(Array.from({ length: n }, (_, i) => i))),
          ),
        fc.constantFrom('least-request', 'round-robin') as fc.Arbitrary<
          'least-request' | 'round-robin'
        >,
        ([n, excluded], policy) => {
          const b = new Balancer();
          const set = endpoints(n);
          const exclude = new Set(excluded.map((i) => set[i]!));
          for (let i = 0; i < 30; i++) {
            const picked = b.pick(set, policy, 'k', exclude);
            if (exclude.size === n) expect(picked).toBeUndefined();
            else {
              expect(picked).toBeDefined();
              expect(exclude.has(picked!)).toBe(false);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('Balancer: small sets', () => {
  for (const policy of ['least-request', 'round-robin'] as const) {
    it(`${policy}: one endpoint is always picked, whatever its load`, () => {
      const b = new Balancer();
      const [only] = endpoints(1) as [string];
      for (let i = 0; i < 5; i++) b.begin(only);
      for (let i = 0; i < 3; i++) expect(b.pick([only], policy, 'k')).toBe(only);
    });

    it(`${policy}: no endpoint gives undefined`, () => {
      const b = new Balancer();
      expect(b.pick([], policy, 'k')).toBeUndefined();
      expect(b.pick([], policy, 'k', new Set(['x']))).toBeUndefined();
    });

    it(`${policy}: one left after exclude is picked; none left gives undefined`, () => {
      const b = new Balancer();
      const [x, y] = endpoints(2) as [string, string];
      expect(b.pick([x, y], policy, 'k', new Set([x]))).toBe(y);
      expect(b.pick([x, y], policy, 'k', new Set([x, y]))).toBeUndefined();
      // An empty exclude set excludes nothing.
      expect([x, y]).toContain(b.pick([x, y], policy, 'k', new Set()));
    });
  }
});

describe('Balancer: begin / release', () => {
  it('counts in-flight requests per endpoint', () => {
    const b = new Balancer();
    const [x, y] = endpoints(2) as [string, string];
    expect(b.load(x)).toBe(0);
    const r1 = b.begin(x);
    const r2 = b.begin(x);
    b.begin(y);
    expect(b.load(x)).toBe(2);
    expect(b.load(y)).toBe(1);
    r1();
    expect(b.load(x)).toBe(1);
    r2();
    expect(b.load(x)).toBe(0);
    expect(b.load(y)).toBe(1);
  });

  it('release is idempotent: calling it twice releases once', () => {
    const b = new Balancer();
    const [x] = endpoints(1) as [string];
    const first = b.begin(x);
    const second = b.begin(x);
    first();
    first();
    first();
    expect(b.load(x)).toBe(1);
    second();
    second();
    expect(b.load(x)).toBe(0);
    // Never below zero, and a later begin starts from zero again.
    first();
    expect(b.load(x)).toBe(0);
    b.begin(x);
    expect(b.load(x)).toBe(1);
  });

  it('property: any interleaving of begins and (repeated) releases leaves the true count', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant('begin' as const), fc.nat({ max: 20 })), { maxLength: 60 }),
        (ops) => {
          const b = new Balancer();
          const [x] = endpoints(1) as [string];
          const releases: Array<() => void> = [];
          const released = new Set<number>();
          for (const op of ops) {
            if (op === 'begin') releases.push(b.begin(x));
            else if (releases.length > 0) {
              const i = op % releases.length;
              releases[i]!();
              released.add(i);
            }
          }
          expect(b.load(x)).toBe(releases.length - released.size);
        },
      ),
    );
  });

  it('pick does not change the load', () => {
    const b = new Balancer();
    const set = endpoints(3);
    for (let i = 0; i < 10; i++) b.pick(set, 'least-request', 'k');
    for (const e of set) expect(b.load(e)).toBe(0);
  });
});
