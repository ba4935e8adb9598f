import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, exampleRun, sample, startStack, until } from '../../examples/demo/stack.mjs';

/**
 * "Replica ratio", a plain Kubernetes Service over the pods of both versions: the share of traffic a
 * version gets is its share of the instances. A Release with `trafficFromReplicas` splits the entry
 * that way; the rows are the usual rollout 4/0, 3/1, 2/2, 1/3, 0/4 (stable/canary instances).
 */
type Stack = Awaited<ReturnType<typeof startStack>>;
const USERS = 1000;
const user = (i: number) => ({ 'x-user': `user-${i}` });
const doc = (kind: string, name: string, spec: unknown) => ({
  apiVersion: 'graylane.dev/v1alpha1',
  kind,
  metadata: { name },
  spec,
});
const service = (replicas: number) =>
  doc('Service', 'web', {
    stable: { version: 'v1', run: { ...exampleRun('backend', 'v1'), replicas } },
  });
const release = (replicas: number) =>
  doc('Release', 'web-v2', {
    lane: 'gray',
    entrypoint: 'web',
    services: [
      { name: 'web', canary: { version: 'v2', run: { ...exampleRun('backend', 'v2'), replicas } } },
    ],
    sticky: 'header:x-user',
    trafficFromReplicas: true,
    steps: [{ pause: {} }],
  });

describe('replica ratio: the entry split follows the instance counts', () => {
  let stack: Stack;
  const figures: string[] = [];

  const running = async (prefix: string) =>
    (await stack.processes()).filter(
      (p: { id: string; health: string }) => p.id.startsWith(prefix) && p.health === 'ready',
    );

  async function share() {
    const counts = await sample(stack.gateway, USERS, user);
    expect(
      [...counts.keys()].every((k) => k === 'backend v1' || k === 'backend v2'),
      JSON.stringify([...counts]),
    ).toBe(true);
    return (counts.get('backend v2') ?? 0) / USERS;
  }

  async function row(stable: number, canary: number, expected: number) {
    const measured = await share();
    figures.push(
      `${stable}/${canary}: ${(measured * 100).toFixed(1)} % to v2 (expected ${expected * 100} %)`,
    );
    // ±5 points: the users are fixed, so this is the same figure every run, not a sample.
    expect(measured).toBeGreaterThanOrEqual(expected - 0.05);
    expect(measured).toBeLessThanOrEqual(expected + 0.05);
  }

  beforeAll(async () => {
    stack = await startStack();
    await stack.apply([
      service(4),
      doc('Entrypoint', 'web', { service: 'web', clientLanes: 'off' }),
    ]);
    await until(
      '4 stable instances',
      () => running('web.stable.'),
      (r: unknown[]) => r.length === 4,
    );
    await until(
      'the entry',
      () => sample(stack.gateway, 1),
      (c: Map<string, number>) => c.get('backend v1') === 1,
    );
  }, 180_000);

  afterAll(async () => {
    const pids = (await stack.processes()).map((p: { pid: number }) => p.pid);
    expect(await stack.stop()).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
    console.log(`[figures] replica ratio over ${USERS} users:\n  ${figures.join('\n  ')}`);
  });

  it('4/0: no canary, no traffic to v2', async () => {
    await row(4, 0, 0);
  });

  it.each([
    [3, 1, 0.25],
    [2, 2, 0.5],
    [1, 3, 0.75],
  ])(
    '%i/%i: %f of the traffic to v2',
    async (stable, canary, expected) => {
      await stack.apply([service(stable)]);
      await until(
        `${stable} stable instances`,
        () => running('web.stable.'),
        (r: unknown[]) => r.length === stable,
      );
      await stack.apply([release(canary)]);
      await stack.waitForPhase('web-v2', 'Paused');
      expect(await running('web.gray.')).toHaveLength(canary);
      await row(stable, canary, expected);
      await stack.act('web-v2', 'rollback');
      await stack.waitForPhase('web-v2', 'RolledBack');
    },
    120_000,
  );

  it('0/4: the canary promoted, every instance is v2 and takes all the traffic', async () => {
    await stack.apply([release(4)]);
    await stack.waitForPhase('web-v2', 'Paused');
    await stack.act('web-v2', 'promote');
    await stack.waitForPhase('web-v2', 'Succeeded');
    await until(
      '4 v2 instances as stable',
      () => running('web.'),
      (r: unknown[]) => r.length === 4,
    );
    await row(0, 4, 1);
  }, 120_000);
});
