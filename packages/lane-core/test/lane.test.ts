import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ErrorCodes,
  InvalidLaneError,
  isStable,
  isValidLaneName,
  LANE_PATTERN,
  parseLane,
  STABLE,
} from '../src/index.js';
import { codeOf, laneName } from './arbitraries.js';

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

  it('agrees with LANE_PATTERN on arbitrary strings (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 70 }), (value) => {
        const trimmed = value.trim();
        const expected =
          trimmed === '' || trimmed === STABLE
            ? STABLE
            : LANE_PATTERN.test(trimmed)
              ? trimmed
              : undefined;
        if (expected === undefined)
          expect(codeOf(() => parseLane(value))).toBe(ErrorCodes.invalidLane);
        else expect(parseLane(value)).toBe(expected);
      }),
    );
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
