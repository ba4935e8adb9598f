import { describe, expect, it } from 'vitest';
import { AddressRanges } from '../src/http/addresses.js';

describe('AddressRanges', () => {
  it('answers the same for a peer asked again, as remembered answers are reused', () => {
    const ranges = new AddressRanges(['10.0.0.0/8', 'fd00::/8']);
    for (let pass = 0; pass < 3; pass++) {
      expect(ranges.has('10.1.2.3')).toBe(true);
      expect(ranges.has('::ffff:10.1.2.3')).toBe(true);
      expect(ranges.has('[fd00::1]')).toBe(true);
      expect(ranges.has('11.0.0.1')).toBe(false);
      expect(ranges.has('not an address')).toBe(false);
      expect(ranges.has(undefined)).toBe(false);
    }
  });

  it('stays right past the number of peers it remembers', () => {
    const ranges = new AddressRanges(['10.0.0.0/16']);
    for (let i = 0; i < 10_000; i++) {
      const inside = `10.0.${(i >> 8) & 255}.${i & 255}`;
      const outside = `10.1.${(i >> 8) & 255}.${i & 255}`;
      expect(ranges.has(inside)).toBe(true);
      expect(ranges.has(outside)).toBe(false);
    }
  });

  it('has nothing when no range is given', () => {
    expect(new AddressRanges([]).has('127.0.0.1')).toBe(false);
  });
});
