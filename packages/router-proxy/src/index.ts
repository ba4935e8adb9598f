export {
  ConfigError,
  type ProxyConfig,
  ProxyConfigSchema,
  parseCli,
  proxyOptionsFrom,
} from './config.js';
export { LANE_SERVED_HEADER, provenance } from './forwarding/service-route.js';
export { ProxyErrorCodes } from './http/respond.js';
export type { InboundApp } from './listeners/inbound.js';
export { createLogger } from './logger.js';
export { ProxyMetrics } from './metrics.js';
export {
  type GraylaneProxy as Proxy,
  GraylaneProxy,
  type ListenAddress,
  type ProxyOptions,
} from './proxy.js';
export { type Assignment, type AssignmentInput, assignLane } from './routing/assign.js';
export { type CompiledTable, compileTable } from './routing/compiled-table.js';
export { hostWithoutPort, matchEntrypoint, pathHasPrefix } from './routing/entrypoint.js';
export { type FallbackStep, type Resolution, resolveRoute } from './routing/resolve.js';
export { serviceFromHost } from './routing/service-host.js';
export { BUCKETS, inWeight, stickyBucket, WeightedSplitter } from './routing/sticky.js';
export { defaultRuntimeOptions, type RuntimeOptions } from './runtime.js';
export {
  ControllerRouteTableSource,
  type ControllerSourceOptions,
  FileRouteTableSource,
  isRouteTableUrl,
  openRouteTableSource,
  type RouteTableEvents,
  type RouteTableSource,
  SourceErrorCodes,
} from './sources/index.js';
