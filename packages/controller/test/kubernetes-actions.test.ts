import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayLoad } from './analysis/load.js';
import { type RunningPrometheus, startPrometheus } from './analysis/prometheus-server.js';
import { APP, cleanup, freePort, freePorts, hit, RUN_ID, runCli, until } from './graylane.js';
import { openWatch } from './helpers.js';
import { GROUP, type ReleaseObject, type ShopCluster, startShopCluster } from './kube-shop.js';

/**
 * Kubernetes mode with a real data plane: the "pods" of service `web` are fixture apps on
 * 127.0.0.1 (each version on its own port, which its Deployment's container port names), a real
 * graylane-proxy gateway watches the controller's route table, and analysis reads the gateway's
 * metrics, directly or through a real Prometheus server.
 */
const PROXY_BIN = join(
  dirname(createRequire(import.meta.url).resolve('@graylane/router-proxy')),
  'main.js',
);
const children: ChildProcess[] = [];

function spawnChild(args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, GRAYLANE_TEST_RUN: RUN_ID, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  return child;
}

const answers = (url: string) =>
  request(url).then(
    async (res) => {
      await res.body.dump();
      return res.statusCode;
    },
    () => 0,
  );

/** The fixture app as a "pod" on 127.0.0.1:port. */
async function startApp(port: number, version: string, env: Record<string, string> = {}) {
  spawnChild([APP], { PORT: String(port), NAME: 'web', VERSION: version, ...env });
  await until(
    () => answers(`http://127.0.0.1:${port}/healthz`),
    (code) => code === 200,
  );
}

type AnalysedStatus = NonNullable<ReleaseObject['status']> & {
  failure?: string;
  analysis?: {
    intervals: Array<{
      weight: number;
      verdict: string;
      checks: Array<{
        service: string;
        check: string;
        verdict: string;
        value?: number;
        samples: number;
      }>;
    }>;
  };
};

const canaryOnPort = (version: string, port: number) => ({
  version,
  patch: {
    spec: {
      template: {
        spec: {
          containers: [{ name: 'app', image: `web:${version}`, ports: [{ containerPort: port }] }],
        },
      },
    },
  },
});

describe('Kubernetes mode: analysis on a real data plane', () => {
  let shop: ShopCluster;
  let prometheus: RunningPrometheus;
  let gateway: string;
  let adminMetrics: string;
  let ports: number[];
  let leaderUrl: string;

  /** The real `graylane` CLI in Kubernetes mode, as a user with the admin kubeconfig. */
  const cli = (...args: string[]) =>
    runCli([
      ...args,
      '--kubernetes',
      '--kubeconfig',
      shop.env.kubeconfig,
      '--namespace',
      shop.namespace,
    ]);

  /** Waits until the core Events of a Release include every reason given. */
  const eventsInclude = (name: string, reasons: string[]) =>
    until(
      () => shop.eventReasons(name),
      (seen) => reasons.every((r) => seen.includes(r)),
      30_000,
    );

  beforeAll(async () => {
    shop = await startShopCluster();
    ports = await freePorts(6);
    const [v1, v2, v3, controllerPort, gatewayPort, adminPort] = ports as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    await Promise.all([
      startApp(v1, 'v1'),
      startApp(v2, 'v2'),
      startApp(v3, 'v3', { ERROR_EVERY: '2' }),
    ]);
    await shop.deployment('web', 'web:v1', { port: v1, ip: '127.0.0.1' });
    await shop.env.custom.createNamespacedCustomObject({
      ...GROUP,
      namespace: shop.namespace,
      plural: 'entrypoints',
      body: {
        apiVersion: 'graylane.dev/v1alpha1',
        kind: 'Entrypoint',
        metadata: { name: 'web' },
        // The shop's entrypoint takes `/`; the longer prefix wins.
        spec: { service: 'web', match: { pathPrefix: '/web' } },
      },
    });
    await shop.startController({ port: controllerPort });
    leaderUrl = `http://127.0.0.1:${controllerPort}`;
    gateway = `http://127.0.0.1:${gatewayPort}/web`;
    adminMetrics = `http://127.0.0.1:${adminPort}/metrics`;
    spawnChild([
      PROXY_BIN,
      '--route-table',
      `http://127.0.0.1:${controllerPort}/v1/routetable`,
      '--gateway',
      `127.0.0.1:${gatewayPort}`,
      '--admin',
      `127.0.0.1:${adminPort}`,
      '--log-level',
      'warn',
    ]);
    await until(
      () => hit(gateway).catch(() => ({ body: '' })),
      (r) => r.body === 'web v1',
      30_000,
    );
    prometheus = await startPrometheus([adminMetrics]);
  }, 1_800_000);

  afterAll(async () => {
    await prometheus?.stop();
    for (const child of children) child.kill('SIGKILL');
    cleanup();
    await shop?.stop();
  });

  const analysis = (provider: object) => ({
    provider,
    interval: '2s',
    threshold: 2,
    minSamples: 5,
    stepWeight: 50,
    maxWeight: 50,
    checks: [{ name: 'request-success-rate', min: 99 }],
  });

  it('an analysed Release passes on good metrics (Prometheus), promotes, and shows the interval in status and Events', async () => {
    const [, v2] = ports as [number, number];
    await shop.createRelease('web-v2', {
      lane: 'gray',
      entrypoint: 'web',
      services: [{ name: 'web', canary: canaryOnPort('v2', v2) }],
      analysis: analysis({ type: 'prometheus', address: prometheus.url }),
    });
    const load = new GatewayLoad(gateway, { maxRequests: 5_000 });
    try {
      await shop.waitForDeployment('web-gray');
      await shop.runPods('web-gray', { ip: '127.0.0.1' });
      // Promotion: the user's Deployment takes the canary's template; the test rolls it out.
      await until(
        () => shop.env.apps.readNamespacedDeployment({ name: 'web', namespace: shop.namespace }),
        (d) => d.spec?.template.spec?.containers[0]?.image === 'web:v2',
        60_000,
      );
      await shop.runPods('web', { ip: '127.0.0.1', replace: true });
      const done = await shop.waitForPhase('web-v2', 'Succeeded', 60_000);
      const status = done.status as AnalysedStatus;
      expect(status.analysis?.intervals.map((i) => `${i.weight} ${i.verdict}`)).toEqual([
        '50 pass',
      ]);
      const rate = status.analysis!.intervals[0]!.checks.find(
        (c) => c.check === 'request-success-rate',
      )!;
      expect(rate).toMatchObject({ service: 'web', verdict: 'pass' });
      expect(rate.value).toBe(100);
      expect(rate.samples).toBeGreaterThanOrEqual(5);
    } finally {
      await load.stop();
    }
    // Events are written after the status that caused them.
    await eventsInclude('web-v2', ['Weight', 'AnalysisPassed', 'Finalised']);
    // Untagged traffic now reaches v2, the promoted stable version.
    await until(
      () => hit(gateway),
      (r) => r.body === 'web v2',
      30_000,
    );
  });

  it('an analysed Release with a failing canary (50 % errors, direct provider) rolls back after the threshold', async () => {
    const [, , v3] = ports as [number, number, number];
    await shop.createRelease('web-v3', {
      lane: 'gray',
      entrypoint: 'web',
      services: [{ name: 'web', canary: canaryOnPort('v3', v3) }],
      analysis: analysis({ type: 'direct', targets: [adminMetrics] }),
    });
    const load = new GatewayLoad(gateway, { maxRequests: 5_000 });
    let done: ReleaseObject;
    try {
      await until(
        () => shop.deploymentOrUndefined('web-gray'),
        (d) => d?.spec?.template.spec?.containers[0]?.image === 'web:v3',
        30_000,
      );
      await shop.runPods('web-gray', { ip: '127.0.0.1', replace: true });
      done = await shop.waitForPhase('web-v3', 'Failed', 60_000);
    } finally {
      await load.stop();
    }
    const status = done.status as AnalysedStatus;
    expect(status.analysis?.intervals.map((i) => `${i.weight} ${i.verdict}`)).toEqual([
      '50 fail',
      '50 fail',
    ]);
    const rate = status.analysis!.intervals[0]!.checks.find(
      (c) => c.check === 'request-success-rate',
    )!;
    expect(rate.verdict).toBe('fail');
    expect(rate.value).toBeLessThan(60);
    expect(status.failure).toContain('web request-success-rate');
    // Events are written after the status that caused them.
    await eventsInclude('web-v3', ['AnalysisFailed', 'RolledBack']);
    await until(
      () => shop.deploymentOrUndefined('web-gray'),
      (d) => d === undefined,
      30_000,
    );
    // Stable was never touched: untagged and tagged traffic alike get v2.
    expect((await hit(gateway, { 'x-lane': 'gray' })).body).toBe('web v2');
  });

  it('refuses an analysis the cluster cannot run (a direct provider without targets) with Valid=False', async () => {
    await shop.createRelease('web-direct', {
      lane: 'blue',
      entrypoint: 'web',
      services: [{ name: 'web', canary: canaryOnPort('v3', 1) }],
      analysis: analysis({ type: 'direct' }),
    });
    const refused = await until(
      () => shop.release('web-direct'),
      (r) => (r.status?.conditions ?? []).some((c) => c.type === 'Valid' && c.status === 'False'),
      30_000,
    );
    expect(refused.status?.conditions?.[0]?.message).toMatch(
      /^spec\.analysis\.provider\.targets: in Kubernetes mode the controller runs no proxy/,
    );
    expect(refused.status?.phase).toBeUndefined();
    // The CLI shows it as Invalid, with the reason.
    const list = await cli('get', 'releases');
    expect(list.stdout).toMatch(/^web-direct\s+blue\s+Invalid\s+-\/1\s+0%\s+web\s/m);
    const status = await cli('status', 'web-direct');
    expect(status.stdout).toMatch(
      /^Failure:\s+spec\.analysis\.provider\.targets: in Kubernetes mode the controller runs no proxy/m,
    );
    await shop.deleteRelease('web-direct');
  });

  it('a follower serves the table the leader mirrored, and its watchers get each new revision', async () => {
    const followerPort = await freePort();
    await shop.startController({ port: followerPort });
    const follower = `http://127.0.0.1:${followerPort}`;
    const health = await until(
      () =>
        request(`${follower}/healthz`).then((r) => r.body.json() as Promise<{ leader: boolean }>),
      (h) => h !== undefined,
      30_000,
    );
    expect(health.leader).toBe(false);
    const table = async (url: string) =>
      (await request(`${url}/v1/routetable`)).body.json() as Promise<{ revision: number }>;
    const before = await table(leaderUrl);
    const watch = await openWatch(`${follower}/v1/routetable`);
    try {
      expect(watch.response.statusCode).toBe(200);
      await until(
        async () => watch.revisions(),
        (revisions) => revisions.includes(before.revision),
        30_000,
      );
      // A pod more for backend: the leader publishes a new revision, the follower passes it on.
      await shop.runPods('backend');
      const ready = Date.now();
      const after = await until(
        () => table(leaderUrl),
        (t) => t.revision > before.revision,
        30_000,
      );
      const onLeader = Date.now() - ready;
      await until(
        async () => watch.revisions(),
        (revisions) => revisions.includes(after.revision),
        30_000,
      );
      const onFollower = Date.now() - ready;
      process.stdout.write(
        `[figures] follower: a new pod's revision on the leader's table ${onLeader} ms after it was Ready, on the follower's watch ${onFollower} ms after (polled every 50 ms)\n`,
      );
      // One ConfigMap write and one watch event behind the leader; the bound is the waits' own.
      expect(onFollower).toBeLessThan(30_000);
      expect(await table(follower)).toEqual(after);
    } finally {
      watch.close();
    }
  });

  it('the CLI with --kubernetes: get and status from the CRD status, actions through the request annotation, --wait for the controller', async () => {
    const [v1] = ports as [number];
    await shop.createRelease('web-cli', {
      lane: 'gray',
      entrypoint: 'web',
      services: [{ name: 'web', canary: canaryOnPort('v1', v1) }],
      steps: [{ weight: 20 }, { pause: {} }, { pause: {} }],
    });
    await until(
      () => shop.deploymentOrUndefined('web-gray'),
      (d) => d?.spec?.template.spec?.containers[0]?.image === 'web:v1',
      30_000,
    );
    await shop.runPods('web-gray', { ip: '127.0.0.1', replace: true });
    await shop.waitForPhase('web-cli', 'Paused');

    const list = await cli('get', 'releases');
    expect(list.code, list.stderr).toBe(0);
    const rows = list.stdout.split('\n').map((line) => line.split(/\s{2,}/));
    expect(rows[0]).toEqual(['NAME', 'LANE', 'PHASE', 'STEP', 'WEIGHT', 'SERVICES', 'AGE']);
    expect(rows.find((r) => r[0] === 'web-cli')?.slice(0, 6)).toEqual([
      'web-cli',
      'gray',
      'Paused',
      '2/3',
      '20%',
      'web',
    ]);
    expect(rows.find((r) => r[0] === 'web-v3')?.[2]).toBe('Failed');

    const status = await cli('status', 'web-cli');
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(
      'Phase:       Paused (waiting for approval: graylane approve web-cli --kubernetes --namespace shop)',
    );
    expect(status.stdout).toMatch(/^web\s+v1\s+routed\s+ready/m);

    // Refused as local mode refuses it: the code, the reason, exit 1; the release is unchanged.
    const refused = await cli('resume', 'web-cli', '--wait');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /^graylane: GRAYLANE_ERR_INVALID_ACTION: cannot resume release web-cli \(Paused\): it waits for approval/,
    );

    const approved = await cli('approve', 'web-cli', '--wait');
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout).toBe('release/web-cli approve: Paused\n');
    const after = await shop.release('web-cli');
    const annotation = after.metadata.annotations?.['graylane.dev/request'];
    expect(annotation).toMatch(/^approve:[0-9a-z]+$/);
    expect((after.status as { lastRequest?: string }).lastRequest).toBe(annotation);
    expect(after.status?.step).toBe(2);

    const rollback = await cli('rollback', 'web-cli');
    expect(rollback.code, rollback.stderr).toBe(0);
    expect(rollback.stdout).toMatch(
      /^release\/web-cli rollback requested \(graylane\.dev\/request=rollback:[0-9a-z]+\)\n$/,
    );
    await shop.waitForPhase('web-cli', 'RolledBack');
    // Events are written after the status that caused them.
    await eventsInclude('web-cli', [
      'Approved',
      'RequestRefused',
      'RollbackRequested',
      'RolledBack',
    ]);

    const missing = await cli('approve', 'no-such-release', '--wait');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      'graylane: GRAYLANE_ERR_NOT_FOUND: release no-such-release not found in namespace shop\n',
    );
  });
});
