import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BAGGAGE_MAX_BYTES,
  BAGGAGE_MAX_MEMBERS,
  type BaggageMember,
  getBaggageValue,
  joinHeaderValues,
  parseBaggage,
  serializeBaggage,
  serializeBaggageMember,
  setBaggageValue,
} from '../src/index.js';
import { octets, properties, token } from './arbitraries.js';

function members(header: string): BaggageMember[] {
  const parsed = parseBaggage(header);
  if (!parsed.ok) throw new Error(`dropped: ${parsed.reason}`);
  return parsed.members;
}

/** A header of exactly `bytes` bytes whose first member is lane=gray. */
function headerOfBytes(bytes: number): string {
  const head = 'lane=gray,pad=';
  return head + 'x'.repeat(bytes - head.length);
}

describe('parseBaggage', () => {
  it('reads keys, values and properties', () => {
    expect(members('lane=gray,userId=alice;ttl=30;secret')).toEqual([
      { key: 'lane', value: 'gray' },
      { key: 'userId', value: 'alice', properties: 'ttl=30;secret' },
    ]);
  });

  it('percent-decodes values', () => {
    expect(members('k=a%20b%2Cc%3Bd%3De%25,u=%E2%9C%93')).toEqual([
      { key: 'k', value: 'a b,c;d=e%' },
      { key: 'u', value: '✓' },
    ]);
  });

  it('keeps `+` as a plus sign (not form encoding)', () => {
    expect(getBaggageValue('k=a+b', 'k')).toBe('a+b');
  });

  it('allows optional whitespace around members, `=` and `;`', () => {
    expect(members(' lane = gray ,\tuser\t=\tbob\t; p = 1 ,  ')).toEqual([
      { key: 'lane', value: 'gray' },
      { key: 'user', value: 'bob', properties: 'p = 1' },
    ]);
  });

  it('reads an empty value', () => {
    expect(members('lane=')).toEqual([{ key: 'lane', value: '' }]);
  });

  it('skips malformed members and keeps the rest', () => {
    expect(members('noequals,=novalue,bad key=x,k(=x,bad=%E2%28,,ok=1,ünïcode=x,last=2')).toEqual([
      { key: 'ok', value: '1' },
      { key: 'last', value: '2' },
    ]);
  });

  it(`drops a header over ${BAGGAGE_MAX_BYTES} bytes whole`, () => {
    expect(parseBaggage(headerOfBytes(BAGGAGE_MAX_BYTES)).ok).toBe(true);
    expect(parseBaggage(headerOfBytes(BAGGAGE_MAX_BYTES + 1))).toEqual({
      ok: false,
      reason: 'too-large',
    });
    expect(getBaggageValue(headerOfBytes(BAGGAGE_MAX_BYTES + 1), 'lane')).toBeUndefined();
  });

  it('counts bytes, not characters', () => {
    const header = `lane=gray,pad=${'é'.repeat(BAGGAGE_MAX_BYTES / 2)}`;
    expect(header.length).toBeLessThan(BAGGAGE_MAX_BYTES);
    expect(parseBaggage(header)).toEqual({ ok: false, reason: 'too-large' });
  });

  it(`drops a header of more than ${BAGGAGE_MAX_MEMBERS} members whole`, () => {
    const list = (n: number) =>
      ['lane=gray', ...Array.from({ length: n - 1 }, (_, i) => `k${i}=v`)].join(',');
    expect(members(list(BAGGAGE_MAX_MEMBERS))).toHaveLength(BAGGAGE_MAX_MEMBERS);
    expect(parseBaggage(list(BAGGAGE_MAX_MEMBERS + 1))).toEqual({
      ok: false,
      reason: 'too-many-members',
    });
    expect(getBaggageValue(list(BAGGAGE_MAX_MEMBERS + 1), 'lane')).toBeUndefined();
  });

  it('round-trips token keys and arbitrary unicode values (property)', () => {
    const member = fc.record(
      {
        key: token,
        value: fc.string({ unit: 'binary', maxLength: 12 }),
        properties,
      },
      { requiredKeys: ['key', 'value'] },
    );
    fc.assert(
      fc.property(fc.array(member, { maxLength: 10 }), (list) => {
        expect(members(serializeBaggage(list))).toEqual(list);
      }),
      { numRuns: 500 },
    );
  });
});

describe('serializeBaggage', () => {
  it('percent-encodes what is not a baggage octet', () => {
    expect(serializeBaggageMember({ key: 'k', value: 'a b,c;d"e\\f%' })).toBe(
      'k=a%20b%2Cc%3Bd%22e%5Cf%25',
    );
  });

  it('writes properties after `;`', () => {
    expect(
      serializeBaggage([
        { key: 'a', value: '1', properties: 'p=2' },
        { key: 'b', value: '' },
      ]),
    ).toBe('a=1;p=2,b=');
  });
});

describe('getBaggageValue', () => {
  it('returns undefined when the header or the key is absent', () => {
    expect(getBaggageValue(undefined, 'lane')).toBeUndefined();
    expect(getBaggageValue('other=1', 'lane')).toBeUndefined();
  });

  it('takes the last of repeated keys', () => {
    expect(getBaggageValue('lane=a,lane=b', 'lane')).toBe('b');
  });
});

describe('joinHeaderValues', () => {
  it('joins repeated headers with a comma', () => {
    expect(joinHeaderValues(['a=1', 'b=2'])).toBe('a=1,b=2');
    expect(joinHeaderValues('a=1')).toBe('a=1');
    expect(joinHeaderValues([])).toBeUndefined();
    expect(joinHeaderValues(undefined)).toBeUndefined();
  });
});

describe('setBaggageValue', () => {
  it('replaces only the key, wherever and however often it appears', () => {
    expect(setBaggageValue('a=1, lane = old ;p, b=2;q=3,lane=x', 'lane', 'gray')).toBe(
      'a=1,b=2;q=3,lane=gray',
    );
  });

  it('removes the key, and the header when nothing is left', () => {
    expect(setBaggageValue('a=1,lane=gray', 'lane', undefined)).toBe('a=1');
    expect(setBaggageValue('lane=gray', 'lane', undefined)).toBeUndefined();
    expect(setBaggageValue(undefined, 'lane', undefined)).toBeUndefined();
  });

  it('adds the key to an absent header', () => {
    expect(setBaggageValue(undefined, 'lane', 'gray')).toBe('lane=gray');
  });

  it('does not touch keys that merely start with the key', () => {
    expect(setBaggageValue('lanes=1,lane2=2', 'lane', 'gray')).toBe('lanes=1,lane2=2,lane=gray');
  });

  it('keeps malformed members as written', () => {
    expect(setBaggageValue('garbage,k=%ZZ', 'lane', 'gray')).toBe('garbage,k=%ZZ,lane=gray');
  });

  it('drops a header over the limits and keeps only the entry', () => {
    expect(setBaggageValue(headerOfBytes(BAGGAGE_MAX_BYTES + 1), 'lane', 'blue')).toBe('lane=blue');
    const many = Array.from({ length: BAGGAGE_MAX_MEMBERS + 1 }, (_, i) => `k${i}=v`).join(',');
    expect(setBaggageValue(many, 'lane', 'blue')).toBe('lane=blue');
    expect(setBaggageValue(many, 'lane', undefined)).toBeUndefined();
  });

  it('drops the oldest members rather than push a header over the limits', () => {
    const full = Array.from({ length: BAGGAGE_MAX_MEMBERS }, (_, i) => `k${i}=v`).join(',');
    const byCount = setBaggageValue(full, 'lane', 'gray')!;
    expect(members(byCount)).toHaveLength(BAGGAGE_MAX_MEMBERS);
    expect(byCount.startsWith('k1=v,')).toBe(true);
    expect(getBaggageValue(byCount, 'lane')).toBe('gray');

    const nearlyFull = headerOfBytes(BAGGAGE_MAX_BYTES).replace('lane=gray,', 'a=1,');
    const bySize = setBaggageValue(nearlyFull, 'lane', 'gray')!;
    expect(Buffer.byteLength(bySize)).toBeLessThanOrEqual(BAGGAGE_MAX_BYTES);
    expect(getBaggageValue(bySize, 'lane')).toBe('gray');
  });

  /** A member as someone else wrote it: any key but `key`, inner whitespace, properties. */
  const rawMember = (key: string) =>
    fc
      .tuple(
        token,
        fc.constantFrom('=', ' = ', '\t=', '= '),
        octets,
        fc.option(properties, { nil: undefined }),
      )
      .filter(([k]) => k !== key)
      // Whitespace at a member's edges is the list's, not the member's: the codec may drop it.
      .map(([k, eq, v, p]) => (p === undefined ? `${k}${eq}${v}` : `${k}${eq}${v} ; ${p}`).trim());

  const setCase = token.chain((key) =>
    fc.record({
      key: fc.constant(key),
      others: fc.array(rawMember(key), { maxLength: 12 }),
      old: fc.array(fc.tuple(fc.nat(12), fc.string({ unit: 'binary', maxLength: 8 })), {
        maxLength: 3,
      }),
      separator: fc.constantFrom(',', ', ', ' ,\t'),
      value: fc.option(fc.string({ unit: 'binary', maxLength: 12 }), { nil: undefined }),
    }),
  );

  it('keeps every other member byte for byte, and replaces or removes only the key (property)', () => {
    fc.assert(
      fc.property(setCase, ({ key, others, old, separator, value }) => {
        const written = [...others];
        for (const [at, v] of old) {
          written.splice(
            Math.min(at, written.length),
            0,
            serializeBaggageMember({ key, value: v }),
          );
        }
        const header = written.length === 0 ? undefined : written.join(separator);
        const result = setBaggageValue(header, key, value);
        const expected =
          value === undefined ? others : [...others, serializeBaggageMember({ key, value })];
        if (expected.length === 0) expect(result).toBeUndefined();
        else expect(result).toBe(expected.join(','));
        expect(getBaggageValue(result, key)).toBe(value);
      }),
      { numRuns: 500 },
    );
  });
});
