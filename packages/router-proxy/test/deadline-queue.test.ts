import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { DeadlineQueue, Deadlines } from '../src/deadline-queue.js';

describe('DeadlineQueue', () => {
  it('runs each deadline no sooner than its length after it was set, in order', async () => {
    const queue = new DeadlineQueue(40);
    const fired: Array<[string, number]> = [];
    const set = (name: string) => {
      const at = performance.now();
      queue.add(() => fired.push([name, performance.now() - at]));
    };
    set('a');
    await sleep(15);
    set('b');
    set('c');
    await sleep(120);
    expect(fired.map(([name]) => name)).toEqual(['a', 'b', 'c']);
    for (const [, waited] of fired) expect(waited).toBeGreaterThanOrEqual(39);
    expect(queue.size).toBe(0);
  });

  it('never runs a cleared deadline, first, middle or last, and re-arms for the ones left', async () => {
    const queue = new DeadlineQueue(30);
    const fired: string[] = [];
    const a = queue.add(() => fired.push('a'));
    queue.add(() => fired.push('b'));
    const c = queue.add(() => fired.push('c'));
    queue.add(() => fired.push('d'));
    a.clear();
    c.clear();
    c.clear();
    expect(queue.size).toBe(2);
    await sleep(100);
    expect(fired).toEqual(['b', 'd']);
    // Empty, then used again: the queue arms a timer afresh.
    queue.add(() => fired.push('e'));
    await sleep(80);
    expect(fired).toEqual(['b', 'd', 'e']);
  });

  it('keeps the others when one expiry throws', async () => {
    const queue = new DeadlineQueue(20);
    const fired: string[] = [];
    const errors: unknown[] = [];
    const onError = (error: unknown) => errors.push(error);
    process.prependListener('uncaughtException', onError);
    try {
      queue.add(() => {
        throw new Error('boom');
      });
      await sleep(5);
      queue.add(() => fired.push('after'));
      await sleep(80);
    } finally {
      process.off('uncaughtException', onError);
    }
    expect(errors).toHaveLength(1);
    expect(fired).toEqual(['after']);
  });
});

describe('Deadlines', () => {
  it('keeps one queue per length, each expiring on its own', async () => {
    const deadlines = new Deadlines();
    const fired: string[] = [];
    deadlines.after(60, () => fired.push('long'));
    deadlines.after(20, () => fired.push('short'));
    await sleep(40);
    expect(fired).toEqual(['short']);
    await sleep(60);
    expect(fired).toEqual(['short', 'long']);
  });
});
