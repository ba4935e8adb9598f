import type { ChildProcess } from 'node:child_process';
import { makeInformer, type V1ConfigMap } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mirroredTableText } from '../src/kubernetes/route-table-mirror.js';
import { until } from './graylane.js';
import { grayShopRelease, type ShopCluster, startShopCluster } from './kube-shop.js';

/**
 * One controller, killed (SIGKILL) in the middle of a release and started again: once while it
 * deploys the canaries bottom-up, once while a step waits for approval. The new process has nothing
 * but the cluster: the Release's status, the canary Deployments and the route table it mirrored.
 */
describe('Kubernetes mode: a controller restarted mid-release', () => {
  let shop: ShopCluster;
  /** Every revision of the route table the controllers mirrored, in the order the API server saw them. */
  const mirrored: number[] = [];
  let stopWatching: () => Promise<void>;

  beforeAll(async () => {
    shop = await startShopCluster();
    const { env, namespace } = shop;
    const informer = makeInformer<V1ConfigMap>(
      env.kc,
      `/api/v1/namespaces/${namespace}/configmaps`,
      () =>
        env.core.listNamespacedConfigMap({
          namespace,
          fieldSelector: 'metadata.name=graylane-routetable',
        }),
      undefined,
      'metadata.name=graylane-routetable',
    );
    const record = (map: V1ConfigMap) =>
      mirrored.push((JSON.parse(mirroredTableText(map) ?? '{}') as { revision: number }).revision);
    informer.on('add', record);
    informer.on('update', record);
    await informer.start();
    stopWatching = () => informer.stop();
  }, 1_800_000);

  afterAll(async () => {
    await stopWatching?.();
    await shop?.stop();
  });

  async function kill(controller: ChildProcess): Promise<void> {
    const exited = new Promise((resolve) => controller.once('exit', resolve));
    controller.kill('SIGKILL');
    await exited;
  }

  it('resumes from the status: no second canary, no step lost or repeated, events go on, the revision only grows', async () => {
    let controller = await shop.startController();
    await shop.createRelease(
      'restarted',
      grayShopRelease([{ weight: 20 }, { pause: {} }, { weight: 50 }]),
    );

    // Killed while Deploying: the backend's canary exists and is not ready yet.
    const backendCanary = await shop.waitForDeployment('backend-gray');
    const deploying = await shop.waitForPhase('restarted', 'Deploying');
    await kill(controller);
    // It becomes ready while no controller runs.
    await shop.runPods('backend-gray');
    let startedAt = Date.now();
    controller = await shop.startController();
    const frontendCanary = await shop.waitForDeployment('frontend-gray');
    const deployResumed = Date.now() - startedAt;
    const again = await shop.deploymentOrUndefined('backend-gray');
    expect(again?.metadata?.uid).toBe(backendCanary.metadata?.uid);
    expect(again?.metadata?.generation).toBe(backendCanary.metadata?.generation);
    await shop.runPods('frontend-gray');
    const paused = await shop.waitForPhase('restarted', 'Paused');
    expect(paused.status).toMatchObject({ step: 1, weight: 20 });
    expect(paused.status!.events!.length).toBeGreaterThan(deploying.status!.events!.length);

    // Killed while a step waits for approval; the next process goes on from that step.
    await kill(controller);
    startedAt = Date.now();
    controller = await shop.startController();
    await shop.annotate('restarted', 'approve:1');
    await until(
      () => shop.release('restarted'),
      (r) => r.status?.step === 2,
      30_000,
    );
    const approvalResumed = Date.now() - startedAt;
    await shop.rollOutPromotion('frontend', 'frontend:2', 60_000);
    await shop.rollOutPromotion('backend', 'backend:2');
    const done = await shop.waitForPhase('restarted', 'Succeeded');

    const events = done.status!.events!;
    expect(events.filter((e) => e.reason === 'Weight').map((e) => e.message)).toEqual([
      'step 1: 20% of entry traffic to lane gray',
      'step 3: 50% of entry traffic to lane gray',
    ]);
    expect(events.filter((e) => e.reason === 'CanaryDeploying')).toHaveLength(2);
    expect(events.filter((e) => e.reason === 'CanaryReady')).toHaveLength(2);
    // Every status event is a core Event, once, across the three processes.
    expect((await shop.eventReasons('restarted')).sort()).toEqual(
      events.map((e) => e.reason).sort(),
    );
    const canaries = await shop.env.apps.listNamespacedDeployment({
      namespace: shop.namespace,
      labelSelector: 'graylane.dev/lane=gray',
    });
    expect(canaries.items.map((d) => d.metadata?.name)).toEqual([]);
    expect(frontendCanary.metadata?.ownerReferences?.[0]?.name).toBe('restarted');
    process.stdout.write(
      `restart: the new controller deployed the next canary ${deployResumed} ms after it started, and applied an approval ${approvalResumed} ms after it started\n`,
    );
    // Its predecessor's Lease (3 s) runs out, it checks every 1 s, then the next canary waits for
    // the route table's grace for proxies to reconnect (10 s); the approval only for the Lease. The
    // rest is a margin for a loaded machine.
    expect(deployResumed).toBeLessThan(3_000 + 1_000 + 10_000 + 6_000);
    expect(approvalResumed).toBeLessThan(3_000 + 1_000 + 6_000);
    // Every mirrored table had a higher revision than the one before it.
    expect(mirrored.length).toBeGreaterThan(2);
    for (let i = 1; i < mirrored.length; i++)
      expect(mirrored[i], `mirror write ${i} of ${mirrored.join(', ')}`).toBeGreaterThan(
        mirrored[i - 1]!,
      );
  });
});
