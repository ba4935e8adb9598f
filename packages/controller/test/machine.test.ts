import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ReleaseDocument } from '../src/documents/schema.js';
import { act, type ReleaseAction } from '../src/release/actions.js';
import { advance, teardownOrder } from '../src/release/machine.js';
import type { CanaryHealth } from '../src/release/observations.js';
import { deployOrder } from '../src/release/order.js';
import { isTerminal, laneRouted, type Phase, TRANSITIONS } from '../src/release/phases.js';
import { initialStatus, type Release } from '../src/release/status.js';

/**
 * The release core against a simulated world: a platform whose canaries become ready, crash or
 * fail at random, proxies that acknowledge route-table revisions late, and users who act at random.
 * The properties are the promises the controller makes, checked after every step.
 */

const names = ['db', 'backend', 'frontend', 'edge'];

const specArb = fc
  .record({
    count: fc.integer({ min: 1, max: 4 }),
    deps: fc.array(fc.array(fc.nat(3), { maxLength: 2 }), { minLength: 4, maxLength: 4 }),
    useDeps: fc.boolean(),
    steps: fc.array(
      fc.oneof(
        fc.integer({ min: 0, max: 100 }).map((weight) => ({ weight })),
        fc.constant({ pause: {} }),
        fc.constantFrom('1s', '5s').map((duration) => ({ pause: { duration } })),
      ),
      { minLength: 1, maxLength: 4 },
    ),
    entryIndex: fc.nat(3),
  })
  .map(({ count, deps, useDeps, steps, entryIndex }) => {
    const services = names.slice(0, count).map((name, i) => ({
      name,
      canary: { version: 'v2', endpoints: [`http://127.0.0.1:${9000 + i}`] },
      // Only earlier services, so there is never a cycle.
      ...(useDeps
        ? { dependsOn: [...new Set((deps[i] ?? []).filter((d) => d < i).map((d) => names[d]!))] }
        : {}),
    }));
    const spec = {
      lane: 'gray',
      entrypoint: 'shop',
      services,
      match: [],
      sticky: 'cookie:graylane',
      steps,
    } as ReleaseDocument['spec'];
    return { spec, entry: names[Math.min(entryIndex, count - 1)]! };
  });

type WorldStep =
  | { kind: 'tick'; ms: number; healthy: boolean; acks: boolean; platformDone: boolean }
  | { kind: 'act'; action: ReleaseAction };

const stepArb: fc.Arbitrary<WorldStep> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('tick' as const),
      ms: fc.constantFrom(100, 2000),
      healthy: fc.boolean(),
      acks: fc.boolean(),
      platformDone: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('act' as const),
      action: fc.constantFrom<ReleaseAction>('approve', 'pause', 'resume', 'promote', 'rollback'),
    }),
  },
);

/** The simulated platform and proxies, and the invariants checked as the release moves. */
class World {
  now = 1_000_000;
  revision = 0;
  acked = 0;
  routing = '';
  release: Release;
  readonly deployed = new Map<string, CanaryHealth>();
  /** The revision each service's lane left the table in. */
  readonly unroutedAt = new Map<string, number>();
  readonly phases: Phase[] = [];

  constructor(
    spec: ReleaseDocument['spec'],
    readonly entry: string,
  ) {
    this.release = {
      apiVersion: 'graylane.dev/v1alpha1',
      kind: 'Release',
      metadata: { name: 'r' },
      spec,
      status: initialStatus(spec, this.now),
    };
    this.phases.push('Pending');
  }

  observe(healthy: boolean) {
    const canaries: Record<string, { health: CanaryHealth }> = {};
    for (const s of this.release.spec.services)
      canaries[s.name] = { health: this.deployed.get(s.name) ?? 'absent' };
    if (!healthy) {
      const victim = [...this.deployed.keys()][0];
      if (victim) canaries[victim] = { health: 'unready' };
    }
    return canaries;
  }

  step(step: WorldStep): void {
    const before = structuredClone(this.release.status);
    if (step.kind === 'act') {
      try {
        this.release = { ...this.release, status: act(this.release, step.action, this.now).status };
      } catch (error) {
        expect((error as { code?: string }).code).toBe('GRAYLANE_ERR_INVALID_ACTION');
      }
    } else {
      this.now += step.ms;
      if (step.acks) this.acked = this.revision;
      const outcome = advance(
        this.release,
        { now: this.now, canaries: this.observe(step.healthy), applied: (r) => this.acked >= r },
        this.entry,
      );
      this.release = { ...this.release, status: outcome.status };
      for (const event of outcome.events) {
        const move = /^(\w+) -> (\w+):/.exec(event.message);
        if (move) expect(TRANSITIONS[move[1] as Phase]).toContain(move[2]);
      }
      this.converge(step.platformDone);
    }
    this.publish();
    this.check(before);
    this.phases.push(this.release.status.phase);
  }

  /** The platform's part: what each canary state asks for, done now or on a later tick. */
  converge(done: boolean): void {
    for (const [name, s] of Object.entries(this.release.status.services)) {
      if (['deploying', 'routed', 'unrouted', 'promoted'].includes(s.canary)) {
        if (!this.deployed.has(name)) this.deployed.set(name, 'starting');
        else if (done && this.deployed.get(name) === 'starting') this.deployed.set(name, 'ready');
      } else if ((s.canary === 'removing' || s.canary === 'retiring') && done) {
        this.deployed.delete(name);
      }
    }
  }

  /** The router's part: a new revision whenever what the table would say changes. */
  publish(): void {
    const { status } = this.release;
    const routing = JSON.stringify([
      status.entryRouted,
      status.weight,
      Object.entries(status.services).map(([n, s]) => [
        n,
        laneRouted(s.canary),
        s.canary === 'promoted' || s.canary === 'retiring',
      ]),
    ]);
    if (routing !== this.routing) {
      this.revision += 1;
      this.routing = routing;
    }
    if (status.awaitRevision === -1) status.awaitRevision = this.revision;
    for (const [name, s] of Object.entries(status.services)) {
      if (s.canary === 'unrouted' && !this.unroutedAt.has(name))
        this.unroutedAt.set(name, this.revision);
    }
  }

  check(before: Release['status']): void {
    const { status, spec } = this.release;
    if (isTerminal(before.phase)) {
      expect(status).toEqual(before);
      return;
    }
    expect(status.weight).toBeGreaterThanOrEqual(0);
    expect(status.weight).toBeLessThanOrEqual(100);
    if (status.weight > 0) expect(status.entryRouted).toBe(true);
    // The entry takes traffic into the lane only while every canary is in the route table.
    if (status.entryRouted)
      for (const s of Object.values(status.services)) expect(s.canary).toBe('routed');
    const deps = new Map(
      spec.services.map((s, i) => [
        s.name,
        s.dependsOn ?? (i > 0 ? [spec.services[i - 1]!.name] : []),
      ]),
    );
    for (const [name, s] of Object.entries(status.services)) {
      // Bottom-up: a canary is deployed only once what it calls is routed.
      if (status.phase === 'Deploying' && (s.canary === 'deploying' || s.canary === 'routed')) {
        for (const dep of deps.get(name) ?? []) expect(status.services[dep]!.canary).toBe('routed');
      }
      // Never stopped while a proxy may still send it traffic.
      if (s.canary === 'removing' && before.services[name]?.canary === 'unrouted') {
        expect(this.acked).toBeGreaterThanOrEqual(this.unroutedAt.get(name)!);
      }
      // Top-down: a callee leaves the table only after its callers did.
      if (
        status.phase === 'RollingBack' &&
        (s.canary === 'unrouted' || s.canary === 'removing') &&
        before.services[name]?.canary === 'routed'
      ) {
        for (const [caller, callerDeps] of deps) {
          if (callerDeps.includes(name)) expect(status.services[caller]!.canary).not.toBe('routed');
        }
        expect(status.entryRouted).toBe(false);
      }
    }
    if (status.phase === 'Succeeded')
      for (const s of Object.values(status.services)) expect(s.canary).toBe('retired');
    if (status.phase === 'RolledBack' || status.phase === 'Failed') {
      for (const s of Object.values(status.services)) expect(s.canary).toBe('removed');
      expect(this.deployed.size).toBe(0);
    }
  }
}

describe('the release state machine', () => {
  it('keeps its promises whatever the platform, the proxies and the users do', () => {
    fc.assert(
      fc.property(specArb, fc.array(stepArb, { maxLength: 80 }), ({ spec, entry }, steps) => {
        const world = new World(spec, entry);
        for (const step of steps) world.step(step);
      }),
      { numRuns: 400 },
    );
  });

  it('reaches Succeeded in a benign world (ready canaries, prompt proxies, approvals given)', () => {
    fc.assert(
      fc.property(specArb, ({ spec, entry }) => {
        const world = new World(spec, entry);
        for (let i = 0; i < 200 && world.release.status.phase !== 'Succeeded'; i++) {
          world.step(
            world.release.status.awaitingApproval
              ? { kind: 'act', action: 'approve' }
              : { kind: 'tick', ms: 2000, healthy: true, acks: true, platformDone: true },
          );
        }
        expect(world.release.status.phase).toBe('Succeeded');
        // Deploy order is the spec's dependency order; teardown is its reverse, entry first.
        const deployed = world.release.status.events
          .filter((e) => e.reason === 'CanaryDeploying')
          .map((e) => e.message.split(' ')[2]);
        expect(deployed).toEqual(deployOrder(spec.services));
        const retired = world.release.status.events
          .filter((e) => e.reason === 'Retiring')
          .map((e) => e.message.split(':')[0]);
        expect(retired).toEqual(teardownOrder(world.release, entry));
      }),
      { numRuns: 200 },
    );
  });

  it('rolls back from any phase before Finalising, and a second rollback changes nothing', () => {
    fc.assert(
      fc.property(specArb, fc.nat(30), ({ spec, entry }, ticks) => {
        const world = new World(spec, entry);
        for (let i = 0; i < ticks; i++)
          world.step({ kind: 'tick', ms: 500, healthy: true, acks: true, platformDone: true });
        const phase = world.release.status.phase;
        if (phase === 'Finalising' || phase === 'Succeeded') {
          expect(() => act(world.release, 'rollback', world.now)).toThrow(/cannot rollback/);
          return;
        }
        world.step({ kind: 'act', action: 'rollback' });
        const once = structuredClone(world.release.status);
        world.step({ kind: 'act', action: 'rollback' });
        expect(world.release.status).toEqual(once);
        for (let i = 0; i < 100 && world.release.status.phase === 'RollingBack'; i++) {
          world.step({ kind: 'tick', ms: 500, healthy: true, acks: true, platformDone: true });
        }
        expect(world.release.status.phase).toBe('RolledBack');
      }),
      { numRuns: 300 },
    );
  });

  it('a pure function: the same input gives the same output and the input is not changed', () => {
    fc.assert(
      fc.property(specArb, ({ spec, entry }) => {
        const release: Release = {
          apiVersion: 'graylane.dev/v1alpha1',
          kind: 'Release',
          metadata: { name: 'r' },
          spec,
          status: initialStatus(spec, 0),
        };
        const copy = structuredClone(release);
        const observations = { now: 5, canaries: {}, applied: () => true };
        expect(advance(release, observations, entry)).toEqual(
          advance(release, observations, entry),
        );
        expect(release).toEqual(copy);
      }),
    );
  });
});
