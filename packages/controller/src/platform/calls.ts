import type { Workload } from '../documents/schema.js';
import type { CanaryObservation } from '../release/observations.js';
import type { Release } from '../release/status.js';
import type { Platform, WorkloadRef } from './platform.js';

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

/** What the core observes of a release's canaries, by service: the platform's health of each. */
export function observeCanaries(
  platform: Platform,
  spec: Pick<Release['spec'], 'lane' | 'services'>,
): Record<string, CanaryObservation> {
  const canaries: Record<string, CanaryObservation> = {};
  for (const member of spec.services) {
    const { health, message } = platform.status(
      { service: member.name, lane: spec.lane },
      member.canary,
    );
    canaries[member.name] = message === undefined ? { health } : { health, message };
  }
  return canaries;
}
