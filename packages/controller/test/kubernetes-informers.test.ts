import { Writable } from 'node:stream';
import { AppsV1Api, KubeConfig, makeInformer, type V1Deployment } from '@kubernetes/client-node';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeepWatching } from '../src/kubernetes/keep-watching.js';
import { sleep, until } from './graylane.js';
import { type KubeEnv, type Partition, partition, startKube } from './kube-env.js';

/**
 * Every informer of the controller is kept by KeepWatching: through an outage it lists again after
 * a pause that doubles (1, 2, 4 s...), not every second; it catches up once the API server is
 * reachable again; and once stopped it stays stopped (the client reports its own stop as an error).
 */
describe('Kubernetes mode: informers through an outage', () => {
  let env: KubeEnv;
  let path: Partition;
  const failures: Array<{ retryInMs: number; at: number }> = [];

  beforeAll(async () => {
    env = await startKube();
    path = await partition(env);
  }, 1_800_000);

  afterAll(async () => {
    await path?.close();
    await env?.stop();
  });

  it('backs off while the API server is unreachable, catches up after, and stays stopped', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(env.kubeconfig);
    const cluster = kc.getCurrentCluster()!;
    kc.clusters = [{ ...cluster, server: path.url }];
    const apps = kc.makeApiClient(AppsV1Api);
    const informer = makeInformer(kc, '/apis/apps/v1/namespaces/default/deployments', () =>
      apps.listNamespacedDeployment({ namespace: 'default' }),
    );
    const logs = new Writable({
      write(chunk, _encoding, done) {
        const line = JSON.parse(String(chunk)) as { retryInMs?: number };
        if (line.retryInMs !== undefined)
          failures.push({ retryInMs: line.retryInMs, at: Date.now() });
        done();
      },
    });
    const watching = new KeepWatching(informer, 'deployments', pino({ level: 'warn' }, logs));
    const deployment = (name: string): V1Deployment => ({
      metadata: { name },
      spec: {
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: { containers: [{ name: 'app', image: `${name}:1` }] },
        },
      },
    });
    await env.apps.createNamespacedDeployment({ namespace: 'default', body: deployment('before') });
    await watching.start();
    await until(
      async () => informer.list('default').map((d) => d.metadata?.name),
      (names) => names.includes('before'),
    );

    await path.cut();
    const cutAt = Date.now();
    await sleep(8_000);
    const during = failures.filter((f) => f.at >= cutAt);
    // Retries after 1, 2 and 4 s: at most four failures in 8 s (one a second would be eight).
    expect(during.length).toBeGreaterThanOrEqual(2);
    expect(during.length).toBeLessThanOrEqual(4);
    expect(during.map((f) => f.retryInMs)).toEqual(
      [1_000, 2_000, 4_000, 8_000].slice(0, during.length),
    );

    // Made while the informer could not see it: listed once the path is back.
    await env.apps.createNamespacedDeployment({ namespace: 'default', body: deployment('during') });
    await path.heal();
    await until(
      async () => informer.list('default').map((d) => d.metadata?.name),
      (names) => names.includes('during'),
      30_000,
    );

    await watching.stop();
    const stoppedAt = Date.now();
    await env.apps.createNamespacedDeployment({ namespace: 'default', body: deployment('after') });
    await sleep(3_000);
    expect(failures.filter((f) => f.at >= stoppedAt)).toEqual([]);
    expect(informer.list('default').map((d) => d.metadata?.name)).not.toContain('after');
  });
});
