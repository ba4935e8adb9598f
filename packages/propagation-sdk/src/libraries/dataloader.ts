import { STABLE } from '@graylane/lane-core';
import { getLane, withLane } from '../context.js';
import { warnOnce } from '../log.js';
import { countMixedBatch } from '../metrics.js';

/**
 * A DataLoader made at start-up and shared by requests gathers the keys `load()`ed in one tick into
 * one batch, and runs the batch function in the context of the first `load()`: with loads from
 * several requests, the whole batch would carry the first one's lane. A batch has one set of outbound
 * calls, so it cannot carry several lanes; a batch whose keys came from more than one lane runs in the
 * stable lane (its calls go out untagged), counted in `graylane_sdk_mixed_lane_batches_total` and
 * warned once. A batch of one lane runs as before, in its first load's context. The fix is
 * DataLoader's own advice: one loader per request, made in the request.
 *
 * The hook reads DataLoader's `_batch` (the batch being filled) and `_batchLoadFn`, which have not
 * changed through DataLoader 2.x; a loader without them is left alone.
 */

const boundMark = Symbol.for('graylane.sdk.dataLoaderBound');
const batchFnMark = Symbol.for('graylane.sdk.dataLoaderBatchFn');

type BatchFn = (this: unknown, keys: readonly unknown[]) => unknown;

interface Loader {
  _batch?: { keys?: unknown[] } | null;
  _batchLoadFn?: BatchFn & { [batchFnMark]?: true };
}

interface LoaderClass {
  prototype: { load?: (this: Loader, key: unknown) => unknown; [boundMark]?: true };
}

/** The lanes of the loads that put keys into each batch, by the batch's `keys` array. */
const lanesOfBatch = new WeakMap<readonly unknown[], Set<string>>();

export function separateBatchLanes(exported: unknown): void {
  const proto = (exported as LoaderClass | undefined)?.prototype;
  const load = proto?.load;
  if (proto === undefined || typeof load !== 'function' || Object.hasOwn(proto, boundMark)) return;
  proto[boundMark] = true;
  proto.load = function graylaneLoad(this: Loader, key: unknown) {
    const batch = this._batch;
    const before = batch?.keys?.length;
    const result = load.call(this, key);
    const keys = this._batch?.keys;
    // A cached key joins no batch: the batch and its length are unchanged. A new batch may have the
    // length the last one had, so its identity counts too.
    if (Array.isArray(keys) && (this._batch !== batch || keys.length !== before)) {
      noteLane(this, keys);
    }
    return result;
  };
}

function noteLane(loader: Loader, keys: unknown[]): void {
  let lanes = lanesOfBatch.get(keys);
  if (lanes === undefined) {
    lanes = new Set();
    lanesOfBatch.set(keys, lanes);
  }
  lanes.add(getLane());
  const batchFn = loader._batchLoadFn;
  if (typeof batchFn === 'function' && !batchFn[batchFnMark])
    loader._batchLoadFn = perLane(batchFn);
}

function perLane(batchFn: BatchFn): BatchFn & { [batchFnMark]: true } {
  const wrapped = function graylaneBatch(this: unknown, keys: readonly unknown[]) {
    const lanes = lanesOfBatch.get(keys);
    if (lanes === undefined || lanes.size < 2) return batchFn.call(this, keys);
    countMixedBatch('dataloader');
    warnOnce(
      'mixed-batch:dataloader',
      { library: 'dataloader', lanes: [...lanes].sort() },
      'DataLoader batch holds keys of several lanes: it runs untagged. Make one loader per request',
    );
    return withLane(STABLE, () => batchFn.call(this, keys));
  };
  return Object.assign(wrapped, { [batchFnMark]: true as const });
}
