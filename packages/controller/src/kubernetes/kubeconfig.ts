import { delimiter } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

export interface KubernetesTarget {
  kubeConfig: KubeConfig;
  namespace: string;
}

/**
 * The cluster and namespace to act on, as kubectl finds them: `--kubeconfig` (or `KUBECONFIG`,
 * in-cluster, `~/.kube/config`), then `--namespace`, else the context's namespace, else `default`.
 * Throws with the reason when the kubeconfig cannot be read.
 */
export function kubernetesTarget(options: {
  kubeconfig?: string;
  namespace?: string;
}): KubernetesTarget {
  const kubeConfig = new KubeConfig();
  try {
    // A KUBECONFIG list (a:b) is merged as kubectl merges it, by the library's default loader.
    if (options.kubeconfig && !options.kubeconfig.includes(delimiter))
      kubeConfig.loadFromFile(options.kubeconfig);
    else kubeConfig.loadFromDefault();
  } catch (error) {
    throw new Error(`cannot read the kubeconfig: ${(error as Error).message}`);
  }
  const namespace =
    options.namespace ??
    kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace ??
    'default';
  return { kubeConfig, namespace };
}
