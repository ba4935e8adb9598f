import type { Workload } from '../documents/schema.js';
import type { Release } from '../release/status.js';
import type { WorkloadRef } from './platform.js';

export type PlatformCall = 'deploy' | 'remove' | 'promote';

/**
 * What the platform must be asked for each canary of a release, by the canary's state: the same
 * for every platform and every driver. Each call is idempotent, so asking again is always safe.
 */
export interface PlatformCallFor {
  call: PlatformCall;
  ref: WorkloadRef;
  workload: Workload;
}

export function platformCalls(release: Release): PlatformCallFor[] {
  const lane = release.spec.lane;
  return release.spec.services.flatMap((member): PlatformCallFor[] => {
    const ref = { service: member.name, lane };
    switch (release.status.services[member.name]?.canary) {
      case 'deploying':
      case 'routed':
      case 'unrouted':
      case 'promoted':
        return [{ call: 'deploy', ref, workload: member.canary }];
      case 'removing':
        return [{ call: 'remove', ref, workload: member.canary }];
      case 'retiring':
        return [{ call: 'promote', ref, workload: member.canary }];
      default:
        return [];
    }
  });
}
