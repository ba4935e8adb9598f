import { describe, expect, it } from 'vitest';
import { parseDocument } from '../src/documents/parse.js';
import type {
  EntrypointDocument,
  ReleaseDocument,
  ServiceDocument,
} from '../src/documents/schema.js';
import { initialStatus, type Release } from '../src/release/status.js';
import { buildRouteTable } from '../src/traffic/route-table.js';

/** `trafficFromReplicas`: the entry split follows the instance counts, as a Kubernetes Service's does. */
const run = (replicas: number) => ({ command: 'node', args: ['app.js'], replicas });

function web(stableReplicas: number) {
  return parseDocument(
    {
      kind: 'Service',
      metadata: { name: 'web' },
      spec: { stable: { version: 'v1', run: run(stableReplicas) } },
    },
    'Service',
  ) as ServiceDocument;
}

function release(canaryReplicas: number, extra: Record<string, unknown> = {}): Release {
  const doc = parseDocument(
    {
      kind: 'Release',
      metadata: { name: 'web-v2' },
      spec: {
        lane: 'gray',
        entrypoint: 'web',
        services: [{ name: 'web', canary: { version: 'v2', run: run(canaryReplicas) } }],
        sticky: 'header:x-user',
        trafficFromReplicas: true,
        steps: [{ pause: {} }],
        ...extra,
      },
    },
    'Release',
  ) as ReleaseDocument;
  const status = initialStatus(doc.spec, 0);
  status.phase = 'Paused';
  status.step = 0;
  status.entryRouted = true;
  status.services.web = { canary: 'routed', health: 'ready' };
  return { ...doc, status };
}

const entry = parseDocument(
  { kind: 'Entrypoint', metadata: { name: 'web' }, spec: { service: 'web' } },
  'Entrypoint',
) as EntrypointDocument;

/** One endpoint per instance, on ports the counting model can tell apart. */
function table(stableReplicas: number, r: Release) {
  return buildRouteTable({
    services: [web(stableReplicas)],
    entrypoints: [entry],
    releases: [r],
    endpointsOf: (_service, lane, workload) => {
      const base = lane === 'stable' ? 9000 : 9100;
      const count = workload.run?.replicas ?? workload.endpoints?.length ?? 0;
      return Array.from({ length: count }, (_, i) => `http://127.0.0.1:${base + i}`);
    },
  });
}

describe('trafficFromReplicas', () => {
  it.each([
    [3, 1, 25],
    [2, 2, 50],
    [1, 3, 75],
    [2, 1, 33.33],
    [1, 32, 96.97],
  ])('stable %i, canary %i: the lane gets %f % of the entry', (stable, canary, weight) => {
    const built = table(stable, release(canary));
    expect(built.entrypoints![0]!.assign).toEqual([
      { lane: 'gray', weight, sticky: 'header:x-user' },
    ]);
  });

  it('puts nothing in the lane before the entry is routed', () => {
    const r = release(2);
    r.status.entryRouted = false;
    expect(table(2, r).entrypoints![0]!.assign).toEqual([]);
  });

  it('ignores the status weight, and without the flag the status weight is the split', () => {
    const r = release(1);
    r.status.weight = 90;
    expect(table(3, r).entrypoints![0]!.assign).toEqual([
      { lane: 'gray', weight: 25, sticky: 'header:x-user' },
    ]);
    const plain = release(1, { trafficFromReplicas: false });
    plain.status.weight = 90;
    expect(table(3, plain).entrypoints![0]!.assign).toEqual([
      { lane: 'gray', weight: 90, sticky: 'header:x-user' },
    ]);
  });

  it('refuses weight steps: the replicas set the weight', () => {
    expect(() => release(1, { steps: [{ weight: 50 }] })).toThrow(
      expect.objectContaining({
        code: 'GRAYLANE_ERR_INVALID_DOCUMENT',
        problems: [
          {
            path: 'spec.steps',
            message: 'with trafficFromReplicas the replicas set the weight: steps are pauses only',
          },
        ],
      }),
    );
  });
});
