import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
} from '@kubernetes/client-node';
import { Agent, request } from 'undici';
import { parseAllDocuments } from 'yaml';
import { tempDir } from './graylane.js';

const SCRIPT = fileURLToPath(new URL('../../../scripts/kube-test-env.sh', import.meta.url));
export const DEPLOY = fileURLToPath(new URL('../../../deploy/kubernetes/', import.meta.url));

/** A real kube-apiserver + etcd on 127.0.0.1 (built from source once; see scripts/kube-test-env.sh). */
export interface KubeEnv {
  dir: string;
  kubeconfig: string;
  kc: KubeConfig;
  apps: AppsV1Api;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  objects: KubernetesObjectApi;
  /** etcd's client URL (its JSON gateway answers under /v3/). */
  etcdUrl: string;
  /** Stops the API server and starts it again on the same port: its watch cache starts empty. */
  restartApiserver(): Promise<void>;
  /**
   * Compacts etcd's history up to its current revision, as the API server does every 5 minutes:
   * a watch or list from an older resourceVersion is then answered 410 Gone.
   */
  compact(): Promise<number>;
  stop(): Promise<void>;
}

export interface KubeEnvOptions {
  /** Also run kube-controller-manager's garbage collector (and none of its other controllers). */
  garbageCollector?: boolean;
}

export async function startKube(options: KubeEnvOptions = {}): Promise<KubeEnv> {
  const dir = tempDir('graylane-kube-');
  try {
    // The first run on a machine builds kube-apiserver (minutes); later runs reuse the cache.
    const args = [SCRIPT, 'start', dir, ...(options.garbageCollector ? ['--gc'] : [])];
    await promisify(execFile)('bash', args, {
      timeout: 1_500_000,
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(
      `the Kubernetes test environment did not start: ${e.stderr?.trim().split('\n').slice(-5).join('\n') || e.message}`,
    );
  }
  const kubeconfig = `${dir}/kubeconfig`;
  const etcdUrl = /^ETCD_URL=(.*)$/m.exec(readFileSync(`${dir}/env`, 'utf8'))![1]!;
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  return {
    dir,
    kubeconfig,
    kc,
    apps: kc.makeApiClient(AppsV1Api),
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    objects: KubernetesObjectApi.makeApiClient(kc),
    etcdUrl,
    async restartApiserver() {
      await promisify(execFile)('bash', [SCRIPT, 'restart-apiserver', dir], { timeout: 120_000 });
    },
    async compact() {
      const etcd = async (path: string, body: object) => {
        const res = await request(`${etcdUrl}/v3/${path}`, {
          method: 'POST',
          body: JSON.stringify(body),
        });
        const text = await res.body.text();
        if (res.statusCode !== 200) throw new Error(`etcd ${path}: ${res.statusCode} ${text}`);
        return JSON.parse(text) as { header: { revision: string } };
      };
      // Any key will do: every answer carries the store's current revision.
      const { header } = await etcd('kv/range', { key: Buffer.from('/').toString('base64') });
      await etcd('kv/compaction', { revision: header.revision, physical: true });
      return Number(header.revision);
    },
    async stop() {
      await promisify(execFile)('bash', [SCRIPT, 'stop', dir]);
    },
  };
}

const RESOURCES: Record<string, { base: string; plural: string; namespaced: boolean }> = {
  CustomResourceDefinition: {
    base: '/apis/apiextensions.k8s.io/v1',
    plural: 'customresourcedefinitions',
    namespaced: false,
  },
  ServiceAccount: { base: '/api/v1', plural: 'serviceaccounts', namespaced: true },
  Role: { base: '/apis/rbac.authorization.k8s.io/v1', plural: 'roles', namespaced: true },
  RoleBinding: {
    base: '/apis/rbac.authorization.k8s.io/v1',
    plural: 'rolebindings',
    namespaced: true,
  },
};

/**
 * Creates every object of a YAML file with plain JSON over HTTP: the client library's typed
 * serializer drops the `x-kubernetes-*` keys of a CRD schema, which would test the library rather
 * than our manifests.
 */
export async function applyYaml(
  env: KubeEnv,
  text: string,
  namespace = 'default',
): Promise<KubernetesObject[]> {
  const created: KubernetesObject[] = [];
  const cluster = env.kc.getCurrentCluster()!;
  const token = env.kc.getCurrentUser()!.token!;
  // The yaml package, not the client's loadAllYaml, which renames `x-kubernetes-*` keys it knows.
  for (const object of parseAllDocuments(text).map((d) => d.toJS() as KubernetesObject)) {
    if (!object) continue;
    const resource = RESOURCES[object.kind ?? ''];
    if (!resource) throw new Error(`applyYaml: no resource for kind ${object.kind}`);
    const path = resource.namespaced
      ? `${resource.base}/namespaces/${namespace}/${resource.plural}`
      : `${resource.base}/${resource.plural}`;
    const res = await request(`${cluster.server}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(object),
      dispatcher: insecure,
    });
    const body = (await res.body.json()) as KubernetesObject & { message?: string };
    if (res.statusCode >= 300)
      throw new Error(
        `create ${object.kind} ${object.metadata?.name}: ${res.statusCode} ${body.message}`,
      );
    created.push(body);
  }
  return created;
}

const insecure = new Agent({ connect: { rejectUnauthorized: false } });

export const deployFile = (name: string) => readFileSync(`${DEPLOY}${name}`, 'utf8');

/**
 * How many requests the API server answered that match every given label of
 * `apiserver_request_total` (its own count, from `/metrics`): `{ resource: 'releases', subresource:
 * 'status', verb: 'PUT', code: '409' }` counts the status writes that met a stale resourceVersion.
 */
export async function apiserverRequests(
  env: KubeEnv,
  labels: Record<string, string>,
): Promise<number> {
  const res = await request(`${env.kc.getCurrentCluster()!.server}/metrics`, {
    headers: { authorization: `Bearer ${env.kc.getCurrentUser()!.token!}` },
    dispatcher: insecure,
  });
  const text = await res.body.text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const series = line.slice(line.indexOf('{') + 1, line.lastIndexOf('}'));
    const seen = Object.fromEntries(
      [...series.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => seen[k] === v))
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/**
 * A TCP path to the API server that the test can cut and heal, as a network partition between the
 * controller and the cluster would: `cut` drops every open connection (the controller's watches end)
 * and refuses new ones until `heal`. TLS passes through untouched.
 */
export interface Partition {
  /** The API server's URL through this path, for a kubeconfig. */
  url: string;
  cut(): Promise<void>;
  heal(): Promise<void>;
  close(): Promise<void>;
}

export async function partition(env: KubeEnv): Promise<Partition> {
  const target = new URL(env.kc.getCurrentCluster()!.server);
  const sockets = new Set<Socket>();
  let open = true;
  // While cut it keeps listening (its port stays ours) and resets every connection at once.
  const server = createServer((client) => {
    if (!open) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const dropAll = () => {
    for (const socket of sockets) socket.destroy();
  };
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async cut() {
      open = false;
      dropAll();
    },
    async heal() {
      open = true;
    },
    async close() {
      open = false;
      dropAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
