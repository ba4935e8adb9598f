import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
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
