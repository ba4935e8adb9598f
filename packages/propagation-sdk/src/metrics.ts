import { Counter, Registry } from 'prom-client';

/**
 * The SDK's own registry, kept apart from prom-client's global one so that loading the SDK never
 * collides with the app's metric names. Merge it: `Registry.merge([register, sdkRegistry])`.
 */
export const sdkRegistry = new Registry();

export type OutboundClient = 'fetch' | 'undici' | 'http' | 'https' | 'inject';
export type InvalidSource = 'inbound' | 'outbound' | 'extract';

const untaggedOutbound = new Counter({
  name: 'graylane_sdk_untagged_outbound_total',
  help: 'Outbound calls made outside any request context while tagged requests were in flight (a likely lane leak).',
  labelNames: ['client'] as const,
  registers: [sdkRegistry],
});

const staleOutbound = new Counter({
  name: 'graylane_sdk_stale_context_outbound_total',
  help: 'Outbound calls made in the context of a request that had ended (a queue or pool made at start-up, fire-and-forget work); sent untagged.',
  labelNames: ['client'] as const,
  registers: [sdkRegistry],
});

const invalidLane = new Counter({
  name: 'graylane_sdk_invalid_lane_total',
  help: 'Lane tags that were present but invalid, and were dropped.',
  labelNames: ['source'] as const,
  registers: [sdkRegistry],
});

export function countUntaggedOutbound(client: OutboundClient): void {
  untaggedOutbound.inc({ client });
}

export function countStaleOutbound(client: OutboundClient): void {
  staleOutbound.inc({ client });
}

export function countInvalidLane(source: InvalidSource): void {
  invalidLane.inc({ source });
}
