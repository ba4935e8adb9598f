import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { PatchStrategy, setHeaderOptions, type V1Deployment } from '@kubernetes/client-node';
import { mirroredTableText } from '../src/kubernetes/route-table-mirror.js';
import { BIN, until } from './graylane.js';
import { applyYaml, deployFile, type KubeEnv, type KubeEnvOptions, startKube } from './kube-env.js';

/**
 * The shop on a real kube-apiserver + etcd, for the Kubernetes-mode test files: the CRDs and the
 * shipped RBAC applied, a kubeconfig with the controller ServiceAccount's token (and nothing else),
 * the user Deployments `backend` and `frontend` with their Services and Ready pods, and the
 * Entrypoint `shop`. There is no kubelet or controller-manager: `runPods` plays their part.
 */
export const GROUP = { group: 'graylane.dev', version: 'v1alpha1' } as const;

export interface ReleaseObject {
  metadata: {
    name: string;
    uid: string;
    resourceVersion: string;
    generation: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: Record<string, unknown>;
  status?: {
    phase?: string;
    step?: number;
    weight?: number;
    awaitRevision?: number;
    observedGeneration?: number;
    events?: Array<{ reason: string; time: string }>;
    conditions?: Array<{ type: string; status: string; message: string }>;
  };
}

export interface ShopCluster {
  env: KubeEnv;
  namespace: string;
  /** A kubeconfig with the shipped ServiceAccount's token: the controller's only rights. */
  saKubeconfig: string;
  /** Every controller started here (killed by `stop`). */
  controllers: ChildProcess[];
  /**
   * A user Deployment (1 replica, `app: NAME`, container port `port`) and its Service, rolled out;
   * `ip` is its pod's address (see `runPods`).
   */
  deployment(name: string, image: string, options?: { port?: number; ip?: string }): Promise<void>;
  /**
   * What the Deployment controller and a kubelet would do: a Ready pod, status rolled out. `ip`
   * gives the pod an address a real process listens on (127.0.0.1, with the template's port);
   * `replace` deletes the Deployment's earlier pods first, as a rollout would.
   */
  runPods(name: string, options?: { ip?: string; replace?: boolean }): Promise<string>;
  /**
   * A promotion as the test plays it: waits until the controller gave the user Deployment `name`
   * the canary's `image`, then rolls it out (`runPods`); the Deployment as the controller left it.
   */
  rollOutPromotion(name: string, image: string, withinMs?: number): Promise<V1Deployment>;
  createRelease(name: string, spec: Record<string, unknown>): Promise<ReleaseObject>;
  release(name: string): Promise<ReleaseObject>;
  /** A JSON merge patch, as `kubectl patch --type merge` (and `kubectl annotate`) send. */
  patchRelease(name: string, patch: object): Promise<ReleaseObject>;
  deleteRelease(name: string): Promise<void>;
  waitForPhase(name: string, phase: string, withinMs?: number): Promise<ReleaseObject>;
  /** A user's action, as `kubectl annotate release NAME graylane.dev/request=VALUE --overwrite`. */
  annotate(name: string, value: string): Promise<void>;
  deploymentOrUndefined(name: string): Promise<V1Deployment | undefined>;
  waitForDeployment(name: string, withinMs?: number): Promise<V1Deployment>;
  /** The reasons of the core Events about a Release, oldest first, once they caught up with its status. */
  eventReasons(name: string): Promise<string[]>;
  /** The route table the controller mirrored into its ConfigMap. */
  mirroredTable(): Promise<MirroredTable>;
  /**
   * `graylane controller --kubernetes` as the ServiceAccount, lease 3 s; `server` reaches the API
   * server another way (through a `partition`).
   */
  startController(options?: {
    port?: number;
    server?: string;
    args?: string[];
  }): Promise<ChildProcess>;
  stop(): Promise<void>;
}

/** The shop's usual release: both services' v2 images in lane gray, with `steps`. */
export const grayShopRelease = (steps: unknown[]) => ({
  lane: 'gray',
  entrypoint: 'shop',
  services: [
    { name: 'backend', canary: { version: 'v2', image: 'backend:2' } },
    { name: 'frontend', canary: { version: 'v2', image: 'frontend:2' } },
  ],
  steps,
});

export interface MirroredTable {
  revision: number;
  services: Record<string, { lanes: Record<string, { endpoints: string[] }> }>;
}

export async function startShopCluster(
  namespace = 'shop',
  options: KubeEnvOptions = {},
): Promise<ShopCluster> {
  const env = await startKube(options);
  const ns = { ...GROUP, namespace };
  const controllers: ChildProcess[] = [];
  let podIp = 10;

  await applyYaml(env, deployFile('crds.yaml'));
  for (const name of ['releases.graylane.dev', 'entrypoints.graylane.dev']) {
    await until(
      () =>
        env.objects.read({
          apiVersion: 'apiextensions.k8s.io/v1',
          kind: 'CustomResourceDefinition',
          metadata: { name },
        }),
      (crd) =>
        (
          (crd as { status?: { conditions?: Array<{ type: string; status: string }> } }).status
            ?.conditions ?? []
        ).some((c) => c.type === 'Established' && c.status === 'True'),
    );
  }
  await env.core.createNamespace({ body: { metadata: { name: namespace } } });
  await applyYaml(env, deployFile('rbac.yaml'), namespace);
  const token = await env.core.createNamespacedServiceAccountToken({
    name: 'graylane-controller',
    namespace,
    body: { spec: { expirationSeconds: 3600 } },
  });
  const kubeconfigFor = (server: string) => {
    const file = `${env.dir}/controller-${createHash('sha256').update(server).digest('hex').slice(0, 8)}.kubeconfig`;
    writeFileSync(
      file,
      `apiVersion: v1\nkind: Config\nclusters: [{ name: test, cluster: { server: "${server}", insecure-skip-tls-verify: true } }]\nusers: [{ name: controller, user: { token: "${token.status!.token}" } }]\ncontexts: [{ name: test, context: { cluster: test, user: controller, namespace: ${namespace} } }]\ncurrent-context: test\n`,
    );
    return file;
  };
  const saKubeconfig = kubeconfigFor(env.kc.getCurrentCluster()!.server);

  const cluster: ShopCluster = {
    env,
    namespace,
    saKubeconfig,
    controllers,
    async deployment(name, image, options = {}) {
      const port = options.port ?? 8080;
      const body: V1Deployment = {
        metadata: { name, namespace },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels: { app: name, team: 'shop' } },
            spec: { containers: [{ name: 'app', image, ports: [{ containerPort: port }] }] },
          },
        },
      };
      await env.apps.createNamespacedDeployment({ namespace, body });
      await env.core.createNamespacedService({
        namespace,
        body: {
          metadata: { name },
          spec: { selector: { app: name }, ports: [{ port: 80, targetPort: port }] },
        },
      });
      await cluster.runPods(name, options.ip ? { ip: options.ip } : {});
    },
    async runPods(name, options = {}) {
      const d = await env.apps.readNamespacedDeployment({ name, namespace });
      if (options.replace) {
        const selector = Object.entries(d.spec!.selector.matchLabels ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .join(',');
        await env.core.deleteCollectionNamespacedPod({
          namespace,
          labelSelector: selector,
          gracePeriodSeconds: 0,
        });
      }
      const podName = `${name}-${d.metadata!.generation}-${podIp}`;
      const ip = options.ip ?? `10.1.${Math.floor(podIp / 250)}.${podIp % 250}`;
      podIp++;
      await env.core.createNamespacedPod({
        namespace,
        body: {
          metadata: { name: podName, labels: d.spec!.template.metadata!.labels },
          spec: d.spec!.template.spec!,
        },
      });
      const pod = await env.core.readNamespacedPod({ name: podName, namespace });
      pod.status = { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: 'True' }] };
      await env.core.replaceNamespacedPodStatus({ name: podName, namespace, body: pod });
      d.status = {
        observedGeneration: d.metadata!.generation,
        replicas: 1,
        updatedReplicas: 1,
        readyReplicas: 1,
        availableReplicas: 1,
      };
      await env.apps.replaceNamespacedDeploymentStatus({ name, namespace, body: d });
      return ip;
    },
    async rollOutPromotion(name, image, withinMs = 30_000) {
      const patched = await until(
        () => env.apps.readNamespacedDeployment({ name, namespace }),
        (d) => d.spec?.template.spec?.containers[0]?.image === image,
        withinMs,
      );
      await cluster.runPods(name);
      return patched;
    },
    async createRelease(name, spec) {
      return (await env.custom.createNamespacedCustomObject({
        ...ns,
        plural: 'releases',
        body: {
          apiVersion: 'graylane.dev/v1alpha1',
          kind: 'Release',
          metadata: { name },
          spec,
        },
      })) as ReleaseObject;
    },
    async release(name) {
      return (await env.custom.getNamespacedCustomObject({
        ...ns,
        plural: 'releases',
        name,
      })) as ReleaseObject;
    },
    async patchRelease(name, patch) {
      return (await env.custom.patchNamespacedCustomObject(
        { ...ns, plural: 'releases', name, body: patch },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      )) as ReleaseObject;
    },
    async deleteRelease(name) {
      await env.custom.deleteNamespacedCustomObject({ ...ns, plural: 'releases', name });
    },
    waitForPhase: (name, phase, withinMs = 30_000) =>
      until(
        () => cluster.release(name),
        (r) => r.status?.phase === phase,
        withinMs,
      ),
    async annotate(name, value) {
      await cluster.patchRelease(name, {
        metadata: { annotations: { 'graylane.dev/request': value } },
      });
    },
    deploymentOrUndefined: (name) =>
      env.apps.readNamespacedDeployment({ name, namespace }).catch(() => undefined),
    async waitForDeployment(name, withinMs = 30_000) {
      return (await until(
        () => cluster.deploymentOrUndefined(name),
        (d) => d !== undefined,
        withinMs,
      )) as V1Deployment;
    },
    async eventReasons(name) {
      // The controller writes a status, then its core Events (in the background): wait until
      // there are as many as the status holds, or 10 s, and return what there is.
      const reasons = async () => {
        const events = await env.core.listNamespacedEvent({
          namespace,
          fieldSelector: `involvedObject.name=${name}`,
        });
        return events.items
          .sort((a, b) => String(a.firstTimestamp).localeCompare(String(b.firstTimestamp)))
          .map((e) => e.reason ?? '');
      };
      const want = (await cluster.release(name)).status?.events?.length ?? 0;
      return until(reasons, (r) => r.length >= want, 10_000).catch(() => reasons());
    },
    async mirroredTable() {
      const map = await env.core.readNamespacedConfigMap({
        name: 'graylane-routetable',
        namespace,
      });
      return JSON.parse(mirroredTableText(map)!) as MirroredTable;
    },
    async startController(options = {}) {
      // Port 0 unless asked: a port probed free can be taken before the controller binds it.
      const port = options.port ?? 0;
      const child = spawn(
        process.execPath,
        [
          BIN,
          'controller',
          '--kubernetes',
          '--kubeconfig',
          options.server ? kubeconfigFor(options.server) : saKubeconfig,
          '--namespace',
          namespace,
          '--listen',
          `127.0.0.1:${port}`,
          '--lease-duration',
          '3s',
          '--log-level',
          'warn',
          ...(options.args ?? []),
        ],
        { stdio: ['ignore', 'inherit', 'inherit'] },
      );
      controllers.push(child);
      return child;
    },
    async stop() {
      for (const child of controllers) child.kill('SIGKILL');
      await env.stop();
    },
  };

  await cluster.deployment('backend', 'backend:1');
  await cluster.deployment('frontend', 'frontend:1');
  await env.custom.createNamespacedCustomObject({
    ...ns,
    plural: 'entrypoints',
    body: {
      apiVersion: 'graylane.dev/v1alpha1',
      kind: 'Entrypoint',
      metadata: { name: 'shop' },
      spec: { service: 'frontend' },
    },
  });
  return cluster;
}
