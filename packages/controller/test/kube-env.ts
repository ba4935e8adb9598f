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
  loadAllYaml,
} from '@kubernetes/client-node';
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

export async function startKube(): Promise<KubeEnv> {
  const dir = tempDir('graylane-kube-');
  try {
    // The first run on a machine builds kube-apiserver (minutes); later runs reuse the cache.
    await promisify(execFile)('bash', [SCRIPT, 'start', dir], {
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

/** Creates every object of a YAML file (or text), in `namespace` where they are namespaced. */
export async function applyYaml(
  env: KubeEnv,
  text: string,
  namespace?: string,
): Promise<KubernetesObject[]> {
  const created: KubernetesObject[] = [];
  for (const object of loadAllYaml(text) as KubernetesObject[]) {
    if (!object) continue;
    if (namespace && object.kind !== 'CustomResourceDefinition' && object.kind !== 'Namespace') {
      object.metadata = { ...object.metadata, namespace };
    }
    created.push(await env.objects.create(object));
  }
  return created;
}

export const deployFile = (name: string) => readFileSync(`${DEPLOY}${name}`, 'utf8');
