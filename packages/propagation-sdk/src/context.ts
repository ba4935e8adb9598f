import type { EventEmitter } from 'node:events';
import { parseLane, type TagSource } from '@graylane/lane-core';
import { getConfig } from './config.js';
import { activeOtelLane, otelContextActive, runWithOtelLane } from './otel/bridge.js';
import { type Relay, relayTo } from './provenance.js';
import { shared } from './state.js';

/** What the SDK knows about the current unit of work. */
export interface LaneContext {
  /** The lane; `stable` for untagged work. */
  readonly lane: string;
  /** Where the lane came from: a request's header or baggage, `withLane`, or OTel's baggage. */
  readonly source: TagSource | 'explicit' | 'otel';
  /** True inside an inbound request; false for `withLane` and for OTel-only contexts. */
  readonly request: boolean;
}

// Symbol.for: another copy of the SDK in the process (a bundle's) reads the same fields.
const relayKey = Symbol.for('graylane.sdk.relay');
const endedKey = Symbol.for('graylane.sdk.ended');
const responseKey = Symbol.for('graylane.sdk.response');

/**
 * The SDK's store: the context, the request whose response relays the hops of calls made in it, and
 * whether that request has ended (its response closed), which makes a call made in it stale.
 */
export interface Store extends LaneContext {
  [relayKey]?: Relay | undefined;
  /** The response the relay will write to, until an outbound call makes the relay. */
  [responseKey]?: object | undefined;
  [endedKey]?: boolean;
}

const storage = shared.storage;

/**
 * An inbound request's store. A class, so every request's store has one shape from the start; the
 * relay is made by the request's first outbound call (most requests of a service make none).
 */
class RequestStore implements Store {
  readonly request = true;
  [relayKey]: Relay | undefined = undefined;
  [responseKey]: object | undefined;
  [endedKey] = false;
  constructor(
    readonly lane: string,
    readonly source: LaneContext['source'],
    response: object | undefined,
  ) {
    this[responseKey] = response;
  }
}

/** The store of an inbound request; outbound calls made in it relay their hops to `response`. */
export function requestStore(
  lane: string,
  source: LaneContext['source'],
  response: object | undefined,
): Store {
  return new RequestStore(lane, source, response);
}

/** Marks a request's store as ended: calls still made in it come from work that outlived it. */
export function markEnded(store: LaneContext): void {
  (store as Store)[endedKey] = true;
}

/**
 * Whether `ctx` belongs to a request that has ended. A call made in it is work that outlived its
 * request (fire-and-forget), or, far more often, a job of another request run by a queue or pool
 * that was first fed by this one: promise chains keep the context of whoever started the chain.
 */
export function isEnded(ctx: LaneContext): boolean {
  return (ctx as Store)[endedKey] === true;
}

/** The relay of `store`, made now if its request has a response to write to. */
function relayOf(store: Store | undefined): Relay | undefined {
  if (store === undefined) return undefined;
  const relay = store[relayKey];
  if (relay !== undefined) return relay;
  const response = store[responseKey];
  if (response === undefined) return undefined;
  store[responseKey] = undefined;
  const made = relayTo(response);
  store[relayKey] = made;
  return made;
}

/** Where the provenance of an outbound call made now goes: the current request's relay, if any. */
export function currentRelay(): Relay | undefined {
  return relayOf(storage.getStore());
}

/**
 * Runs `fn` in a copy of the current context that relays nothing: an outer hook (the fetch wrapper)
 * records the call's response itself, so the hooks underneath (undici's dispatcher, which Node's fetch
 * goes through) must not record it again. The lane is the same, so the OTel context is left as is.
 */
export function runUnrelayed<T>(fn: () => T): T {
  const store = storage.getStore();
  if (relayOf(store) === undefined || store === undefined) return fn();
  return storage.run({ lane: store.lane, source: store.source, request: store.request }, fn);
}

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
export function runInContext<T>(store: Store, fn: () => T): T {
  return applyInContext(store, fn, undefined, NO_ARGS);
}

const NO_ARGS: readonly unknown[] = Object.freeze([]);

/**
 * `fn.apply(thisArg, args)` in `store`: what the hooks that wrap `emit` call, so that no closure
 * (and no context for one, which V8 makes on every call of a function that has one) is made per event.
 */
export function applyInContext<T>(
  store: Store,
  fn: (...args: never[]) => T,
  thisArg: unknown,
  args: ArrayLike<unknown>,
): T {
  // Already inside it (a global server hook and a middleware both entered the request): no new frame.
  if (storage.getStore() === store) return Reflect.apply(fn, thisArg, args);
  if (!otelContextActive()) return storage.run(store, Reflect.apply, fn, thisArg, args) as T;
  return storage.run(store, runWithOtelLane, store.lane, getConfig().baggageKey, () =>
    Reflect.apply(fn, thisArg, args),
  );
}

/**
 * Runs `fn` (and everything it starts: awaits, timers, requests) in `lane`. An invalid lane is a
 * programming error and throws `InvalidLaneError` (`GRAYLANE_ERR_INVALID_LANE`); `''` and `stable`
 * mean the stable lane, which also marks intentional background work for leak detection.
 */
export function withLane<T>(lane: string, fn: () => T): T {
  // Inside a request, calls made in another lane still report their hops to the request's response.
  const relay = currentRelay();
  return runInContext(
    { lane: parseLane(lane), source: 'explicit', request: false, [relayKey]: relay },
    fn,
  );
}

/**
 * Returns `fn` bound to the current context, for callbacks handed to code that loses it (queues,
 * pools, batchers). The binding is a statement that the job belongs to this lane, so it keeps the lane
 * after the request has ended: the job runs in a copy of the context that never goes stale.
 */
export function bindLane<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  const store = storage.getStore();
  if (store === undefined) return fn;
  const bound: Store = {
    lane: store.lane,
    source: store.source,
    request: store.request,
    [relayKey]: relayOf(store),
  };
  return (...args: A) => runInContext(bound, () => fn(...args));
}

const boundStore = Symbol.for('graylane.sdk.boundStore');
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
  const alreadyBound = Object.hasOwn(target, 'emit') && target[boundStore] !== undefined;
  target[boundStore] = store;
  if (alreadyBound || patchedPrototypes.has(Object.getPrototypeOf(target))) return;
  target.emit = boundEmitOf(target.emit);
}

type Emit = EventEmitter['emit'];

/**
 * `emit`, run in the context its emitter is bound to. `arguments` goes straight into `apply`, with
 * no array made per event: every request body event passes through here.
 */
function boundEmitOf(emit: Emit): Emit {
  return function boundEmit(this: BindableEmitter, event: string | symbol) {
    // biome-ignore lint/complexity/noArguments: forwarded as is, without copying
    const args = arguments as unknown as Parameters<Emit>;
    const bound = this[boundStore];
    // An event nobody listens to runs no code in any context: no context switch for it (a request's
    // `resume`, `end` and `close` mostly).
    if (bound === undefined || storage.getStore() === bound || noAppListeners(this, event)) {
      return emit.apply(this, args);
    }
    return storage.run(bound, Reflect.apply, emit, this, args);
  } as Emit;
}

/**
 * Whether no code of the app listens to `event`. Node's server adds its own `clearIncoming` to a
 * request's `end` once the response is finished; it needs no context, and switching to the request's
 * for it was one context switch per request.
 */
function noAppListeners(emitter: BindableEmitter, event: string | symbol): boolean {
  const count = (emitter as Partial<Pick<EventEmitter, 'listenerCount'>>).listenerCount;
  if (typeof count !== 'function') return false;
  const listeners = count.call(emitter, event);
  if (listeners === 0) return true;
  if (listeners !== 1 || event !== 'end') return false;
  const only = (emitter as { _events?: Record<string, unknown> })._events?.end;
  return typeof only === 'function' && only.name === 'clearIncoming';
}

const patchedPrototypes = shared.patched;

/**
 * Binds the events of every instance of a class at once, by wrapping `emit` on its prototype: an
 * instance then needs only the mark `bindEmitterTo` sets. For `IncomingMessage` this replaces a
 * closure and an own `emit` per request, which a CPU profile showed as the SDK's largest cost.
 */
export function bindPrototypeEvents(proto: Pick<EventEmitter, 'emit'>): void {
  if (patchedPrototypes.has(proto)) return;
  patchedPrototypes.add(proto);
  proto.emit = boundEmitOf(proto.emit);
}

/** Marks an instance of a class whose prototype `bindPrototypeEvents` bound: one property, no closure. */
export function markBound(emitter: object, store: LaneContext): void {
  (emitter as BindableEmitter)[boundStore] = store;
}

/** The context an emitter was bound to, if any: how a request entered twice finds its own. */
export function boundContextOf(emitter: object): LaneContext | undefined {
  return (emitter as BindableEmitter)[boundStore];
}
