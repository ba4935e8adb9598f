import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ErrorCodes,
  InvalidLaneError,
  isStable,
  isValidLaneName,
  parseLane,
  STABLE,
} from '../src/index.js';
import { codeOf, laneName, nearMissLaneName } from './arbitraries.js';

/**
 * What a lane name is, written apart from the validator's regular expression so that loosening
 * one is caught by the other: a DNS label, 1 to 63 characters of a-z, 0-9 and `-`, not starting or
 * ending with `-`.
 */
function isDnsLabel(value: string): boolean {
  if (value.length < 1 || value.length > 63) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const alphanumeric = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39);
    const innerHyphen = c === 0x2d && i > 0 && i < value.length - 1;
    if (!alphanumeric && !innerHyphen) return false;
  }
  return true;
}

/** The model's answer for a tag value: the lane it means, or undefined for an invalid one. */
function modelLane(value: string): string | undefined {
  const trimmed = value.trim();
  if (trimmed === '' || trimmed === STABLE) return STABLE;
  return isDnsLabel(trimmed) ? trimmed : undefined;
}

describe('parseLane', () => {
  it.each([
    ['gray', 'gray'],
    ['feature-x', 'feature-x'],
    ['a', 'a'],
    ['0', '0'],
    ['v2-canary-1', 'v2-canary-1'],
    ['  gray  ', 'gray'],
    ['', STABLE],
    ['   ', STABLE],
    ['stable', STABLE],
  ])('%j is lane %j', (value, lane) => {
    expect(parseLane(value)).toBe(lane);
  });

  it.each([
    'Gray',
    'GRAY',
    'Stable',
    'gray,blue',
    'gray, blue',
    '-gray',
    'gray-',
    'gr_ay',
    'gr.ay',
    'gr ay',
    'grày',
    'a'.repeat(64),
  ])('refuses %j with GRAYLANE_ERR_INVALID_LANE', (value) => {
    expect(() => parseLane(value)).toThrow(InvalidLaneError);
    expect(codeOf(() => parseLane(value))).toBe(ErrorCodes.invalidLane);
  });

  it('keeps the refused value on the error', () => {
    try {
      parseLane('Gray');
      expect.unreachable();
    } catch (error) {
      expect((error as InvalidLaneError).value).toBe('Gray');
    }
  });

  it('accepts 63 characters and refuses 64', () => {
    expect(parseLane('a'.repeat(63))).toBe('a'.repeat(63));
    expect(isValidLaneName('a'.repeat(63))).toBe(true);
    expect(isValidLaneName('a'.repeat(64))).toBe(false);
  });

  it('returns every valid DNS label unchanged (property)', () => {
    fc.assert(
      fc.property(laneName, (lane) => {
        expect(isValidLaneName(lane)).toBe(true);
        expect(parseLane(lane)).toBe(lane);
      }),
    );
  });

  it('refuses any label with an upper-case letter (property)', () => {
    fc.assert(
      fc.property(laneName, fc.nat(), (lane, at) => {
        const i = at % lane.length;
        const upper = lane.slice(0, i) + lane.charAt(i).toUpperCase() + lane.slice(i + 1);
        fc.pre(upper !== lane);
        expect(codeOf(() => parseLane(upper))).toBe(ErrorCodes.invalidLane);
      }),
    );
  });

  it('refuses every comma list (property)', () => {
    fc.assert(
      fc.property(fc.array(laneName, { minLength: 2, maxLength: 4 }), (lanes) => {
        expect(codeOf(() => parseLane(lanes.join(',')))).toBe(ErrorCodes.invalidLane);
      }),
    );
  });

  it('agrees with an independent model on valid names, near misses and arbitrary strings (property)', () => {
    const candidates = fc.oneof(
      laneName,
      nearMissLaneName,
      fc.string({ maxLength: 70 }),
      fc.string({ unit: fc.constantFrom(...'ab0-_.A '.split('')), maxLength: 70 }),
    );
    fc.assert(
      fc.property(candidates, (value) => {
        const expected = modelLane(value);
        if (expected === undefined) {
          expect(codeOf(() => parseLane(value))).toBe(ErrorCodes.invalidLane);
        } else expect(parseLane(value)).toBe(expected);
        expect(isValidLaneName(value)).toBe(isDnsLabel(value));
      }),
      { numRuns: 500 },
    );
  });

  it('refuses every near miss of a valid name (property)', () => {
    fc.assert(
      fc.property(nearMissLaneName, (value) => {
        expect(isDnsLabel(value)).toBe(false);
        expect(isValidLaneName(value)).toBe(false);
        expect(codeOf(() => parseLane(value))).toBe(ErrorCodes.invalidLane);
      }),
      { numRuns: 500 },
    );
  });

  it('generates both length edges and every kind of near miss (the generators reach what they claim)', () => {
    const names = fc.sample(laneName, { numRuns: 2000, seed: 20 });
    expect(names.some((n) => n.length === 63)).toBe(true);
    expect(names.some((n) => n.length === 1)).toBe(true);
    const misses = fc.sample(nearMissLaneName, { numRuns: 2000, seed: 20 });
    expect(misses.some((n) => n.includes('_'))).toBe(true);
    expect(misses.some((n) => n.length === 64)).toBe(true);
    expect(misses.some((n) => n.startsWith('-') || n.endsWith('-'))).toBe(true);
  });
});

describe('isStable', () => {
  it('treats undefined, empty and stable as the stable lane', () => {
    expect(isStable(undefined)).toBe(true);
    expect(isStable('')).toBe(true);
    expect(isStable('stable')).toBe(true);
    expect(isStable('gray')).toBe(false);
  });
});
