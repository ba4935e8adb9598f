import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  alive,
  applyShop,
  hit,
  sample,
  shopRelease,
  startStack,
  until,
} from '../../examples/demo/stack.mjs';

/**
 * "Multi-app canary", the OpenShift routes + pipelines scenario: two services released as one, a
 * 70/30 entry split, canary calls canary, rollback front first, promotion without a failed request.
 * The example services run as the controller's processes, behind its gateway and sidecar.
 */
const V1 = 'frontend v1 -> backend v1';
const V2 = 'frontend v2 -> backend v2';
const GRAY = { 'x-lane': 'gray' };
const STEPS = [{ pause: {} }, { weight: 30 }, { pause: {} }];
/** 1000 distinct users: the split is sticky by x-user, so the same users give the same share each run. */
const USERS = 1000;
const user = (i: number) => ({ 'x-user': `user-${i}` });

type Stack = Awaited<ReturnType<typeof startStack>>;
type Release = {
  status: {
    phase: string;
    weight: number;
    events: Array<{ reason: string; message: string }>;
    services: Record<string, { health: string }>;
  };
};

describe('multi-app canary: frontend and backend released as one', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack();
    await applyShop(stack);
  }, 180_000);

  afterAll(async () => {
    const pids = (await stack.processes()).map((p: { pid: number }) => p.pid);
    expect(await stack.stop()).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
  });

  it('deploys bottom-up; before any weight only tagged requests reach v2, and they go v2 -> v2', async () => {
    await stack.apply([shopRelease('shop-v2', STEPS)]);
    const release: Release = await stack.waitForPhase('shop-v2', 'Paused');
    const reasons = release.status.events.map((e) => `${e.reason} ${e.message}`);
    const backendRouted = reasons.findIndex((r) => r.startsWith('CanaryReady canary backend'));
    const frontendStarts = reasons.findIndex((r) =>
      r.startsWith('CanaryDeploying deploying canary frontend'),
    );
    expect(backendRouted).toBeGreaterThan(-1);
    expect(backendRouted).toBeLessThan(frontendStarts);
    expect([...(await sample(stack.gateway, 100, user))]).toEqual([[V1, 100]]);
    const tagged = await sample(stack.gateway, 20, () => GRAY);
    expect([...tagged]).toEqual([[V2, 20]]);
  });

  it('splits the entry 70/30 within ±3 % over 1000 users, and every request that entered v2 stayed on v2', async () => {
    await stack.act('shop-v2', 'approve');
    await until(
      'the 30 % step',
      () => stack.release('shop-v2'),
      (r: Release) => r.status.phase === 'Paused' && r.status.weight === 30,
    );
    const counts = await sample(stack.gateway, USERS, user);
    // Only whole paths: a frontend v2 never calls backend v1, a frontend v1 never backend v2.
    expect([...counts.keys()].sort()).toEqual([V1, V2]);
    const share = counts.get(V2)! / USERS;
    console.log(`[figures] entry split at weight 30: ${(share * 100).toFixed(1)} % of ${USERS}`);
    expect(share).toBeGreaterThanOrEqual(0.27);
    expect(share).toBeLessThanOrEqual(0.33);
  }, 120_000);

  it('falls back to backend v1 while the backend canary is down, with the fallback in x-lane-served', async () => {
    const down = await until(
      'a tagged request while the backend canary is down',
      async () => {
        const canary = (await stack.processes()).find(
          (p: { id: string }) => p.id === 'backend.gray.0',
        );
        if (canary?.health === 'ready') process.kill(canary.pid, 'SIGKILL');
        return await hit(stack.gateway, GRAY);
      },
      (r: { body: string }) => r.body !== V2,
    );
    expect(down.status).toBe(200);
    expect(down.body).toBe('frontend v2 -> backend v1');
    expect(down.served).toMatch(/^frontend=gray, backend=stable;fallback=\w+$/);
    const back = await until(
      'tagged traffic back on the restarted canary',
      () => hit(stack.gateway, GRAY),
      (r: { body: string }) => r.body === V2,
    );
    expect(back.served).toBe('frontend=gray, backend=gray');
  }, 120_000);

  it('rolls back front first: the entry leaves the lane before the backend canary is removed', async () => {
    const before = (await stack.release('shop-v2')).status.events.length;
    await stack.act('shop-v2', 'rollback');
    const rolled: Release = await stack.waitForPhase('shop-v2', 'RolledBack');
    const reasons = rolled.status.events.slice(before).map((e) => `${e.reason} ${e.message}`);
    const entryClosed = reasons.findIndex((r) => r.startsWith('EntryClosed'));
    const frontendRemoved = reasons.findIndex(
      (r) => r.startsWith('CanaryRemoving') && r.includes('frontend'),
    );
    const backendRemoved = reasons.findIndex(
      (r) => r.startsWith('CanaryRemoving') && r.includes('backend'),
    );
    expect(entryClosed).toBeGreaterThan(-1);
    expect(entryClosed).toBeLessThan(frontendRemoved);
    expect(frontendRemoved).toBeLessThan(backendRemoved);
    expect([...(await sample(stack.gateway, 50, user))]).toEqual([[V1, 50]]);
    expect([...(await sample(stack.gateway, 10, () => GRAY))]).toEqual([[V1, 10]]);
  }, 120_000);

  it('redeploys and promotes with zero failed requests; the old versions are gone', async () => {
    await stack.apply([shopRelease('shop-v2', STEPS)]);
    await stack.waitForPhase('shop-v2', 'Paused');
    const v1 = (await stack.processes())
      .filter((p: { id: string }) => p.id.includes('.stable.'))
      .map((p: { pid: number }) => p.pid);
    expect(v1).toHaveLength(2);
    let sending = true;
    const outcomes: string[] = [];
    // Two clients at once, so requests are in flight at every instant of the switch.
    const clients = [0, 1].map(async (c) => {
      for (let i = 0; sending; i++) {
        const r = await hit(stack.gateway, user(c * 100_000 + i)).catch((error: Error) => ({
          status: 0,
          body: error.message,
        }));
        outcomes.push(r.status === 200 ? 'ok' : `${r.status} ${r.body}`);
      }
    });
    await stack.act('shop-v2', 'promote');
    await stack.waitForPhase('shop-v2', 'Succeeded');
    sending = false;
    await Promise.all(clients);
    console.log(`[figures] requests during the promotion: ${outcomes.length}`);
    expect(outcomes.length).toBeGreaterThan(10);
    expect(outcomes.filter((o) => o !== 'ok')).toEqual([]);
    expect([...(await sample(stack.gateway, 50, user))]).toEqual([[V2, 50]]);
    expect(v1.filter(alive)).toEqual([]);
  }, 90_000);
});
