import type { LaneTag, RouteTableInput } from '@graylane/lane-core';
import { parseRouteTable } from '@graylane/lane-core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Assignment, type AssignmentInput, assignLane } from '../src/routing/assign.js';
import { type CompiledEntrypoint, compileTable } from '../src/routing/compiled-table.js';
import { inWeight, stickyBucket, WeightedSplitter } from '../src/routing/sticky.js';

type EntrypointInput = NonNullable<RouteTableInput['entrypoints']>[number];

const SECRET = 's3cret-value-123';

/** One service with three lanes; every entrypoint given is compiled into the same table. */
function entrypoint(entry: Omit<EntrypointInput, 'service' | 'name'> & { name?: string }) {
  const table = compileTable(
    parseRouteTable({
      apiVersion: 'graylane/v1',
      revision: 1,
      services: {
        web: {
          stable: { endpoints: ['http://127.0.0.1:8000'] },
          lanes: {
            gray: { endpoints: ['http://127.0.0.1:8001'] },
            blue: { endpoints: ['http://127.0.0.1:8002'] },
            'feature-x': { endpoints: [], fallback: 'gray' },
          },
        },
      },
      entrypoints: [{ name: 'shop', service: 'web', ...entry }],
    }),
  );
  return { entry: table.entrypoints[0]!, knownLanes: table.knownLanes };
}

interface Request {
  tag?: string;
  tagSource?: LaneTag['source'];
  headers?: Record<string, string>;
  cookies?: Record<string, string>;
}

/** A fake request plus the gateway's per-rule splitters and a counter of generated sticky keys. */
function harness(compiled: { entry: CompiledEntrypoint; knownLanes: ReadonlySet<string> }) {
  const splitters = new Map<string, WeightedSplitter>();
  const splitterCalls: string[] = [];
  let keys = 0;
  const state = { newKeys: 0 };
  function assign(request: Request = {}): Assignment {
    const clientTag: LaneTag =
      request.tag === undefined
        ? { lane: 'stable', source: 'none', invalid: false }
        : { lane: request.tag, source: request.tagSource ?? 'header', invalid: false };
    const input: AssignmentInput = {
      clientTag,
      header: (name) => request.headers?.[name],
      cookie: (name) => request.cookies?.[name],
      knownLanes: compiled.knownLanes,
      splitter: (entrypointName, index) => {
        const id = `${entrypointName}#${index}`;
        splitterCalls.push(id);
        let splitter = splitters.get(id);
        if (!splitter) {
          splitter = new WeightedSplitter(0);
          splitters.set(id, splitter);
        }
        return splitter;
      },
      newStickyKey: () => {
        state.newKeys++;
        return `key-${++keys}`;
      },
    };
    return assignLane(compiled.entry, input);
  }
  return { assign, splitterCalls, state };
}

describe('assignLane: client lanes', () => {
  it('`off` ignores the client tag, and the rules still apply', () => {
    const { assign } = harness(entrypoint({ clientLanes: 'off' }));
    expect(assign({ tag: 'gray' })).toEqual({ lane: 'stable', reason: 'default' });
    const withRule = harness(
      entrypoint({
        clientLanes: 'off',
        assign: [{ lane: 'blue', when: { headers: { 'x-beta': { exact: '1' } } } }],
      }),
    );
    expect(withRule.assign({ tag: 'gray', headers: { 'x-beta': '1' } })).toEqual({
      lane: 'blue',
      reason: 'match',
    });
    expect(withRule.assign({ tag: 'gray' })).toEqual({ lane: 'stable', reason: 'default' });
  });

  it('`known` (the default) accepts lanes the table defines, and stable', () => {
    const { assign } = harness(entrypoint({}));
    expect(assign({ tag: 'gray' })).toEqual({ lane: 'gray', reason: 'client' });
    expect(assign({ tag: 'feature-x', tagSource: 'baggage' })).toEqual({
      lane: 'feature-x',
      reason: 'client',
    });
    expect(assign({ tag: 'stable' })).toEqual({ lane: 'stable', reason: 'client' });
    expect(assign({ tag: 'nope' })).toEqual({ lane: 'stable', reason: 'default' });
  });

  it('`known` sends an unknown tag through the rules', () => {
    const { assign } = harness(entrypoint({ clientLanes: 'known', assign: [{ lane: 'gray' }] }));
    expect(assign({ tag: 'nope' })).toEqual({ lane: 'gray', reason: 'match' });
    expect(assign({ tag: 'blue' })).toEqual({ lane: 'blue', reason: 'client' });
  });

  it('`any` accepts every valid tag, known or not', () => {
    const { assign } = harness(entrypoint({ clientLanes: 'any', assign: [{ lane: 'gray' }] }));
    expect(assign({ tag: 'nope' })).toEqual({ lane: 'nope', reason: 'client' });
    expect(assign({ tag: 'blue' })).toEqual({ lane: 'blue', reason: 'client' });
    expect(assign({ tag: 'stable' })).toEqual({ lane: 'stable', reason: 'client' });
  });

  it('never treats an untagged request as a client choice', () => {
    for (const clientLanes of ['off', 'known', 'any'] as const) {
      const { assign } = harness(entrypoint({ clientLanes, assign: [{ lane: 'gray' }] }));
      expect(assign({})).toEqual({ lane: 'gray', reason: 'match' });
    }
  });

  describe('clientLanesSecret', () => {
    const secret = { header: 'x-lane-secret', value: SECRET };

    it('accepts the tag only with the matching secret header', () => {
      const { assign } = harness(entrypoint({ clientLanes: 'any', clientLanesSecret: secret }));
      expect(assign({ tag: 'gray', headers: { 'x-lane-secret': SECRET } })).toEqual({
        lane: 'gray',
        reason: 'client',
      });
    });

    it('refuses the tag with a wrong, shorter, longer, empty or missing secret', () => {
      const { assign } = harness(entrypoint({ clientLanes: 'any', clientLanesSecret: secret }));
      for (const value of [
        's3cret-value-124',
        SECRET.slice(0, -1),
        `${SECRET}x`,
        SECRET.toUpperCase(),
        '',
        undefined,
      ]) {
        const headers: Record<string, string> =
          value === undefined ? {} : { 'x-lane-secret': value };
        expect(assign({ tag: 'gray', headers })).toEqual({ lane: 'stable', reason: 'default' });
      }
      // The secret must come in its own header, not in another one.
      expect(assign({ tag: 'gray', headers: { authorization: SECRET } }).reason).toBe('default');
    });

    it('does not widen `known`: a right secret with an unknown lane is still refused', () => {
      const { assign } = harness(entrypoint({ clientLanes: 'known', clientLanesSecret: secret }));
      const headers = { 'x-lane-secret': SECRET };
      expect(assign({ tag: 'nope', headers })).toEqual({ lane: 'stable', reason: 'default' });
      expect(assign({ tag: 'blue', headers })).toEqual({ lane: 'blue', reason: 'client' });
    });

    it('does not override `off`', () => {
      const { assign } = harness(entrypoint({ clientLanes: 'off', clientLanesSecret: secret }));
      const headers = { 'x-lane-secret': SECRET };
      expect(assign({ tag: 'gray', headers })).toEqual({ lane: 'stable', reason: 'default' });
    });

    it('a refused client falls through to the rules', () => {
      const { assign } = harness(
        entrypoint({ clientLanes: 'any', clientLanesSecret: secret, assign: [{ lane: 'blue' }] }),
      );
      expect(assign({ tag: 'gray' })).toEqual({ lane: 'blue', reason: 'match' });
    });
  });
});

describe('assignLane: header rules', () => {
  const rules = harness(
    entrypoint({
      clientLanes: 'off',
      assign: [
        { lane: 'gray', when: { headers: { 'user-agent': { exact: 'tester' } } } },
        { lane: 'blue', when: { headers: { 'x-team': { prefix: 'payments-' } } } },
        { lane: 'feature-x', when: { headers: { 'x-user': { regex: '^(alice|bob)@' } } } },
      ],
    }),
  );

  it('exact matches the whole value only', () => {
    expect(rules.assign({ headers: { 'user-agent': 'tester' } })).toEqual({
      lane: 'gray',
      reason: 'match',
    });
    for (const ua of ['tester2', 'Tester', ' tester', 'test', ''])
      expect(rules.assign({ headers: { 'user-agent': ua } }).lane).toBe('stable');
  });

  it('prefix matches a value that starts with it', () => {
    expect(rules.assign({ headers: { 'x-team': 'payments-eu' } }).lane).toBe('blue');
    expect(rules.assign({ headers: { 'x-team': 'payments-' } }).lane).toBe('blue');
    expect(rules.assign({ headers: { 'x-team': 'eu-payments-' } }).lane).toBe('stable');
    expect(rules.assign({ headers: { 'x-team': 'payments' } }).lane).toBe('stable');
  });

  it('regex matches by JavaScript RegExp.test', () => {
    expect(rules.assign({ headers: { 'x-user': 'alice@example.com' } }).lane).toBe('feature-x');
    expect(rules.assign({ headers: { 'x-user': 'bob@x' } }).lane).toBe('feature-x');
    expect(rules.assign({ headers: { 'x-user': 'carol@example.com' } }).lane).toBe('stable');
    expect(rules.assign({ headers: { 'x-user': 'x alice@' } }).lane).toBe('stable');
  });

  it('an unanchored regex matches anywhere, and is not stateful across calls', () => {
    const { assign } = harness(
      entrypoint({ assign: [{ lane: 'gray', when: { headers: { 'x-q': { regex: 'beta' } } } }] }),
    );
    for (let i = 0; i < 5; i++)
      expect(assign({ headers: { 'x-q': 'is-beta-1' } }).lane).toBe('gray');
  });

  it('a missing header matches nothing, not even an empty exact, a prefix "" or a regex ".*"', () => {
    const { assign } = harness(
      entrypoint({
        assign: [
          { lane: 'gray', when: { headers: { 'x-a': { exact: '' } } } },
          { lane: 'blue', when: { headers: { 'x-b': { prefix: '' } } } },
          { lane: 'feature-x', when: { headers: { 'x-c': { regex: '.*' } } } },
        ],
      }),
    );
    expect(assign({})).toEqual({ lane: 'stable', reason: 'default' });
    expect(assign({ headers: { 'x-a': '' } }).lane).toBe('gray');
    expect(assign({ headers: { 'x-b': 'anything' } }).lane).toBe('blue');
    expect(assign({ headers: { 'x-c': '' } }).lane).toBe('feature-x');
  });

  it('needs every header of a rule to match', () => {
    const { assign } = harness(
      entrypoint({
        assign: [
          {
            lane: 'gray',
            when: { headers: { 'x-a': { exact: '1' }, 'x-b': { prefix: 'y' } } },
          },
        ],
      }),
    );
    expect(assign({ headers: { 'x-a': '1', 'x-b': 'yes' } }).lane).toBe('gray');
    expect(assign({ headers: { 'x-a': '1' } }).lane).toBe('stable');
    expect(assign({ headers: { 'x-b': 'yes' } }).lane).toBe('stable');
    expect(assign({ headers: { 'x-a': '2', 'x-b': 'yes' } }).lane).toBe('stable');
  });

  it('takes the first rule that matches', () => {
    const { assign } = harness(
      entrypoint({
        assign: [
          { lane: 'blue', when: { headers: { 'x-a': { prefix: 'a' } } } },
          { lane: 'gray', when: { headers: { 'x-a': { exact: 'abc' } } } },
          { lane: 'feature-x' },
          { lane: 'gray' },
        ],
      }),
    );
    expect(assign({ headers: { 'x-a': 'abc' } })).toEqual({ lane: 'blue', reason: 'match' });
    expect(assign({ headers: { 'x-a': 'zzz' } })).toEqual({ lane: 'feature-x', reason: 'match' });
    expect(assign({})).toEqual({ lane: 'feature-x', reason: 'match' });
  });

  it('may assign stable explicitly (to keep some traffic out of a later catch-all)', () => {
    const { assign } = harness(
      entrypoint({
        assign: [
          { lane: 'stable', when: { headers: { 'user-agent': { prefix: 'bot' } } } },
          { lane: 'gray' },
        ],
      }),
    );
    expect(assign({ headers: { 'user-agent': 'bot/1' } })).toEqual({
      lane: 'stable',
      reason: 'match',
    });
    expect(assign({ headers: { 'user-agent': 'human' } })).toEqual({
      lane: 'gray',
      reason: 'match',
    });
  });

  it('falls through to stable with reason `default` when no rule matches', () => {
    expect(harness(entrypoint({})).assign({})).toEqual({ lane: 'stable', reason: 'default' });
    expect(rules.assign({ headers: { other: 'x' } })).toEqual({
      lane: 'stable',
      reason: 'default',
    });
  });
});

describe('assignLane: weighted rules', () => {
  it('without sticky, splits by the rule’s own splitter (reason `weight`)', () => {
    const h = harness(entrypoint({ assign: [{ lane: 'gray', weight: 30 }] }));
    const lanes = Array.from({ length: 1_000 }, () => h.assign());
    const gray = lanes.filter((a) => a.lane === 'gray');
    expect(Math.abs(gray.length - 300)).toBeLessThanOrEqual(1);
    expect(new Set(gray.map((a) => a.reason))).toEqual(new Set(['weight']));
    expect(new Set(lanes.filter((a) => a.lane !== 'gray').map((a) => a.reason))).toEqual(
      new Set(['default']),
    );
    expect(new Set(h.splitterCalls)).toEqual(new Set(['shop#0']));
    expect(lanes.some((a) => a.setCookies)).toBe(false);
  });

  it('weight applies to the requests that reach the rule; the rest go on down the list', () => {
    const h = harness(
      entrypoint({
        assign: [
          { lane: 'gray', weight: 50 },
          { lane: 'blue', weight: 50 },
        ],
      }),
    );
    const lanes = Array.from({ length: 1_000 }, () => h.assign().lane);
    const share = (lane: string) => lanes.filter((l) => l === lane).length;
    expect(Math.abs(share('gray') - 500)).toBeLessThanOrEqual(1);
    expect(Math.abs(share('blue') - 250)).toBeLessThanOrEqual(1);
    expect(Math.abs(share('stable') - 250)).toBeLessThanOrEqual(2);
    // Each rule has its own splitter; the second is asked only when the first said no.
    expect(h.splitterCalls.filter((id) => id === 'shop#0')).toHaveLength(1_000);
    expect(h.splitterCalls.filter((id) => id === 'shop#1')).toHaveLength(
      share('blue') + share('stable'),
    );
  });

  it('checks the headers before the weight', () => {
    const h = harness(
      entrypoint({
        assign: [{ lane: 'gray', weight: 100, when: { headers: { 'x-beta': { exact: '1' } } } }],
      }),
    );
    expect(h.assign()).toEqual({ lane: 'stable', reason: 'default' });
    expect(h.splitterCalls).toEqual([]);
    expect(h.assign({ headers: { 'x-beta': '1' } })).toEqual({ lane: 'gray', reason: 'weight' });
  });

  it('weight 0 never selects and weight 100 always does', () => {
    const zero = harness(entrypoint({ assign: [{ lane: 'gray', weight: 0 }] }));
    const full = harness(entrypoint({ assign: [{ lane: 'gray', weight: 100 }] }));
    for (let i = 0; i < 200; i++) {
      expect(zero.assign().lane).toBe('stable');
      expect(full.assign()).toEqual({ lane: 'gray', reason: 'weight' });
    }
  });
});

describe('assignLane: sticky cookie', () => {
  const expected = (key: string, lane: string, weight: number) =>
    inWeight(stickyBucket(key, lane), weight) ? lane : 'stable';

  it('an existing cookie decides the lane by its bucket, the same way every time', () => {
    const h = harness(entrypoint({ assign: [{ lane: 'gray', weight: 40, sticky: 'cookie:gl' }] }));
    let inLane = 0;
    for (let i = 0; i < 500; i++) {
      const key = `user-${i}`;
      const first = h.assign({ cookies: { gl: key } });
      const again = h.assign({ cookies: { gl: key } });
      expect(again).toEqual(first);
      expect(first.lane).toBe(expected(key, 'gray', 40));
      expect(first.reason).toBe(first.lane === 'gray' ? 'sticky' : 'default');
      expect(first.setCookies).toBeUndefined();
      if (first.lane === 'gray') inLane++;
    }
    expect(inLane).toBeGreaterThan(150);
    expect(inLane).toBeLessThan(250);
    expect(h.state.newKeys).toBe(0);
    expect(h.splitterCalls).toEqual([]);
  });

  it('without the cookie, draws a new key, decides by it and asks for the cookie to be set', () => {
    const h = harness(entrypoint({ assign: [{ lane: 'gray', weight: 40, sticky: 'cookie:gl' }] }));
    for (let i = 1; i <= 200; i++) {
      const a = h.assign({ cookies: { other: 'x' } });
      expect(a.setCookies).toEqual([{ name: 'gl', value: `key-${i}` }]);
      expect(a.lane).toBe(expected(`key-${i}`, 'gray', 40));
      // The next request that brings the cookie back lands in the same lane.
      const back = h.assign({ cookies: { gl: `key-${i}` } });
      expect(back.lane).toBe(a.lane);
      expect(back.setCookies).toBeUndefined();
    }
    expect(h.state.newKeys).toBe(200);
  });

  it('an empty cookie counts as missing', () => {
    const h = harness(entrypoint({ assign: [{ lane: 'gray', weight: 40, sticky: 'cookie:gl' }] }));
    expect(h.assign({ cookies: { gl: '' } }).setCookies).toEqual([{ name: 'gl', value: 'key-1' }]);
  });

  it('sets the cookie even when the key falls outside the lane (so that it stays outside)', () => {
    const h = harness(entrypoint({ assign: [{ lane: 'gray', weight: 0, sticky: 'cookie:gl' }] }));
    expect(h.assign()).toEqual({
      lane: 'stable',
      reason: 'default',
      setCookies: [{ name: 'gl', value: 'key-1' }],
    });
  });

  it('creates one key per cookie name even when two rules use it', () => {
    const h = harness(
      entrypoint({
        assign: [
          { lane: 'gray', weight: 0, sticky: 'cookie:gl' },
          { lane: 'blue', weight: 100, sticky: 'cookie:gl' },
        ],
      }),
    );
    const a = h.assign();
    expect(a).toEqual({
      lane: 'blue',
      reason: 'sticky',
      setCookies: [{ name: 'gl', value: 'key-1' }],
    });
    expect(h.state.newKeys).toBe(1);
  });

  it('two rules sharing a cookie see the same key, whatever the weights', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100 }), (w1, w2) => {
        const h = harness(
          entrypoint({
            assign: [
              { lane: 'gray', weight: w1, sticky: 'cookie:gl' },
              { lane: 'blue', weight: w2, sticky: 'cookie:gl' },
            ],
          }),
        );
        const a = h.assign();
        expect(h.state.newKeys).toBe(1);
        expect(a.setCookies).toEqual([{ name: 'gl', value: 'key-1' }]);
        const lane =
          expected('key-1', 'gray', w1) === 'gray' ? 'gray' : expected('key-1', 'blue', w2);
        expect(a.lane).toBe(lane);
        expect(h.assign({ cookies: { gl: 'key-1' } }).lane).toBe(lane);
      }),
      { numRuns: 200 },
    );
  });

  it('two cookie names give two cookies', () => {
    const h = harness(
      entrypoint({
        assign: [
          { lane: 'gray', weight: 0, sticky: 'cookie:one' },
          { lane: 'blue', weight: 0, sticky: 'cookie:two' },
        ],
      }),
    );
    expect(h.assign().setCookies).toEqual([
      { name: 'one', value: 'key-1' },
      { name: 'two', value: 'key-2' },
    ]);
    expect(h.assign({ cookies: { one: 'a' } }).setCookies).toEqual([
      { name: 'two', value: 'key-3' },
    ]);
  });

  it('draws no key for a rule that is never reached or whose headers do not match', () => {
    const h = harness(
      entrypoint({
        assign: [
          { lane: 'feature-x', when: { headers: { 'x-dev': { exact: '1' } } } },
          {
            lane: 'blue',
            weight: 50,
            sticky: 'cookie:gl',
            when: { headers: { 'x-eu': { exact: '1' } } },
          },
          { lane: 'gray', weight: 50, sticky: 'cookie:g2' },
        ],
      }),
    );
    expect(h.assign({ headers: { 'x-dev': '1' } })).toEqual({ lane: 'feature-x', reason: 'match' });
    expect(h.state.newKeys).toBe(0);
    const a = h.assign();
    expect(a.setCookies).toEqual([{ name: 'g2', value: 'key-1' }]);
  });

  it('is monotone end to end: raising the weight only moves users into the lane', () => {
    const at = (weight: number) =>
      harness(entrypoint({ assign: [{ lane: 'gray', weight, sticky: 'cookie:gl' }] }));
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        (key, a, b) => {
          const [low, high] = a <= b ? [a, b] : [b, a];
          const before = at(low).assign({ cookies: { gl: key } }).lane;
          const after = at(high).assign({ cookies: { gl: key } }).lane;
          if (before === 'gray') expect(after).toBe('gray');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('cookie names are case-sensitive (cookie:GL reads GL, not gl)', () => {
    const h = harness(entrypoint({ assign: [{ lane: 'gray', weight: 50, sticky: 'cookie:GL' }] }));
    expect(h.assign({ cookies: { GL: 'user-1' } }).setCookies).toBeUndefined();
    expect(h.assign({ cookies: { gl: 'user-1' } }).setCookies).toEqual([
      { name: 'GL', value: 'key-1' },
    ]);
  });
});

describe('assignLane: sticky header', () => {
  it('uses the header value as the key: deterministic, no cookie', () => {
    const h = harness(
      entrypoint({ assign: [{ lane: 'gray', weight: 25, sticky: 'header:x-user-id' }] }),
    );
    let inLane = 0;
    for (let i = 0; i < 400; i++) {
      const key = `u${i}`;
      const a = h.assign({ headers: { 'x-user-id': key } });
      const expected = inWeight(stickyBucket(key, 'gray'), 25);
      expect(a).toEqual(
        expected ? { lane: 'gray', reason: 'sticky' } : { lane: 'stable', reason: 'default' },
      );
      expect(h.assign({ headers: { 'x-user-id': key } })).toEqual(a);
      if (expected) inLane++;
    }
    expect(inLane).toBeGreaterThan(60);
    expect(inLane).toBeLessThan(140);
    expect(h.state.newKeys).toBe(0);
    expect(h.splitterCalls).toEqual([]);
  });

  it('reads the header in lower case whatever the table wrote', () => {
    const h = harness(
      entrypoint({ assign: [{ lane: 'gray', weight: 100, sticky: 'header:X-User-Id' }] }),
    );
    expect(h.assign({ headers: { 'x-user-id': 'u1' } })).toEqual({
      lane: 'gray',
      reason: 'sticky',
    });
    expect(h.splitterCalls).toEqual([]);
  });

  it('without the header, falls back to the per-request split and sets no cookie', () => {
    const h = harness(
      entrypoint({ assign: [{ lane: 'gray', weight: 50, sticky: 'header:x-user-id' }] }),
    );
    const lanes = Array.from({ length: 100 }, () => h.assign());
    expect(lanes.filter((a) => a.lane === 'gray')).toHaveLength(50);
    expect(lanes.every((a) => a.setCookies === undefined)).toBe(true);
    expect(lanes.find((a) => a.lane === 'gray')?.reason).toBe('weight');
    expect(h.state.newKeys).toBe(0);
  });
});

describe('assignLane: reasons', () => {
  it('reports client, match, weight, sticky and default', () => {
    const h = harness(
      entrypoint({
        assign: [
          { lane: 'feature-x', when: { headers: { 'x-dev': { exact: '1' } } } },
          { lane: 'blue', weight: 100, sticky: 'header:x-user' },
          { lane: 'gray', weight: 100, when: { headers: { 'x-beta': { exact: '1' } } } },
        ],
      }),
    );
    expect(h.assign({ tag: 'gray', headers: { 'x-dev': '1' } }).reason).toBe('client');
    expect(h.assign({ headers: { 'x-dev': '1' } }).reason).toBe('match');
    expect(h.assign({ headers: { 'x-user': 'u' } }).reason).toBe('sticky');
    expect(h.assign()).toEqual({ lane: 'blue', reason: 'weight' });
    const noWeight = harness(
      entrypoint({ assign: [{ lane: 'gray', when: { headers: { 'x-beta': { exact: '1' } } } }] }),
    );
    expect(noWeight.assign().reason).toBe('default');
  });

  it('property: the lane is always the client tag, a rule lane, or stable', () => {
    const rules = [
      { lane: 'gray', when: { headers: { 'x-a': { prefix: '1' } } } },
      { lane: 'blue', weight: 30, sticky: 'cookie:gl' },
      { lane: 'feature-x', weight: 50 },
    ];
    const lanesOf = new Set(['gray', 'blue', 'feature-x', 'stable']);
    fc.assert(
      fc.property(
        fc.constantFrom('off', 'known', 'any') as fc.Arbitrary<'off' | 'known' | 'any'>,
        fc.option(fc.constantFrom('gray', 'blue', 'nope', 'stable'), { nil: undefined }),
        fc.option(fc.string({ maxLength: 3 }), { nil: undefined }),
        fc.option(fc.string({ minLength: 1, maxLength: 8 }), { nil: undefined }),
        (clientLanes, tag, xa, cookie) => {
          const h = harness(entrypoint({ clientLanes, assign: rules }));
          const a = h.assign({
            ...(tag === undefined ? {} : { tag }),
            headers: xa === undefined ? {} : { 'x-a': xa },
            cookies: cookie === undefined ? {} : { gl: cookie },
          });
          if (a.reason === 'client') expect(a.lane).toBe(tag);
          else expect(lanesOf.has(a.lane)).toBe(true);
          if (a.reason === 'default') expect(a.lane).toBe('stable');
          if (clientLanes === 'off') expect(a.reason).not.toBe('client');
          if (clientLanes === 'any' && tag !== undefined) expect(a.reason).toBe('client');
        },
      ),
      { numRuns: 500 },
    );
  });
});
