import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  classifyTagValue,
  type HeaderCarrier,
  readLaneTag,
  readLaneTagFrom,
  readLaneTagOnce,
  recordCarrier,
  removeLaneTag,
  type TagOptions,
  writeLaneTag,
} from '../src/index.js';
import { laneName } from './arbitraries.js';

const custom: TagOptions = { laneHeader: 'x-swimlane', baggageKey: 'swimlane' };

describe('classifyTagValue', () => {
  it.each([
    [undefined, undefined],
    [[], undefined],
    ['gray', 'gray'],
    [['gray'], 'gray'],
    [' gray ', 'gray'],
    ['', 'stable'],
    ['stable', 'stable'],
    [['gray', 'gray'], null],
    [['gray', 'blue'], null],
    ['gray,blue', null],
    ['gray, gray', null],
    ['Gray', null],
    ['a'.repeat(64), null],
  ] as const)('%j -> %j', (value, expected) => {
    expect(classifyTagValue(value)).toBe(expected);
  });
});

describe('readLaneTag', () => {
  it('is stable and not flagged when untagged', () => {
    expect(readLaneTag(undefined, undefined)).toEqual({
      lane: 'stable',
      source: 'none',
      invalid: false,
    });
  });

  it('reads the header', () => {
    expect(readLaneTag('gray', undefined)).toEqual({
      lane: 'gray',
      source: 'header',
      invalid: false,
    });
  });

  it('reads the baggage entry', () => {
    expect(readLaneTag(undefined, 'user=1, lane=gray;p=1')).toEqual({
      lane: 'gray',
      source: 'baggage',
      invalid: false,
    });
  });

  it('reads repeated baggage headers', () => {
    expect(readLaneTag(undefined, ['user=1', 'lane=gray'])).toMatchObject({ lane: 'gray' });
  });

  it('lets the header win over baggage', () => {
    expect(readLaneTag('gray', 'lane=blue')).toEqual({
      lane: 'gray',
      source: 'header',
      invalid: false,
    });
    expect(readLaneTag('stable', 'lane=blue')).toEqual({
      lane: 'stable',
      source: 'header',
      invalid: false,
    });
  });

  it.each([
    ['upper case', 'Gray'],
    ['a comma list', 'gray,blue'],
    ['several headers', ['gray', 'blue']],
    ['the same header twice', ['gray', 'gray']],
    ['64 characters', 'a'.repeat(64)],
  ])('drops and flags an invalid header (%s), then uses valid baggage', (_, header) => {
    expect(readLaneTag(header, undefined)).toEqual({
      lane: 'stable',
      source: 'none',
      invalid: true,
    });
    expect(readLaneTag(header, 'lane=blue')).toEqual({
      lane: 'blue',
      source: 'baggage',
      invalid: true,
    });
  });

  it('drops and flags an invalid baggage lane', () => {
    expect(readLaneTag(undefined, 'lane=Gray')).toEqual({
      lane: 'stable',
      source: 'none',
      invalid: true,
    });
    expect(readLaneTag(undefined, 'lane=gray%2Cblue')).toMatchObject({
      lane: 'stable',
      invalid: true,
    });
  });

  it('treats an empty or stable baggage entry as stable, not invalid', () => {
    expect(readLaneTag(undefined, 'lane=')).toEqual({
      lane: 'stable',
      source: 'baggage',
      invalid: false,
    });
    expect(readLaneTag(undefined, 'lane=stable')).toMatchObject({ lane: 'stable', invalid: false });
  });

  it('ignores baggage over the limits', () => {
    const huge = `lane=gray,pad=${'x'.repeat(9000)}`;
    expect(readLaneTag(undefined, huge)).toEqual({
      lane: 'stable',
      source: 'none',
      invalid: false,
    });
  });

  it('uses the configured baggage key', () => {
    expect(readLaneTag(undefined, 'lane=blue,swimlane=gray', custom)).toMatchObject({
      lane: 'gray',
      source: 'baggage',
    });
  });

  it('returns the header lane for every valid lane, whatever the baggage (property)', () => {
    fc.assert(
      fc.property(laneName, fc.option(laneName, { nil: undefined }), (header, baggageLane) => {
        const baggage = baggageLane === undefined ? undefined : `lane=${baggageLane}`;
        expect(readLaneTag(header, baggage)).toEqual({
          lane: header,
          source: 'header',
          invalid: false,
        });
      }),
    );
  });
});

function carrierOf(headers: Record<string, string | string[] | undefined>): HeaderCarrier {
  return recordCarrier(headers);
}

describe('writeLaneTag / removeLaneTag', () => {
  it('writes the header and the baggage entry, keeping other members', () => {
    const headers: Record<string, string | string[] | undefined> = {
      baggage: 'user=alice;p=1, lane=old',
    };
    writeLaneTag(carrierOf(headers), 'gray');
    expect(headers).toEqual({ 'x-lane': 'gray', baggage: 'user=alice;p=1,lane=gray' });
  });

  it('writes a baggage header when there was none', () => {
    const headers: Record<string, string | string[] | undefined> = {};
    writeLaneTag(carrierOf(headers), 'gray');
    expect(headers).toEqual({ 'x-lane': 'gray', baggage: 'lane=gray' });
  });

  it('joins repeated baggage headers into one', () => {
    const headers: Record<string, string | string[] | undefined> = { baggage: ['a=1', 'b=2'] };
    writeLaneTag(carrierOf(headers), 'gray');
    expect(headers.baggage).toBe('a=1,b=2,lane=gray');
  });

  it.each(['stable', ''])('writes the stable lane (%j) as the absence of a tag', (lane) => {
    const headers: Record<string, string | string[] | undefined> = {
      'x-lane': 'gray',
      baggage: 'user=alice,lane=gray',
    };
    writeLaneTag(carrierOf(headers), lane);
    expect(headers).toEqual({ baggage: 'user=alice' });
  });

  it('removes the baggage header when the lane was its only member', () => {
    const headers: Record<string, string | string[] | undefined> = {
      'x-lane': 'gray',
      baggage: 'lane=gray',
      other: 'kept',
    };
    removeLaneTag(carrierOf(headers));
    expect(headers).toEqual({ other: 'kept' });
  });

  it('leaves untouched baggage alone', () => {
    const original = ['a=1', 'b=2'];
    const headers: Record<string, string | string[] | undefined> = { baggage: original };
    removeLaneTag(carrierOf(headers));
    expect(headers.baggage).toBe(original);
  });

  it('uses the configured header and key', () => {
    const headers: Record<string, string | string[] | undefined> = { baggage: 'lane=keep' };
    writeLaneTag(carrierOf(headers), 'gray', custom);
    expect(headers).toEqual({ 'x-swimlane': 'gray', baggage: 'lane=keep,swimlane=gray' });
    removeLaneTag(carrierOf(headers), custom);
    expect(headers).toEqual({ baggage: 'lane=keep' });
  });

  it('reads back what it wrote (property)', () => {
    fc.assert(
      fc.property(fc.oneof(laneName, fc.constant('stable')), (lane) => {
        const headers: Record<string, string | string[] | undefined> = {
          'x-lane': 'old',
          baggage: 'lane=old,a=1',
        };
        const carrier = carrierOf(headers);
        writeLaneTag(carrier, lane);
        expect(readLaneTagFrom(carrier).lane).toBe(lane);
        expect(readLaneTag(undefined, headers.baggage).lane).toBe(lane);
      }),
    );
  });
});

describe('readLaneTagOnce', () => {
  const values = fc.option(
    fc.oneof(
      fc.constantFrom('gray', ' gray ', 'stable', '', 'a,b', 'Bad_Lane', 'x'.repeat(70)),
      fc.array(fc.constantFrom('gray', 'blue'), { maxLength: 2 }),
    ),
    { nil: undefined },
  );
  const baggages = fc.option(fc.constantFrom('lane=blue', 'k=v', 'lane=%20', ''), {
    nil: undefined,
  });

  it('reads what readLaneTag reads, asked once or again, and hands back frozen tags', () => {
    fc.assert(
      fc.property(values, baggages, (header, baggage) => {
        const expected = readLaneTag(header, baggage);
        for (let i = 0; i < 2; i++) {
          const tag = readLaneTagOnce(header, baggage);
          expect(tag).toEqual(expected);
          if (baggage === undefined && typeof header !== 'object') {
            expect(Object.isFrozen(tag)).toBe(true);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('answers rightly past the number of header values it keeps', () => {
    for (let i = 0; i < 600; i++) {
      expect(readLaneTagOnce(`lane-${i}`, undefined).lane).toBe(`lane-${i}`);
    }
    expect(readLaneTagOnce('lane-3', undefined)).toEqual(readLaneTag('lane-3', undefined));
  });
});
