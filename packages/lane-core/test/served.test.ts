import { describe, expect, it } from 'vitest';
import { formatHop, LANE_SERVED_HEADER, parseServed, prependServed } from '../src/served.js';

describe('x-lane-served', () => {
  it('formats a hop, with the fallback reason when the lane fell back', () => {
    expect(LANE_SERVED_HEADER).toBe('x-lane-served');
    expect(formatHop('web', 'gray')).toBe('web=gray');
    expect(formatHop('web', 'stable', 'absent')).toBe('web=stable;fallback=absent');
  });

  it('prepends this hop to what the upstream reported, in call order', () => {
    expect(prependServed('a=gray', undefined)).toBe('a=gray');
    expect(prependServed('a=gray', 'b=stable')).toBe('a=gray, b=stable');
    expect(prependServed('a=gray', ['b=stable', 'c=gray'])).toBe('a=gray, b=stable, c=gray');
  });

  it('parses hops from one line or several, dropping empty and unprintable ones', () => {
    expect(parseServed(undefined)).toEqual([]);
    expect(parseServed(' a=gray , ,b=stable;fallback=ejected')).toEqual([
      'a=gray',
      'b=stable;fallback=ejected',
    ]);
    expect(parseServed(['a=gray', 'b=\u0001bad, c=stable'])).toEqual(['a=gray', 'c=stable']);
    expect(parseServed(prependServed(formatHop('a', 'gray'), 'b=stable'))).toEqual([
      'a=gray',
      'b=stable',
    ]);
  });
});
