import type { RouteTableInput } from '@graylane/lane-core';
import { parseRouteTable } from '@graylane/lane-core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileTable, type ServiceView } from '../src/routing/compiled-table.js';
import {
  type Availability,
  everyEndpointAvailable,
  type FallbackReason,
  resolveRoute,
} from '../src/routing/resolve.js';

type ServiceInput = NonNullable<RouteTableInput['services']>[string];

function service(input: ServiceInput, name = 'backend'): ServiceView {
  const table = compileTable(
    parseRouteTable({ apiVersion: 'graylane/v1', revision: 1, services: { [name]: input } }),
  );
  return table.services.get(name)!;
}

const ep = (port: number) => `http://127.0.0.1:${port}`;

/** Marks whole sets unavailable, each with the reason a health source would give. */
function unavailable(down: Record<string, 'ejected' | 'unhealthy'>): Availability {
  return {
    available: (set) => (Object.hasOwn(down, set.lane) ? [] : set.endpoints),
    unavailableReason: (set) => down[set.lane] ?? 'ejected',
  };
}

const backend = service({
  stable: { version: 'v1', endpoints: [ep(9000), ep(9001)] },
  lanes: {
    gray: { version: 'v2', endpoints: [ep(9002)] },
    'feature-x': { endpoints: [ep(9003)], fallback: 'gray' },
    strict: { endpoints: [ep(9004)], fallback: 'none' },
    empty: { endpoints: [] },
    'empty-strict': { endpoints: [], fallback: 'none' },
  },
});

describe('resolveRoute', () => {
  it('serves a lane that has endpoints from its own set, without fallback', () => {
    const r = resolveRoute(backend, 'gray');
    expect(r).toEqual({
      ok: true,
      set: expect.objectContaining({ lane: 'gray', version: 'v2' }),
      endpoints: [ep(9002)],
      fallbacks: [],
    });
  });

  it('serves stable from the stable set', () => {
    const r = resolveRoute(backend, 'stable');
    expect(r.ok && r.set.lane).toBe('stable');
    expect(r.ok && r.endpoints).toEqual([ep(9000), ep(9001)]);
    expect(r.fallbacks).toEqual([]);
  });

  it('sends a lane the service does not define to stable, reason `absent`', () => {
    const r = resolveRoute(backend, 'nope');
    expect(r.ok && r.set.lane).toBe('stable');
    expect(r.fallbacks).toEqual([{ from: 'nope', to: 'stable', reason: 'absent' }]);
  });

  it('sends a lane with no endpoints to its fallback, reason `absent`', () => {
    const r = resolveRoute(backend, 'empty');
    expect(r.ok && r.set.lane).toBe('stable');
    expect(r.fallbacks).toEqual([{ from: 'empty', to: 'stable', reason: 'absent' }]);
  });

  it('walks a chain feature-x -> gray -> stable, passing through the availability reasons', () => {
    const one = resolveRoute(backend, 'feature-x', unavailable({ 'feature-x': 'ejected' }));
    expect(one.ok && one.set.lane).toBe('gray');
    expect(one.fallbacks).toEqual([{ from: 'feature-x', to: 'gray', reason: 'ejected' }]);

    const two = resolveRoute(
      backend,
      'feature-x',
      unavailable({ 'feature-x': 'unhealthy', gray: 'ejected' }),
    );
    expect(two.ok && two.set.lane).toBe('stable');
    expect(two.ok && two.endpoints).toEqual([ep(9000), ep(9001)]);
    expect(two.fallbacks).toEqual([
      { from: 'feature-x', to: 'gray', reason: 'unhealthy' },
      { from: 'gray', to: 'stable', reason: 'ejected' },
    ]);
  });

  it('returns only the endpoints the availability lets through', () => {
    const partly: Availability = {
      available: (set) => set.endpoints.filter((e) => e !== ep(9000)),
      unavailableReason: () => 'ejected',
    };
    const r = resolveRoute(backend, 'stable', partly);
    expect(r.ok && r.endpoints).toEqual([ep(9001)]);
  });

  it('asks the availability with the service name', () => {
    const asked: string[] = [];
    const spy: Availability = {
      available: (set, name) => {
        asked.push(`${name}/${set.lane}`);
        return set.lane === 'stable' ? set.endpoints : [];
      },
      unavailableReason: (set, name) => {
        asked.push(`reason ${name}/${set.lane}`);
        return 'unhealthy';
      },
    };
    resolveRoute(backend, 'feature-x', spy);
    expect(asked).toEqual([
      'backend/feature-x',
      'reason backend/feature-x',
      'backend/gray',
      'reason backend/gray',
      'backend/stable',
    ]);
  });

  it('`fallback: none` fails with a reason that names the service and the lane', () => {
    const r = resolveRoute(backend, 'strict', unavailable({ strict: 'ejected' }));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.service).toBe('backend');
    expect(r.lane).toBe('strict');
    expect(r.fallbacks).toEqual([]);
    expect(r.reason).toContain('backend');
    expect(r.reason).toContain('strict');
  });

  it('`fallback: none` with no endpoints at all fails the same way', () => {
    const r = resolveRoute(backend, 'empty-strict');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/empty-strict.*backend|backend.*empty-strict/);
  });

  it('fails when stable has no endpoint', () => {
    const bare = service({ stable: { endpoints: [] }, lanes: { gray: { endpoints: [] } } });
    const direct = resolveRoute(bare, 'stable');
    expect(direct).toMatchObject({ ok: false, service: 'backend', lane: 'stable', fallbacks: [] });
    expect(!direct.ok && direct.reason).toContain('backend');
    expect(!direct.ok && direct.reason).toContain('stable');

    const via = resolveRoute(bare, 'gray');
    expect(via).toMatchObject({
      ok: false,
      lane: 'gray',
      fallbacks: [{ from: 'gray', to: 'stable', reason: 'absent' }],
    });
    const absent = resolveRoute(bare, 'nope');
    expect(absent).toMatchObject({
      ok: false,
      lane: 'nope',
      fallbacks: [{ from: 'nope', to: 'stable', reason: 'absent' }],
    });
  });

  it('fails when stable is unavailable, after walking the chain', () => {
    const r = resolveRoute(
      backend,
      'feature-x',
      unavailable({ 'feature-x': 'ejected', gray: 'ejected', stable: 'unhealthy' }),
    );
    expect(r.ok).toBe(false);
    expect(r.fallbacks).toEqual([
      { from: 'feature-x', to: 'gray', reason: 'ejected' },
      { from: 'gray', to: 'stable', reason: 'ejected' },
    ]);
    expect(!r.ok && r.reason).toContain('stable');
  });

  it('stops on a cycle that slipped past validation instead of looping', () => {
    const looped = service({
      stable: { endpoints: [ep(9000)] },
      lanes: { a: { endpoints: [ep(9001)] }, b: { endpoints: [ep(9002)] } },
    });
    // Forge a cycle a -> b -> a in the compiled view.
    const sets = looped.sets as Map<string, { fallback: string }>;
    sets.get('a')!.fallback = 'b';
    sets.get('b')!.fallback = 'a';
    const r = resolveRoute(looped, 'a', unavailable({ a: 'ejected', b: 'ejected' }));
    expect(r.ok).toBe(false);
    expect(r.fallbacks).toEqual([{ from: 'a', to: 'b', reason: 'ejected' }]);
  });

  it('uses every endpoint by default', () => {
    expect(everyEndpointAvailable.available(backend.sets.get('gray')!, 'backend')).toEqual([
      ep(9002),
    ]);
  });

  it('property: the walk ends at the first available set along the chain', () => {
    type Health = 'up' | 'ejected' | 'unhealthy';
    const health = fc.constantFrom<Health>('up', 'up', 'ejected', 'unhealthy');
    const world = fc.integer({ min: 1, max: 6 }).chain((n) =>
      fc.record({
        lanes: fc.tuple(
          ...Array.from({ length: n }, (_, i) =>
            fc.record({
              endpoints: fc.integer({ min: 0, max: 2 }),
              health,
              // Only later lanes, stable or none: acyclic by construction.
              fallback: fc.constantFrom(
                'stable',
                'none',
                ...Array.from({ length: n - i - 1 }, (_, k) => `l${i + k + 1}`),
              ),
            }),
          ),
        ),
        stable: fc.record({ endpoints: fc.integer({ min: 0, max: 2 }), health }),
        requested: fc.constantFrom(
          'stable',
          'absent',
          ...Array.from({ length: n }, (_, i) => `l${i}`),
        ),
      }),
    );
    fc.assert(
      fc.property(world, ({ lanes, stable, requested }) => {
        let port = 10_000;
        const endpoints = (count: number) => Array.from({ length: count }, () => ep(port++));
        const input: ServiceInput = {
          stable: { endpoints: endpoints(stable.endpoints) },
          lanes: Object.fromEntries(
            lanes.map((l, i) => [
              `l${i}`,
              { endpoints: endpoints(l.endpoints), fallback: l.fallback },
            ]),
          ),
        };
        const model = new Map<string, { endpoints: number; health: Health; fallback: string }>([
          ['stable', { ...stable, fallback: 'none' }],
          ...lanes.map((l, i) => [`l${i}`, l] as const),
        ]);
        const down: Record<string, 'ejected' | 'unhealthy'> = {};
        for (const [lane, m] of model) if (m.health !== 'up') down[lane] = m.health;

        // The expected walk, written out plainly.
        const steps: Array<{ from: string; to: string; reason: FallbackReason }> = [];
        let lane = model.has(requested) ? requested : 'stable';
        if (lane !== requested) steps.push({ from: requested, to: 'stable', reason: 'absent' });
        let served: string | undefined;
        for (;;) {
          const m = model.get(lane)!;
          if (m.endpoints > 0 && m.health === 'up') {
            served = lane;
            break;
          }
          if (m.fallback === 'none') break;
          const reason = m.endpoints === 0 ? 'absent' : (m.health as 'ejected' | 'unhealthy');
          steps.push({ from: lane, to: m.fallback, reason });
          lane = m.fallback;
        }

        const r = resolveRoute(service(input), requested, unavailable(down));
        expect(r.fallbacks).toEqual(steps);
        if (served === undefined) {
          expect(r.ok).toBe(false);
          expect(!r.ok && r.lane).toBe(requested);
          expect(!r.ok && r.service).toBe('backend');
        } else {
          expect(r.ok).toBe(true);
          if (!r.ok) return;
          expect(r.set.lane).toBe(served);
          expect(r.endpoints).toHaveLength(model.get(served)!.endpoints);
          expect(r.endpoints).toEqual(r.set.endpoints);
        }
      }),
      { numRuns: 500 },
    );
  });
});
