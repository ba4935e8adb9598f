import { describe, expect, it } from 'vitest';
import { BoundedMemo } from '../src/bounded-memo.js';

describe('BoundedMemo', () => {
  it('keeps answers, false and null among them, and starts afresh when full', () => {
    const memo = new BoundedMemo<string, boolean | null>(3);
    expect(memo.set('a', false)).toBe(false);
    memo.set('b', null);
    memo.set('c', true);
    expect([memo.get('a'), memo.get('b'), memo.get('c'), memo.get('d')]).toEqual([
      false,
      null,
      true,
      undefined,
    ]);
    memo.set('d', true);
    expect([memo.get('a'), memo.get('d')]).toEqual([undefined, true]);
  });
});
