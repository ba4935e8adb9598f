import { BAGGAGE_MAX_BYTES, BAGGAGE_MAX_MEMBERS, parseBaggage } from '@graylane/lane-core';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { configure, optionsFromEnv, resetConfig } from '../src/config.js';
import { withLane } from '../src/context.js';
import { sdkRegistry } from '../src/metrics.js';
import { createPropagator, extract, fields, inject } from '../src/propagator.js';

const lane = fc
  .stringMatching(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/)
  .filter((l) => l !== 'stable');
const otherKey = fc.stringMatching(/^[a-z][a-z0-9_]{0,15}$/).filter((k) => k !== 'lane');
const otherMember = fc
  .tuple(otherKey, fc.string({ maxLength: 20 }))
  .map(([k, v]) => `${k}=${encodeURIComponent(v)}`);

async function invalidCount(source: string): Promise<number> {
  const metric = await sdkRegistry.getSingleMetric('graylane_sdk_invalid_lane_total')?.get();
  return metric?.values.find((v) => v.labels.source === source)?.value ?? 0;
}

afterEach(() => resetConfig());

describe('propagator', () => {
  it('injects the current lane into header and baggage of a plain object, Headers and Map', () => {
    // The checks run inside callbacks: a callback that never ran must fail the test.
    expect.assertions(4);
    withLane('gray', () => {
      const record: Record<string, string> = {};
      inject(record);
      expect(record).toEqual({ 'x-lane': 'gray', baggage: 'lane=gray' });
      const headers = new Headers({ baggage: 'user=1' });
      inject(headers);
      expect(headers.get('x-lane')).toBe('gray');
      expect(headers.get('baggage')).toBe('user=1,lane=gray');
      const map = new Map<string, string>();
      inject(map);
      expect(map.get('x-lane')).toBe('gray');
    });
  });

  it('writes nothing in the stable lane', () => {
    const record: Record<string, string> = {};
    expect(inject(record)).toBe('stable');
    expect(record).toEqual({});
  });

  it('works over any carrier with a getter and setter (message headers as a list)', () => {
    type Msg = { headers: Array<{ key: string; value: string }> };
    const setter = {
      set: (m: Msg, key: string, value: string) => {
        m.headers = m.headers.filter((h) => h.key !== key).concat({ key, value });
      },
      get: (m: Msg, key: string) => m.headers.find((h) => h.key === key)?.value,
    };
    const msg: Msg = { headers: [{ key: 'baggage', value: 'tenant=acme' }] };
    withLane('feature-x', () => inject(msg, setter));
    expect(msg.headers).toContainEqual({ key: 'x-lane', value: 'feature-x' });
    expect(msg.headers).toContainEqual({ key: 'baggage', value: 'tenant=acme,lane=feature-x' });
    expect(extract(msg, setter)).toEqual({ lane: 'feature-x', source: 'header', invalid: false });
  });

  it('lets an explicit tag in the carrier win over the context, and makes baggage agree', () => {
    const record: Record<string, string> = { 'X-Lane': 'blue', baggage: 'lane=green,a=1' };
    expect(withLane('gray', () => inject(record))).toBe('blue');
    expect(record).toEqual({ 'x-lane': 'blue', baggage: 'a=1,lane=blue' });
  });

  it('extracts with the proxy validation: header wins, invalid dropped and counted', async () => {
    expect(extract({ 'x-lane': 'gray', baggage: 'lane=blue' }).lane).toBe('gray');
    expect(extract({ baggage: 'a=1,lane=blue' })).toEqual({
      lane: 'blue',
      source: 'baggage',
      invalid: false,
    });
    const before = await invalidCount('extract');
    expect(extract({ 'x-lane': 'Not_A_Lane' })).toEqual({
      lane: 'stable',
      source: 'none',
      invalid: true,
    });
    expect(extract({ 'x-lane': 'a,b', baggage: 'lane=c' }).lane).toBe('c');
    expect(await invalidCount('extract')).toBe(before + 2);
  });

  it('follows a configured header name and baggage key', () => {
    configure({ laneHeader: 'X-Swimlane', baggageKey: 'graylane.lane' });
    expect(fields()).toEqual(['x-swimlane', 'baggage']);
    const record: Record<string, string> = {};
    withLane('gray', () => inject(record));
    expect(record).toEqual({ 'x-swimlane': 'gray', baggage: 'graylane.lane=gray' });
    expect(extract({ baggage: 'graylane.lane=blue' }).lane).toBe('blue');
    const fixed = createPropagator({ laneHeader: 'x-other' });
    expect(fixed.fields()).toEqual(['x-other', 'baggage']);
  });

  it('reads its options from GRAYLANE_* variables', () => {
    expect(
      optionsFromEnv({
        GRAYLANE_LANE_HEADER: 'x-swimlane',
        GRAYLANE_BAGGAGE_KEY: 'sl',
        GRAYLANE_STRICT: '1',
        GRAYLANE_LEAK_DETECTION: 'off',
      }),
    ).toEqual({ laneHeader: 'x-swimlane', baggageKey: 'sl', strict: true, leakDetection: false });
    expect(optionsFromEnv({ GRAYLANE_STRICT: '0' })).toEqual({ strict: false });
    expect(optionsFromEnv({})).toEqual({});
  });

  it('refuses a header name or key that cannot go on the wire', () => {
    expect(() => configure({ laneHeader: 'x lane' })).toThrow(
      expect.objectContaining({ code: 'GRAYLANE_ERR_CONFIG' }),
    );
    expect(() => configure({ baggageKey: 'a=b' })).toThrow(
      expect.objectContaining({ code: 'GRAYLANE_ERR_CONFIG' }),
    );
  });
});

describe('baggage merge (properties)', () => {
  it('round-trips the lane and keeps every other member byte for byte', () => {
    fc.assert(
      fc.property(lane, fc.array(otherMember, { maxLength: 20 }), (l, others) => {
        const record: Record<string, string> = others.length ? { baggage: others.join(',') } : {};
        withLane(l, () => inject(record));
        const members = (record.baggage ?? '').split(',');
        expect(members.slice(0, -1)).toEqual(others);
        expect(members.at(-1)).toBe(`lane=${l}`);
        // Baggage alone (a hop that drops x-lane) still carries it.
        expect(extract({ baggage: record.baggage }).lane).toBe(l);
        expect(extract(record).lane).toBe(l);
      }),
    );
  });

  it('keeps one lane entry; an explicit one in the carrier wins and gains the header', () => {
    fc.assert(
      fc.property(lane, lane, fc.array(otherMember, { maxLength: 5 }), (old, l, others) => {
        const record = { baggage: [...others, `lane=${old}`].join(',') };
        withLane(l, () => inject(record));
        const keys = record.baggage.split(',').map((m) => m.split('=')[0]);
        expect(keys.filter((k) => k === 'lane')).toHaveLength(1);
        expect(extract(record).lane).toBe(old);
        expect((record as Record<string, string>)['x-lane']).toBe(old);
      }),
    );
  });

  it('stays within the W3C limits so the next hop never drops the lane', () => {
    fc.assert(
      fc.property(
        lane,
        fc.integer({ min: 150, max: 200 }),
        fc.integer({ min: 1, max: 60 }),
        (l, n, size) => {
          const others = Array.from({ length: n }, (_, i) => `k${i}=${'v'.repeat(size)}`);
          const record = { baggage: others.join(',') };
          withLane(l, () => inject(record));
          const parsed = parseBaggage(record.baggage);
          expect(parsed.ok).toBe(true);
          expect(Buffer.byteLength(record.baggage)).toBeLessThanOrEqual(BAGGAGE_MAX_BYTES);
          expect(parsed.ok && parsed.members.length).toBeLessThanOrEqual(BAGGAGE_MAX_MEMBERS);
          expect(extract({ baggage: record.baggage }).lane).toBe(l);
        },
      ),
      { numRuns: 50 },
    );
  });

  it('reads an oversized incoming baggage header as untagged, and replaces it on inject', () => {
    const huge = `lane=blue,x=${'a'.repeat(BAGGAGE_MAX_BYTES)}`;
    expect(extract({ baggage: huge }).lane).toBe('stable');
    const record = { baggage: huge };
    withLane('gray', () => inject(record));
    expect(record.baggage).toBe('lane=gray');
  });
});
