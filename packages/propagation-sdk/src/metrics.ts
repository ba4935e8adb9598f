import { Counter, Registry } from 'prom-client';
import { shared } from './state.js';

export type OutboundClient = 'fetch' | 'undici' | 'http' | 'https' | 'inject';
export type InvalidSource = 'inbound' | 'outbound' | 'extract';

export interface SdkMetrics {
  registry: Registry;
  untaggedOutbound: Counter<'client'>;
  staleOutbound: Counter<'client'>;
  invalidLane: Counter<'source'>;
  mixedBatches: Counter<'library'>;
}

function createMetrics(): SdkMetrics {
  const registry = new Registry();
  const untaggedOutbound = new Counter({
    name: 'graylane_sdk_untagged_outbound_total',
    help: 'Outbound calls made outside any request context while tagged requests were in flight (a likely lane leak).',
    labelNames: ['client'] as const,
    registers: [registry],
  });

  const staleOutbound = new Counter({
    name: 'graylane_sdk_stale_context_outbound_total',
    help: 'Outbound calls made in the context of a request that had ended (a queue or pool made at start-up, fire-and-forget work); sent untagged.',
    labelNames: ['client'] as const,
    registers: [registry],
  });

  const invalidLane = new Counter({
    name: 'graylane_sdk_invalid_lane_total',
    help: 'Lane tags that were present but invalid, and were dropped.',
    labelNames: ['source'] as const,
    registers: [registry],
  });
  const mixedBatches = new Counter({
    name: 'graylane_sdk_mixed_lane_batches_total',
    help: 'Batches (a DataLoader shared by requests) whose keys came from several lanes; run untagged.',
    labelNames: ['library'] as const,
    registers: [registry],
  });
  return { registry, untaggedOutbound, staleOutbound, invalidLane, mixedBatches };
}

// biome-ignore lint/suspicious/noAssignInExpressions: one set of counters per process, whichever copy comes first
const metrics: SdkMetrics = (shared.metrics ??= createMetrics());

/**
 * The SDK's own registry, kept apart from prom-client's global one so that loading the SDK never
 * collides with the app's metric names. Merge it: `Registry.merge([register, sdkRegistry])`.
 */
export const sdkRegistry: Registry = metrics.registry;

export function countUntaggedOutbound(client: OutboundClient): void {
  metrics.untaggedOutbound.inc({ client });
}

export function countStaleOutbound(client: OutboundClient): void {
  metrics.staleOutbound.inc({ client });
}

export function countInvalidLane(source: InvalidSource): void {
  metrics.invalidLane.inc({ source });
}

export function countMixedBatch(library: string): void {
  // A copy of the SDK made before this counter existed shares no such counter.
  metrics.mixedBatches?.inc({ library });
}
