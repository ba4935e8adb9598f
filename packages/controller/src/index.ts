export { buildApi } from './api/server.js';
export { Controller, type ControllerOptions } from './controller.js';
export { parseDuration } from './documents/duration.js';
export { type AnyDocument, parseDocument, parseDocumentsText } from './documents/parse.js';
export * from './documents/schema.js';
export { ControllerError, ControllerErrors } from './errors.js';
export { LocalPlatform } from './platform/local.js';
export type { Platform, WorkloadRef, WorkloadStatus } from './platform/platform.js';
export { act, RELEASE_ACTIONS, type ReleaseAction } from './release/actions.js';
export { advance, teardownOrder } from './release/machine.js';
export type { CanaryObservation, Observations } from './release/observations.js';
export { deployOrder } from './release/order.js';
export * from './release/phases.js';
export type { Release, ReleaseEvent, ReleaseStatus, ServiceStatus } from './release/status.js';
export { FileStateStore } from './state/file-store.js';
export type { ControllerState, StateStore } from './state/store.js';
export { GraylaneProxyRouter } from './traffic/graylane-proxy.js';
export {
  type AppliedResult,
  type PublisherOptions,
  RouteTablePublisher,
  type WatcherInfo,
} from './traffic/publisher.js';
export { buildRouteTable, finishRouteTable } from './traffic/route-table.js';
export type { DesiredRouting, TrafficRouter } from './traffic/router.js';
