import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from './graylane.js';
import { apiserverRequests, type Partition, partition } from './kube-env.js';
import { type ShopCluster, startShopCluster } from './kube-shop.js';

/**
 * A watch that expires. The controller reaches the API server through a path the test cuts; while
 * it is cut off, releases are approved, deleted and created, etcd's history is compacted and the API
 * server restarts (its watch cache starts empty). When the path heals, a watch from the controller's
 * last resourceVersion can only be answered 410 Gone: the controller must list again, and act on
 * what it missed, deletions included.
 */
describe('Kubernetes mode: a watch that expires', () => {
  let shop: ShopCluster;
  let path: Partition;

  beforeAll(async () => {
    shop = await startShopCluster();
    path = await partition(shop.env);
  }, 1_800_000);

  afterAll(async () => {
    await path?.close();
    await shop?.stop();
  });

  /** LISTs of a resource the API server answered since it (re)started. */
  const lists = (resource: string) => apiserverRequests(shop.env, { resource, verb: 'LIST' });

  it('lists again after 410 Gone and acts on the approvals, deletions and creations it missed', async () => {
    // At log level error: every informer warns of its broken watch each second while cut off.
    await shop.startController({ server: path.url, args: ['--log-level', 'error'] });
    await shop.createRelease('held', {
      lane: 'gray',
      entrypoint: 'shop',
      services: [{ name: 'backend', canary: { version: 'v2', image: 'backend:2' } }],
      steps: [{ pause: {} }],
    });
    await shop.createRelease('dropped', {
      lane: 'blue',
      entrypoint: 'shop',
      services: [{ name: 'frontend', canary: { version: 'v2', image: 'frontend:2' } }],
      steps: [{ pause: {} }],
    });
    await shop.waitForDeployment('backend-gray');
    await shop.runPods('backend-gray');
    await shop.waitForDeployment('frontend-blue');
    await shop.runPods('frontend-blue');
    await shop.waitForPhase('held', 'Paused');
    await shop.waitForPhase('dropped', 'Paused');
    const before = await until(
      () => shop.mirroredTable(),
      (t) =>
        t.services.backend?.lanes.gray !== undefined &&
        t.services.frontend?.lanes.blue !== undefined,
    );

    await path.cut();
    await shop.annotate('held', 'approve:1');
    await shop.deleteRelease('dropped');
    // Only a controller that saw the deletion takes this one: `frontend` was in `dropped`.
    await shop.createRelease('added', {
      lane: 'green',
      entrypoint: 'shop',
      services: [{ name: 'frontend', canary: { version: 'v3', image: 'frontend:3' } }],
      steps: [{ pause: {} }],
    });
    const compactedAt = await shop.env.compact();
    await shop.env.restartApiserver();
    expect(await lists('releases')).toBe(0);
    await path.heal();
    const healedAt = Date.now();

    // The approval it missed: the held release promotes through the user's backend Deployment.
    await shop.rollOutPromotion('backend', 'backend:2');
    await shop.waitForPhase('held', 'Succeeded');
    // The creation it missed, and the deletion (else `added` would share frontend with a ghost).
    const green = await shop.waitForDeployment('frontend-green');
    expect(green.metadata?.ownerReferences?.[0]?.name).toBe('added');
    await shop.runPods('frontend-green');
    const added = await shop.waitForPhase('added', 'Paused');
    expect(added.status?.conditions?.find((c) => c.type === 'Valid')?.status).toBe('True');
    const after = await until(
      () => shop.mirroredTable(),
      (t) =>
        t.services.frontend?.lanes.green !== undefined &&
        t.services.frontend.lanes.blue === undefined,
      30_000,
    );
    expect(after.revision).toBeGreaterThan(before.revision);
    // It listed again (an informer lists only at its start and after 410 Gone): the watch from
    // before the restart was refused, not resumed.
    for (const resource of ['releases', 'deployments', 'pods'])
      expect(await lists(resource), resource).toBeGreaterThan(0);
    process.stdout.write(
      `watch expiry: etcd compacted at revision ${compactedAt}; the controller caught up ${Date.now() - healedAt} ms after the path healed (the test ran the pods in between)\n`,
    );
  });
});
