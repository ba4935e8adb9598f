import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from './graylane.js';
import { grayShopRelease, type ShopCluster, startShopCluster } from './kube-shop.js';

/**
 * Deleting a Release in a cluster: its canary Deployments go with it through their ownerReferences,
 * deleted by kube-controller-manager's garbage collector (run here, alone of its controllers), not
 * by graylane, which is not even running at the time. The user's Deployments are untouched, and
 * the next controller publishes a route table without the lane.
 */
describe('Kubernetes mode: deleting a Release garbage-collects its canaries', () => {
  let shop: ShopCluster;

  beforeAll(async () => {
    shop = await startShopCluster('shop', { garbageCollector: true });
  }, 1_800_000);

  afterAll(async () => {
    await shop?.stop();
  });

  it('removes both canary Deployments and the lane, and leaves the stable ones as they were', async () => {
    await shop.startController();
    const stableBefore = await Promise.all(
      ['backend', 'frontend'].map((name) => shop.waitForDeployment(name)),
    );
    await shop.createRelease('checkout-v2', grayShopRelease([{ weight: 20 }, { pause: {} }]));
    await shop.waitForDeployment('backend-gray');
    await shop.runPods('backend-gray');
    await shop.waitForDeployment('frontend-gray');
    await shop.runPods('frontend-gray');
    await shop.waitForPhase('checkout-v2', 'Paused', 60_000);
    expect(Object.keys((await shop.mirroredTable()).services.backend?.lanes ?? {})).toContain(
      'gray',
    );

    // With graylane stopped, so what deletes the canaries can only be the garbage collector.
    const controller = shop.controllers[0]!;
    controller.kill('SIGKILL');
    await once(controller, 'exit');
    await shop.deleteRelease('checkout-v2');

    for (const name of ['backend-gray', 'frontend-gray']) {
      await until(
        () => shop.deploymentOrUndefined(name),
        (d) => d === undefined,
        60_000,
      );
    }
    // The next controller publishes a table without the lane.
    await shop.startController();
    await until(
      () => shop.mirroredTable(),
      (table) =>
        Object.values(table.services).every((service) => !('gray' in (service.lanes ?? {}))),
      30_000,
    );
    const stableAfter = await Promise.all(
      ['backend', 'frontend'].map((name) => shop.waitForDeployment(name)),
    );
    for (const [i, before] of stableBefore.entries()) {
      expect(stableAfter[i]!.metadata?.generation).toBe(before.metadata?.generation);
      expect(stableAfter[i]!.spec?.template).toEqual(before.spec?.template);
    }
  });
});
