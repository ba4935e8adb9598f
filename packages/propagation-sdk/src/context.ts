import { AsyncLocalStorage } from 'node:async_hooks';
import type { EventEmitter } from 'node:events';
import { parseLane, type TagSource } from '@graylane/lane-core';
import { getConfig } from './config.js';
import { activeOtelLane, runWithOtelLane } from './otel/bridge.js';

/** What the SDK knows about the current unit of work. */
export interface LaneContext {
  /** The lane; `stable` for untagged work. */
  readonly lane: string;
  /** Where the lane came from: a request's header or baggage, `withLane`, or OTel's baggage. */
  readonly source: TagSource | 'explicit' | 'otel';
  /** True inside an inbound request; false for `withLane` and for OTel-only contexts. */
  readonly request: boolean;
}

const storage = new AsyncLocalStorage<LaneContext>();

/**
 * The current context: the SDK's own store, else a lane found in the active OTel baggage, else
 * undefined (no context at all, which is what lane-leak detection looks for).
 */
export function currentContext(): LaneContext | undefined {
  const store = storage.getStore();
  if (store !== undefined) return store;
  const lane = activeOtelLane(getConfig().baggageKey);
  return lane === undefined ? undefined : { lane, source: 'otel', request: false };
}

/** The current lane; `stable` when there is none. */
export function getLane(): string {
  return currentContext()?.lane ?? 'stable';
}

/** Runs `fn` in `store`, mirrored into OTel baggage when OTel manages context. */
export function runInContext<T>(store: LaneContext, fn: () => T): T {
  // Already inside it (a global server hook and a middleware both entered the request): no new frame.
  if (storage.getStore() === store) return fn();
  return storage.run(store, runWithOtelLane, store.lane, getConfig().baggageKey, fn);
}

/**
 * Runs `fn` (and everything it starts: awaits, timers, requests) in `lane`. An invalid lane is a
 * programming error and throws `InvalidLaneError` (`GRAYLANE_ERR_INVALID_LANE`); `''` and `stable`
 * mean the stable lane, which also marks intentional background work for leak detection.
 */
export function withLane<T>(lane: string, fn: () => T): T {
  return runInContext({ lane: parseLane(lane), source: 'explicit', request: false }, fn);
}

/** Returns `fn` bound to the current context, for callbacks handed to code that loses it. */
export function bindLane<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  const store = storage.getStore();
  if (store === undefined) return fn;
  return (...args: A) => storage.run(store, fn, ...args);
}

const boundStore = Symbol('graylane.boundStore');
type BindableEmitter = Pick<EventEmitter, 'emit'> & { [boundStore]?: LaneContext };

/**
 * Makes every listener of `emitter` run in the current context, whoever emits. Node emits request
 * body and socket events from the connection's context, not the request's, so a `data`/`end`
 * listener would otherwise see no lane. Binding replaces `emit` on the instance only.
 */
export function bindEmitter<E extends Pick<EventEmitter, 'emit'>>(emitter: E): E {
  const store = storage.getStore();
  if (store !== undefined) bindEmitterTo(emitter, store);
  return emitter;
}

export function bindEmitterTo(emitter: Pick<EventEmitter, 'emit'>, store: LaneContext): void {
  const target = emitter as BindableEmitter;
  if (target[boundStore] !== undefined) {
    target[boundStore] = store;
    return;
  }
  target[boundStore] = store;
  const emit = target.emit;
  target.emit = function boundEmit(
    this: BindableEmitter,
    ...args: Parameters<EventEmitter['emit']>
  ) {
    const bound = this[boundStore];
    if (bound === undefined || storage.getStore() === bound) return emit.apply(this, args);
    return storage.run(bound, () => emit.apply(this, args));
  };
}
