import { EventEmitter, once } from 'node:events';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { bindEmitter, bindLane, currentContext, getLane, withLane } from '../src/context.js';

describe('lane context', () => {
  it('is stable, with no context, outside any lane', () => {
    expect(getLane()).toBe('stable');
    expect(currentContext()).toBeUndefined();
  });

  it('survives await, timers, setImmediate and nextTick', async () => {
    const seen = await withLane('gray', async () => {
      const lanes: string[] = [];
      await sleep(1);
      lanes.push(getLane());
      await new Promise<void>((resolve) =>
        setTimeout(() => {
          lanes.push(getLane());
          resolve();
        }, 1),
      );
      await new Promise<void>((resolve) =>
        setImmediate(() => {
          lanes.push(getLane());
          resolve();
        }),
      );
      await new Promise<void>((resolve) =>
        process.nextTick(() => {
          lanes.push(getLane());
          resolve();
        }),
      );
      return lanes;
    });
    expect(seen).toEqual(['gray', 'gray', 'gray', 'gray']);
    expect(getLane()).toBe('stable');
  });

  it('keeps concurrent lanes apart', async () => {
    const run = (lane: string, delay: number) =>
      withLane(lane, async () => {
        await sleep(delay);
        return getLane();
      });
    expect(await Promise.all([run('a', 5), run('b', 1), run('c', 3)])).toEqual(['a', 'b', 'c']);
  });

  it('nests, and withLane("stable") leaves the lane', () => {
    // The checks run inside callbacks: a callback that never ran must fail the test.
    expect.assertions(5);
    withLane('gray', () => {
      expect(getLane()).toBe('gray');
      withLane('stable', () => {
        expect(getLane()).toBe('stable');
        expect(currentContext()?.source).toBe('explicit');
      });
      withLane('', () => expect(getLane()).toBe('stable'));
      expect(getLane()).toBe('gray');
    });
  });

  it('throws GRAYLANE_ERR_INVALID_LANE for an invalid lane', () => {
    for (const bad of ['Gray', 'a,b', '-x', 'x'.repeat(64)]) {
      expect(() => withLane(bad, () => 1)).toThrow(
        expect.objectContaining({ code: 'GRAYLANE_ERR_INVALID_LANE' }),
      );
    }
  });

  it('binds event emitters to the context they were bound in', async () => {
    const emitter = new EventEmitter();
    const lanes: string[] = [];
    emitter.on('ping', () => lanes.push(getLane()));
    withLane('gray', () => bindEmitter(emitter));
    // Emitted from outside any context, as a socket or a shared bus would.
    emitter.emit('ping');
    const unbound = new EventEmitter();
    unbound.on('ping', () => lanes.push(getLane()));
    withLane('gray', () => undefined);
    unbound.emit('ping');
    expect(lanes).toEqual(['gray', 'stable']);
  });

  it('binds callbacks with bindLane', () => {
    const bound = withLane('blue', () => bindLane((x: number) => `${getLane()}:${x}`));
    expect(bound(1)).toBe('blue:1');
  });

  it('flows through streams created and piped in the lane', async () => {
    const lanes = await withLane('gray', async () => {
      const seen: string[] = [];
      const upper = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          seen.push(getLane());
          cb(null, chunk.toString().toUpperCase());
        },
      });
      const sink = new PassThrough();
      sink.resume();
      await pipeline(Readable.from(['a', 'b', 'c']), upper, sink);
      return seen;
    });
    expect(lanes).toEqual(['gray', 'gray', 'gray']);
  });

  it('sees the lane in data events of a stream fed from outside, once bound', async () => {
    const stream = new PassThrough();
    const result = withLane('gray', async () => {
      bindEmitter(stream);
      const lanes: string[] = [];
      stream.on('data', () => lanes.push(getLane()));
      await once(stream, 'end');
      return lanes;
    });
    // Written later from the test's own (laneless) context, as a socket would.
    await sleep(1);
    stream.write('x');
    stream.end();
    expect(await result).toEqual(['gray']);
  });
});
