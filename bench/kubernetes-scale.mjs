// Kubernetes mode at scale, against the real kube-apiserver + etcd of scripts/kube-test-env.sh:
// RELEASES Releases of SERVICES services each in one namespace (every service its own user
// Deployment with one Ready pod and a Service). There is no kubelet or Deployment controller: this script plays
// them, in bulk (it creates a canary's pod and marks it Ready, and sets the Deployment's status, as
// soon as the canary Deployment appears), as the tests do one by one.
//
// Measures, per release: Release created → its first canary Deployment created (the controller's
// reaction), → its last canary created (bottom-up, each after the one below it is ready), →
// Paused at its approval step; then an approval annotation → the status that applied it. Also the
// controller's first full list, its RSS and heap, the API requests it made, and the machine's load.
//
//   node bench/kubernetes-scale.mjs             500 Releases × 10 services (several minutes)
//   node bench/kubernetes-scale.mjs --quick     20 × 3, into a temp dir (a smoke run: it fails when
//                                               a release does not get through, never on a number)
//   --releases N --services M --out DIR --label TEXT (a name for this run in the report)
//   --profile DIR (a CPU profile of the controller process)
// Writes bench/results/kubernetes-scale.md and .json (with --quick: into a temp dir).
import { execFile, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
} from '../packages/controller/node_modules/@kubernetes/client-node/dist/index.js';
import { parseAllDocuments } from '../packages/controller/node_modules/yaml/dist/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at === -1 ? fallback : args[at + 1];
};
const QUICK = args.includes('--quick');
const RELEASES = Number(flag('releases', QUICK ? 20 : 500));
const SERVICES = Number(flag('services', QUICK ? 3 : 10));
const CONCURRENCY = Number(flag('concurrency', 16));
const OUT = flag(
  'out',
  QUICK ? mkdtempSync(join(os.tmpdir(), 'graylane-kscale-')) : join(ROOT, 'bench/results'),
);
const LABEL = flag('label', '');
const PROFILE = flag('profile', undefined);
/** Bounds of each phase: the run fails (not hangs) when the controller does not get there. */
const PHASE_MS = Number(flag('phase-ms', QUICK ? 180_000 : 1_800_000));
const APPROVAL_MS = Number(flag('approval-ms', PHASE_MS));
const NS = 'scale';
const GROUP = { group: 'graylane.dev', version: 'v1alpha1', namespace: NS, plural: 'releases' };

/** What the controller reads or writes (its Role in deploy/kubernetes/rbac.yaml). */
const CONTROLLER_RESOURCES = new Set([
  'releases',
  'entrypoints',
  'deployments',
  'pods',
  'services',
  'configmaps',
  'events',
  'leases',
]);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.now();
const insecure = new Agent({ connect: { rejectUnauthorized: false } });
const log = (line) => process.stdout.write(`[kubernetes-scale] ${line}\n`);

/** The requests this script made, keyed as the API server counts them, to tell them from the controller's. */
const driverRequests = {};
const count = (key) => {
  driverRequests[key] = (driverRequests[key] ?? 0) + 1;
};

/** Runs `fn` over `items`, `limit` at a time. */
async function pool(items, limit, fn) {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++];
      await fn(item);
    }
  });
  await Promise.all(workers);
}

/** Retries a request the API server refused for load (429, 5xx) or a dropped connection. */
async function retrying(fn) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      const code = error?.code;
      if (attempt >= 5 || (typeof code === 'number' && code < 500 && code !== 429)) throw error;
      await sleep(200 * 2 ** attempt);
    }
  }
}

function percentiles(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => (sorted.length ? sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] : NaN);
  return { n: sorted.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: at(1) };
}

async function apiserverRequestTotals(kc) {
  const res = await request(`${kc.getCurrentCluster().server}/metrics`, {
    headers: { authorization: `Bearer ${kc.getCurrentUser().token}` },
    dispatcher: insecure,
  });
  const totals = {};
  for (const line of (await res.body.text()).split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const labels = Object.fromEntries(
      [...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    const key = `${labels.verb} ${labels.resource}${labels.subresource ? `/${labels.subresource}` : ''}`;
    totals[key] = (totals[key] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return totals;
}

async function applyCrds(kc) {
  const server = kc.getCurrentCluster().server;
  const text = readFileSync(join(ROOT, 'deploy/kubernetes/crds.yaml'), 'utf8');
  for (const crd of parseAllDocuments(text).map((d) => d.toJS())) {
    if (!crd) continue;
    const res = await request(`${server}/apis/apiextensions.k8s.io/v1/customresourcedefinitions`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${kc.getCurrentUser().token}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify(crd),
      dispatcher: insecure,
    });
    const body = await res.body.text();
    if (res.statusCode >= 300) throw new Error(`CRD ${crd.metadata.name}: ${body}`);
  }
  // Established, and served: a create that comes too early gets 404.
  const custom = kc.makeApiClient(CustomObjectsApi);
  for (const plural of ['releases', 'entrypoints']) {
    for (let i = 0; ; i++) {
      try {
        await custom.listNamespacedCustomObject({ ...GROUP, namespace: 'default', plural });
        break;
      } catch (error) {
        if (i > 100) throw error;
        await sleep(100);
      }
    }
  }
}

let podIndex = 0;
const nextIp = () => {
  const n = ++podIndex;
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
};

/** What a Deployment controller and a kubelet would do: a Ready pod, and the status rolled out. */
async function runPods(apps, core, deployment) {
  const name = `${deployment.metadata.name}-${deployment.metadata.generation}`;
  const pod = await retrying(() =>
    core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name, labels: deployment.spec.template.metadata.labels },
        spec: deployment.spec.template.spec,
      },
    }),
  );
  count('POST pods');
  pod.status = {
    phase: 'Running',
    podIP: nextIp(),
    conditions: [{ type: 'Ready', status: 'True' }],
  };
  await retrying(() => core.replaceNamespacedPodStatus({ name, namespace: NS, body: pod }));
  count('PUT pods/status');
  const status = {
    observedGeneration: deployment.metadata.generation,
    replicas: 1,
    updatedReplicas: 1,
    readyReplicas: 1,
    availableReplicas: 1,
  };
  await retrying(() =>
    apps.patchNamespacedDeploymentStatus(
      { name: deployment.metadata.name, namespace: NS, body: { status } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    ),
  );
  count('PATCH deployments/status');
}

const service = (r, s) => `s${r}-${s}`;
const lane = (r) => `r${r}`;

async function main() {
  const dir = mkdtempSync(join(os.tmpdir(), 'graylane-kube-scale-'));
  const script = join(ROOT, 'scripts/kube-test-env.sh');
  const load = [];
  const loadTimer = setInterval(() => load.push(os.loadavg()[0]), 5_000);
  let controller;
  let envStarted = false;
  // Ctrl-C or a kill still stops the API server, etcd and the controller.
  for (const signal of ['SIGINT', 'SIGTERM'])
    process.once(signal, () => {
      controller?.kill('SIGKILL');
      execFile('bash', [script, 'stop', dir], () => process.exit(130));
    });
  try {
    let t = now();
    await promisify(execFile)('bash', [script, 'start', dir], { timeout: 1_800_000 });
    envStarted = true;
    const envStartMs = now() - t;
    log(`API server ready in ${Math.round(envStartMs)} ms`);
    const kc = new KubeConfig();
    kc.loadFromFile(join(dir, 'kubeconfig'));
    const apps = kc.makeApiClient(AppsV1Api);
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    await applyCrds(kc);
    await core.createNamespace({ body: { metadata: { name: NS } } });

    // The user's side: a Deployment per service, each with one Ready pod; an Entrypoint per release.
    t = now();
    const names = [];
    for (let r = 0; r < RELEASES; r++) for (let s = 0; s < SERVICES; s++) names.push(service(r, s));
    await pool(names, CONCURRENCY, async (name) => {
      const body = {
        metadata: { name, namespace: NS },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels: { app: name } },
            spec: {
              containers: [{ name: 'app', image: `${name}:1`, ports: [{ containerPort: 8080 }] }],
            },
          },
        },
      };
      const created = await retrying(() =>
        apps.createNamespacedDeployment({ namespace: NS, body }),
      );
      count('POST deployments');
      await retrying(() =>
        core.createNamespacedService({
          namespace: NS,
          body: {
            metadata: { name },
            // Headless: the test environment's service IP range is a /24.
            spec: {
              clusterIP: 'None',
              selector: { app: name },
              ports: [{ port: 80, targetPort: 8080 }],
            },
          },
        }),
      );
      count('POST services');
      await runPods(apps, core, created);
    });
    await pool([...Array(RELEASES).keys()], CONCURRENCY, async (r) => {
      await retrying(() =>
        custom.createNamespacedCustomObject({
          ...GROUP,
          plural: 'entrypoints',
          body: {
            apiVersion: 'graylane.dev/v1alpha1',
            kind: 'Entrypoint',
            metadata: { name: `app${r}` },
            spec: { service: service(r, SERVICES - 1), match: { host: `app${r}.example` } },
          },
        }),
      );
      count('POST entrypoints');
    });
    const seedMs = now() - t;
    log(
      `${names.length} user Deployments, pods and Services, ${RELEASES} Entrypoints in ${Math.round(seedMs)} ms`,
    );

    // The controller, in its own process; it leads at once (no Lease yet).
    const before = await apiserverRequestTotals(kc);
    const driverBefore = { ...driverRequests };
    const memory = { rss: 0, heapUsed: 0, samples: [] };
    let listedMs;
    controller = fork(
      join(ROOT, 'bench/kubernetes-scale-controller.mjs'),
      [join(dir, 'kubeconfig'), NS],
      {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        // --profile DIR: a V8 CPU profile of the controller, to see where a pass spends its time.
        execArgv: PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE}`] : [],
      },
    );
    controller.on('message', (m) => {
      if (m.type === 'listed') listedMs = m.ms;
      memory.rss = Math.max(memory.rss, m.rss);
      memory.heapUsed = Math.max(memory.heapUsed, m.heapUsed);
      memory.samples.push({ at: Math.round(now()), rss: m.rss, heapUsed: m.heapUsed });
    });
    const leases = kc.makeApiClient(CoordinationV1Api);
    for (const deadline = now() + 120_000; ; ) {
      const lease = await leases
        .readNamespacedLease({ name: 'graylane-controller', namespace: NS })
        .catch(() => undefined);
      if (lease?.spec?.holderIdentity) break;
      if (now() > deadline) throw new Error('the controller did not take the Lease within 120 s');
      await sleep(200);
    }
    log(`the controller listed everything in ${Math.round(listedMs ?? NaN)} ms and leads`);
    // A new leader gives proxies 10 s to reconnect before a step counts as applied; none will.
    await sleep(10_500);

    // This script's view: canary Deployments as they appear (it runs their pods), Release status.
    const createdAt = new Map();
    let canariesSeen = 0;
    const firstCanaryAt = new Map();
    const lastCanaryAt = new Map();
    const pausedAt = new Map();
    const approvedAt = new Map();
    const requestedAt = new Map();
    const kubelet = [];
    let kubeletBusy = 0;
    const pumpKubelet = () => {
      while (kubeletBusy < CONCURRENCY && kubelet.length > 0) {
        const deployment = kubelet.shift();
        kubeletBusy++;
        runPods(apps, core, deployment)
          .catch((error) => log(`pods of ${deployment.metadata.name}: ${error.message}`))
          .finally(() => {
            kubeletBusy--;
            pumpKubelet();
          });
      }
    };
    const deployments = makeInformer(
      kc,
      `/apis/apps/v1/namespaces/${NS}/deployments`,
      () => apps.listNamespacedDeployment({ namespace: NS, labelSelector: 'graylane.dev/lane' }),
      'graylane.dev/lane',
    );
    deployments.on('add', (d) => {
      canariesSeen++;
      const labels = d.metadata.labels;
      const r = Number(labels['graylane.dev/lane'].slice(1));
      const s = Number(labels['graylane.dev/service'].split('-')[1]);
      if (s === 0) firstCanaryAt.set(r, now());
      if (s === SERVICES - 1) lastCanaryAt.set(r, now());
      kubelet.push(d);
      pumpKubelet();
    });
    const releases = makeInformer(kc, `/apis/graylane.dev/v1alpha1/namespaces/${NS}/releases`, () =>
      custom.listNamespacedCustomObject({ ...GROUP }),
    );
    const onRelease = (object) => {
      const r = Number(object.metadata.name.slice(1));
      if (object.status?.phase === 'Paused' && !pausedAt.has(r)) pausedAt.set(r, now());
      if (object.status?.lastRequest === 'approve:1' && !approvedAt.has(r))
        approvedAt.set(r, now());
    };
    releases.on('add', onRelease);
    releases.on('update', onRelease);
    await deployments.start();
    await releases.start();
    count('LIST deployments');
    count('LIST releases');

    /** Until `map` holds `want` releases, or PHASE_MS passed (then false). */
    const waitFor = async (what, map, want = RELEASES, phaseMs = PHASE_MS) => {
      const deadline = now() + phaseMs;
      let last = -1;
      while (map.size < want) {
        if (now() > deadline) return false;
        if (map.size !== last) {
          last = map.size;
          log(`${what}: ${map.size}/${want}`);
        }
        await sleep(1_000);
      }
      return true;
    };

    t = now();
    await pool([...Array(RELEASES).keys()], CONCURRENCY, async (r) => {
      createdAt.set(r, now());
      await retrying(() =>
        custom.createNamespacedCustomObject({
          ...GROUP,
          body: {
            apiVersion: 'graylane.dev/v1alpha1',
            kind: 'Release',
            metadata: { name: lane(r) },
            spec: {
              lane: lane(r),
              entrypoint: `app${r}`,
              services: [...Array(SERVICES).keys()].map((s) => ({
                name: service(r, s),
                canary: { version: 'v2', image: `${service(r, s)}:2` },
              })),
              steps: [{ weight: 10 }, { pause: {} }],
            },
          },
        }),
      );
      count('POST releases');
    });
    const createdMs = now() - t;
    const allPaused = await waitFor('paused', pausedAt);
    const pausedMs = now() - t;

    // The releases that paused in time are approved (all of them, when the run is complete).
    const paused = [...pausedAt.keys()];
    t = now();
    await pool(paused, CONCURRENCY, async (r) => {
      requestedAt.set(r, now());
      await retrying(() =>
        custom.patchNamespacedCustomObject(
          {
            ...GROUP,
            name: lane(r),
            body: { metadata: { annotations: { 'graylane.dev/request': 'approve:1' } } },
          },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        ),
      );
      count('PATCH releases');
    });
    const allApproved =
      (await waitFor('approved', approvedAt, paused.length, APPROVAL_MS)) && allPaused;
    const approvedMs = now() - t;
    const after = await apiserverRequestTotals(kc);
    await deployments.stop();
    await releases.stop();

    const since = (from, to) =>
      [...to.entries()].filter(([r]) => from.has(r)).map(([r, at]) => at - from.get(r));
    const controllerRequests = {};
    for (const [key, total] of Object.entries(after)) {
      // The API server's own loops (endpoints, limit ranges, its watches) are not the controller's.
      if (!CONTROLLER_RESOURCES.has(key.split(' ')[1].split('/')[0])) continue;
      const driver = (driverRequests[key] ?? 0) - (driverBefore[key] ?? 0);
      const made = total - (before[key] ?? 0) - driver;
      if (made > 0) controllerRequests[key] = made;
    }
    const result = {
      label: LABEL,
      date: new Date().toISOString(),
      releases: RELEASES,
      servicesPerRelease: SERVICES,
      objects: {
        userDeployments: names.length,
        pods: podIndex,
      },
      machine: { cpus: os.cpus().length, node: process.version },
      loadAverage1m: load.length
        ? {
            min: Math.min(...load),
            max: Math.max(...load),
            mean: load.reduce((a, b) => a + b, 0) / load.length,
          }
        : undefined,
      envStartMs,
      seedMs,
      controller: {
        firstFullListMs: listedMs,
        peakRssBytes: memory.rss,
        peakHeapUsedBytes: memory.heapUsed,
      },
      createRequestsMs: createdMs,
      phaseMs: PHASE_MS,
      paused: pausedAt.size,
      approved: approvedAt.size,
      canariesCreated: canariesSeen,
      allPaused,
      allPausedMs: pausedMs,
      allApproved,
      allApprovedMs: approvedMs,
      latencyMs: {
        createdToFirstCanary: percentiles(since(createdAt, firstCanaryAt)),
        createdToLastCanary: percentiles(since(createdAt, lastCanaryAt)),
        createdToPaused: percentiles(since(createdAt, pausedAt)),
        approvalToStatus: percentiles(since(requestedAt, approvedAt)),
      },
      apiRequests: { controller: controllerRequests, driver: driverRequests },
    };
    mkdirSync(OUT, { recursive: true });
    writeFileSync(join(OUT, 'kubernetes-scale.json'), `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(join(OUT, 'kubernetes-scale.md'), report(result));
    log(`wrote ${join(OUT, 'kubernetes-scale.md')}`);
    if (!allPaused || !allApproved) {
      log(`FAILED: paused ${pausedAt.size}/${RELEASES}, approved ${approvedAt.size}/${RELEASES}`);
      process.exitCode = 1;
    }
  } finally {
    clearInterval(loadTimer);
    if (controller?.connected) {
      // It closes and exits when disconnected (and writes its CPU profile then).
      const exited = new Promise((resolve) => controller.once('exit', resolve));
      controller.disconnect();
      await Promise.race([exited, sleep(15_000)]);
      controller.kill('SIGKILL');
    }
    if (envStarted) await promisify(execFile)('bash', [script, 'stop', dir]).catch(() => {});
  }
}

const ms = (v) => (Number.isFinite(v) ? `${Math.round(v).toLocaleString('en')} ms` : 'n/a');
const mb = (v) => `${(v / 1024 / 1024).toFixed(0)} MB`;

function report(r) {
  const row = (name, p) =>
    `| ${name} | ${p.n} | ${ms(p.p50)} | ${ms(p.p95)} | ${ms(p.p99)} | ${ms(p.max)} |`;
  const requests = Object.entries(r.apiRequests.controller)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `| ${k} | ${v.toLocaleString('en')} |`)
    .join('\n');
  return `# Kubernetes mode at scale${r.label ? `: ${r.label}` : ''}

\`node bench/kubernetes-scale.mjs${QUICK ? ' --quick' : ''}\`, ${r.date}: ${r.releases} Releases × ${r.servicesPerRelease}
services in one namespace, against the real kube-apiserver v1.34.2 + etcd v3.6.5 of
\`scripts/kube-test-env.sh\` on this machine (${r.machine.cpus} cores, shared; Node ${r.machine.node}).
${r.objects.userDeployments.toLocaleString('en')} user Deployments, each with one Ready pod and a (headless) Service; each release deploys one canary
Deployment per service, bottom-up (the next one once the one below is Ready), then takes a 10 % weight
step and pauses for approval. The script plays kubelet and Deployment controller: it runs a canary's pod
and sets its Deployment's status as soon as the Deployment appears (${CONCURRENCY} requests at a time), so
"Release created → last canary" includes its own work, not a kubelet's.

Load average (1 min) during the run: ${r.loadAverage1m ? `${r.loadAverage1m.min.toFixed(1)}–${r.loadAverage1m.max.toFixed(1)} (mean ${r.loadAverage1m.mean.toFixed(1)})` : 'n/a'}.
Paused within the run's bound (${ms(r.phaseMs)}): ${r.paused}/${r.releases}; approvals applied (of those paused): ${r.approved}/${r.paused}.

| measure | releases | p50 | p95 | p99 | max |
| --- | ---: | ---: | ---: | ---: | ---: |
${row('Release created → its first canary Deployment created', r.latencyMs.createdToFirstCanary)}
${row('Release created → its last canary Deployment created', r.latencyMs.createdToLastCanary)}
${row('Release created → Paused (every canary Ready, weight step done)', r.latencyMs.createdToPaused)}
${row('approval annotation → status that applied it', r.latencyMs.approvalToStatus)}

| controller | |
| --- | ---: |
| first full list (informers of Releases, Entrypoints, Deployments, Pods, Services, the mirror) | ${ms(r.controller.firstFullListMs)} |
| peak RSS | ${mb(r.controller.peakRssBytes)} |
| peak heap used | ${mb(r.controller.peakHeapUsedBytes)} |
| all ${r.releases} Releases created (the script's requests) | ${ms(r.createRequestsMs)} |
| … until every one was Paused (or the bound) | ${ms(r.allPausedMs)} |
| approvals sent → every one applied | ${ms(r.allApprovedMs)} |
| canary Deployments created | ${r.canariesCreated.toLocaleString('en')} of ${(r.releases * r.servicesPerRelease).toLocaleString('en')} |
| test environment: API server ready after start | ${ms(r.envStartMs)} |

API requests of the controller during the run (the API server's \`apiserver_request_total\`, less the
script's own requests):

| verb resource | requests |
| --- | ---: |
${requests}
`;
}

await main();
