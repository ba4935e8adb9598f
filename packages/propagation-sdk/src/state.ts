import { AsyncLocalStorage } from 'node:async_hooks';
import type { SdkOptions } from './config.js';
import type { Store } from './context.js';
import type { SdkLogger } from './log.js';
import type { SdkMetrics } from './metrics.js';

/**
 * What every copy of the SDK in a process shares. A bundled app holds its own copy of the SDK while
 * the register hook runs the one in node_modules; two copies with two `AsyncLocalStorage`s would each
 * see only their own contexts (`getLane()` stable, `withLane()` ignored). So the context storage,
 * options, counters and warn-once memory live in one object on `globalThis` under a `Symbol.for`
 * key, the way `@opentelemetry/api` keeps its global registry. The first copy loaded creates it.
 *
 * The version in the key changes only when this shape does.
 */
export interface SharedState {
  readonly storage: AsyncLocalStorage<Store>;
  options: SdkOptions | undefined;
  logger: SdkLogger | undefined;
  readonly warned: Set<string>;
  taggedInFlight: number;
  /** Prototypes whose `emit` one of the copies bound to the instance's context. */
  readonly patched: WeakSet<object>;
  metrics: SdkMetrics | undefined;
  /**
   * Above zero while the SDK's undici interceptor dispatches a call it has tagged: OTel's propagators
   * stay out of it, and undici's request-creation channel knows the request was seen.
   */
  dispatching: number;
  /** Set while the undici hook is installed: re-composes the global dispatcher if the app replaced it. */
  keepGlobalDispatcher: (() => void) | undefined;
  /** Set once the module hooks for libraries that pool work (p-queue, DataLoader) are in place. */
  libraryHooks: boolean;
}

const STATE_KEY = Symbol.for('graylane.sdk.state.v1');

type Holder = { [STATE_KEY]?: SharedState };

function createState(): SharedState {
  return {
    storage: new AsyncLocalStorage<Store>(),
    options: undefined,
    logger: undefined,
    warned: new Set(),
    taggedInFlight: 0,
    patched: new WeakSet(),
    metrics: undefined,
    dispatching: 0,
    keepGlobalDispatcher: undefined,
    libraryHooks: false,
  };
}

// biome-ignore lint/suspicious/noAssignInExpressions: create once, whichever copy comes first
export const shared: SharedState = ((globalThis as Holder)[STATE_KEY] ??= createState());
