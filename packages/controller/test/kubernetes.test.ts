import { CoordinationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, until } from './graylane.js';
import { grayShopRelease, type ShopCluster, startShopCluster } from './kube-shop.js';

/**
 * Kubernetes mode against a real kube-apiserver + etcd. There is no kubelet or controller-manager:
 * the test plays their part (it creates the Pods a Deployment would run and sets Deployment status),
 * and says so. The controller runs as the shipped ServiceAccount with exactly the shipped Role.
 */
describe('Kubernetes mode on a real API server', () => {
  let shop: ShopCluster;

  beforeAll(async () => {
    shop = await startShopCluster();
  }, 1_800_000);

  afterAll(async () => {
    await shop?.stop();
  });

  it('refuses a Release the CRD schema rejects, and reports one whose references are wrong as a condition', async () => {
    const invalid = shop.createRelease('bad', {
      lane: 'gray',
      entrypoint: 'shop',
      services: [
        { name: 'backend', canary: { version: 'v2', image: 'b:2', endpoints: ['http://x:1'] } },
      ],
      steps: [{ weight: 150 }],
    });
    await expect(invalid).rejects.toMatchObject({ code: 422 });
    await shop.startController();
    await shop.createRelease('ghost', {
      lane: 'blue',
      entrypoint: 'shop',
      services: [{ name: 'payments', canary: { version: 'v2', image: 'p:2' } }],
      steps: [{ weight: 10 }],
    });
    const reported = await until(
      () => shop.release('ghost'),
      (r) => (r.status?.conditions ?? []).some((c) => c.type === 'Valid' && c.status === 'False'),
      30_000,
    );
    expect(reported.status?.conditions?.[0]?.message).toContain(
      'spec.services[0].name: no Deployment "payments"',
    );
    await shop.deleteRelease('ghost');
  });

  it('deploys canary Deployments bottom-up, routes the lane to their pods, promotes through the user Deployments', async () => {
    const owner = await shop.createRelease(
      'checkout-v2',
      grayShopRelease([{ weight: 20 }, { pause: {} }]),
    );
    const backendCanary = await shop.waitForDeployment('backend-gray');
    expect(backendCanary.metadata?.labels).toMatchObject({
      'graylane.dev/lane': 'gray',
      'graylane.dev/service': 'backend',
      'graylane.dev/version': 'v2',
    });
    expect(backendCanary.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: 'Release',
      name: 'checkout-v2',
      uid: owner.metadata.uid,
    });
    expect(backendCanary.spec?.template.metadata?.labels?.app).toBeUndefined();
    // Bottom-up: the frontend's canary waits until the backend's is available.
    await sleep(1_000);
    expect(await shop.deploymentOrUndefined('frontend-gray')).toBeUndefined();
    const backendIp = await shop.runPods('backend-gray');
    await shop.waitForDeployment('frontend-gray');
    await shop.runPods('frontend-gray');
    const paused = await shop.waitForPhase('checkout-v2', 'Paused');
    expect(paused.status?.weight).toBe(20);
    // The route table (mirrored in a ConfigMap before it is served) sends gray to the canary pods.
    const table = await shop.mirroredTable();
    expect(table.services.backend?.lanes.gray?.endpoints).toEqual([`http://${backendIp}:8080`]);
    await shop.annotate('checkout-v2', 'approve:1');
    // Promotion: the user's Deployments take the canary template; the test rolls them out.
    const patched = await shop.rollOutPromotion('frontend', 'frontend:2');
    expect(patched.spec?.template.metadata?.labels).toMatchObject({
      app: 'frontend',
      team: 'shop',
      'graylane.dev/version': 'v2',
    });
    await shop.rollOutPromotion('backend', 'backend:2');
    const done = await shop.waitForPhase('checkout-v2', 'Succeeded');
    expect(done.status?.phase).toBe('Succeeded');
    expect(await shop.deploymentOrUndefined('backend-gray')).toBeUndefined();
    expect(await shop.deploymentOrUndefined('frontend-gray')).toBeUndefined();
    expect(await shop.eventReasons('checkout-v2')).toEqual(
      expect.arrayContaining(['CanaryReady', 'Approved', 'Finalised']),
    );
  });

  it('hands the release to the other replica when the leader dies, and it goes on from the status', async () => {
    const second = await shop.startController();
    await shop.createRelease('checkout-v3', {
      lane: 'gray',
      entrypoint: 'shop',
      services: [{ name: 'backend', canary: { version: 'v3', image: 'backend:3' } }],
      steps: [{ pause: {} }],
    });
    await shop.waitForDeployment('backend-gray');
    await shop.runPods('backend-gray');
    await shop.waitForPhase('checkout-v3', 'Paused');
    const leader = shop.controllers[0]!;
    leader.kill('SIGKILL');
    const killedAt = Date.now();
    const lease = await until(
      () =>
        shop.env.kc
          .makeApiClient(CoordinationV1Api)
          .readNamespacedLease({ name: 'graylane-controller', namespace: shop.namespace }),
      (l) =>
        l.spec?.holderIdentity !== undefined && !l.spec.holderIdentity.endsWith(`-${leader.pid}`),
      30_000,
    );
    const takeover = Date.now() - killedAt;
    expect(lease.spec?.holderIdentity).toMatch(new RegExp(`-${second.pid}$`));
    // The lease (3 s) runs out at most 3 s after the kill; the other replica checks every 1 s. The
    // rest is a margin for a loaded machine (5 s measured with a load average of 16).
    expect(takeover).toBeLessThan(3_000 + 1_000 + 4_000);
    await shop.annotate('checkout-v3', 'rollback:1');
    const rolled = await shop.waitForPhase('checkout-v3', 'RolledBack');
    process.stdout.write(
      `failover: the other replica led ${takeover} ms after the leader was killed (lease 3 s); the rollback was done ${Date.now() - killedAt} ms after\n`,
    );
    expect(rolled.status?.phase).toBe('RolledBack');
    expect(await shop.deploymentOrUndefined('backend-gray')).toBeUndefined();
    expect(second.exitCode).toBeNull();
  });
});
