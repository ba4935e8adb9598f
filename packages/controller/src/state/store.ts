import type { RouteTable } from '@graylane/lane-core';
import type { EntrypointDocument, ServiceDocument } from '../documents/schema.js';
import type { ProcessRecord } from '../platform/processes.js';
import type { Release } from '../release/status.js';

/** Everything the controller must not forget across a restart. */
export interface ControllerState {
  format: 1;
  /** The last published route-table revision; a restarted controller never publishes a lower one. */
  revision: number;
  routeTable?: RouteTable;
  services: Record<string, ServiceDocument>;
  entrypoints: Record<string, EntrypointDocument>;
  releases: Record<string, Release>;
  processes: ProcessRecord[];
  /** Canary workloads given as `endpoints` (run elsewhere) that are deployed: `service/lane`. */
  declared: string[];
}

export const emptyState = (): ControllerState => ({
  format: 1,
  revision: 0,
  services: {},
  entrypoints: {},
  releases: {},
  processes: [],
  declared: [],
});

/** Where the state lives: a file in local mode, the API server in Kubernetes mode. */
export interface StateStore {
  load(): Promise<ControllerState>;
  save(state: ControllerState): Promise<void>;
  close(): Promise<void>;
}
