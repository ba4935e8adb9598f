/** The public API of `@graylane/sdk`. */

export { STABLE } from '@graylane/lane-core';
export {
  configure,
  configureFromEnv,
  ENV_VARIABLES,
  getConfig,
  LANE_SERVED_HEADER,
  optionsFromEnv,
  type SdkOptions,
  type SdkOptionsInput,
} from './config.js';
export {
  bindEmitter,
  bindLane,
  currentContext,
  getLane,
  type LaneContext,
  withLane,
} from './context.js';
export { LaneLeakError, SdkConfigError, SdkErrorCodes } from './errors.js';
export { type LaneMiddleware, laneMiddleware } from './inbound/express.js';
export { installServerHooks, instrumentServer, laneHandler } from './inbound/http.js';
export { type IncomingLike, type OutgoingLike, runWithIncoming } from './inbound/incoming.js';
export { type InstallOptions, install } from './install.js';
export { taggedRequestsInFlight } from './leak.js';
export type { SdkLogger } from './log.js';
export { sdkRegistry } from './metrics.js';
export { GraylanePropagator } from './otel/propagator.js';
export { installFetch, wrapFetch } from './outbound/fetch.js';
export { installGlobalDispatcher } from './outbound/global-dispatcher.js';
export { getFrom, installHttpClient, wrapRequest } from './outbound/http.js';
export { laneInterceptor } from './outbound/undici.js';
export {
  createPropagator,
  extract,
  fields,
  inject,
  type LaneGetter,
  type LanePropagator,
  type LaneSetter,
  propagator,
} from './propagator.js';
