import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from './graylane.js';
import { apiserverRequests } from './kube-env.js';
import { grayShopRelease, type ShopCluster, startShopCluster } from './kube-shop.js';

/**
 * Optimistic concurrency on a real API server: the controller writes a Release's status with the
 * resourceVersion it read, so a write that raced another writer gets 409 Conflict. Here a user
 * (the test) keeps changing the Release's labels and annotations while it runs, which bumps the
 * resourceVersion without changing the generation, so many of the controller's writes are stale.
 */
describe('Kubernetes mode: conflicts on a Release', () => {
  let shop: ShopCluster;

  beforeAll(async () => {
    shop = await startShopCluster();
    await shop.startController();
  }, 1_800_000);

  afterAll(async () => {
    await shop?.stop();
  });

  /** Merge-patches a label and an annotation of the Release back to back until stopped. */
  function churn(name: string) {
    let running = true;
    let writes = 0;
    const done = (async () => {
      while (running) {
        const n = String(++writes);
        await shop.patchRelease(name, {
          metadata: { labels: { churn: n }, annotations: { 'example.com/churn': n } },
        });
      }
    })();
    return {
      async stop() {
        running = false;
        await done;
        return writes;
      },
    };
  }

  const statusConflicts = () =>
    apiserverRequests(shop.env, {
      resource: 'releases',
      subresource: 'status',
      verb: 'PUT',
      code: '409',
    });

  it('retries a status write that met a stale resourceVersion: every step, event and user edit lands', async () => {
    const conflictsBefore = await statusConflicts();
    await shop.createRelease(
      'churned',
      grayShopRelease([{ weight: 20 }, { pause: {} }, { weight: 60 }, { pause: {} }]),
    );
    const churning = churn('churned');
    await shop.waitForDeployment('backend-gray');
    await shop.runPods('backend-gray');
    await shop.waitForDeployment('frontend-gray');
    await shop.runPods('frontend-gray');
    const first = await shop.waitForPhase('churned', 'Paused');
    expect(first.status).toMatchObject({ step: 1, weight: 20 });
    await shop.annotate('churned', 'approve:1');
    await until(
      () => shop.release('churned'),
      (r) => r.status?.phase === 'Paused' && r.status.step === 3,
      30_000,
    );
    // A spec edit while paused: one more weight step. The controller writes only status, so the
    // edit stays, and the release goes through it.
    const edited = await shop.patchRelease('churned', {
      spec: {
        steps: [{ weight: 20 }, { pause: {} }, { weight: 60 }, { pause: {} }, { weight: 80 }],
      },
    });
    await shop.annotate('churned', 'approve:2');
    // Promotion goes top-down: the entry service first.
    await shop.rollOutPromotion('frontend', 'frontend:2');
    await shop.rollOutPromotion('backend', 'backend:2');
    const done = await shop.waitForPhase('churned', 'Succeeded');
    const writes = await churning.stop();
    const conflicts = (await statusConflicts()) - conflictsBefore;
    process.stdout.write(
      `conflicts: ${writes} label/annotation writes during the release; ${conflicts} status writes met 409 and were recomputed\n`,
    );
    // The race was real: without a stale write this test would prove nothing.
    expect(conflicts).toBeGreaterThan(0);

    const reasons = done.status!.events!.map((e) => e.reason);
    // Every step landed, the added one too, in order, each once.
    expect(done.status!.events!.filter((e) => e.reason === 'Weight').map((e) => e.message)).toEqual(
      [
        'step 1: 20% of entry traffic to lane gray',
        'step 3: 60% of entry traffic to lane gray',
        'step 5: 80% of entry traffic to lane gray',
      ],
    );
    expect(reasons.filter((r) => r === 'AwaitingApproval')).toHaveLength(2);
    expect(reasons.slice(-5)).toEqual([
      'StepsDone',
      'Promoted',
      'Retiring',
      'Retiring',
      'Finalised',
    ]);
    // Every event in the status is a core Event too, once.
    expect((await shop.eventReasons('churned')).sort()).toEqual([...reasons].sort());
    // The user's edits are all there: the controller wrote nothing but status.
    const final = await shop.release('churned');
    expect(final.metadata.labels?.churn).toBe(String(writes));
    expect(final.metadata.annotations).toMatchObject({
      'example.com/churn': String(writes),
      'graylane.dev/request': 'approve:2',
    });
    expect(final.spec.steps).toEqual(edited.spec.steps);
    expect(final.status?.observedGeneration).toBe(final.metadata.generation);
  });
});
