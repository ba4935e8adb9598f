import type { V1Container, V1EnvVar, V1PodTemplateSpec } from '@kubernetes/client-node';

export interface InjectOptions {
  /** The graylane-proxy image. */
  image: string;
  /** Where the sidecar watches the route table. */
  routeTable: string;
  outboundPort?: number;
  adminPort?: number;
}

const SIDECAR = 'graylane-proxy';
/** The one image deploy/kubernetes/Dockerfile builds: both bins, `graylane` its entrypoint. */
export const GRAYLANE_IMAGE = 'ghcr.io/graylane/graylane:0.1.0';
const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']);

function setEnv(env: V1EnvVar[] | undefined, name: string, value: string): V1EnvVar[] {
  const rest = (env ?? []).filter((e) => e.name !== name);
  return [...rest, { name, value }];
}

/** The sidecar and the proxy environment in one pod template; the same result however often it runs. */
export function injectTemplate(
  template: V1PodTemplateSpec,
  options: InjectOptions,
): V1PodTemplateSpec {
  const out = structuredClone(template);
  const outbound = options.outboundPort ?? 15001;
  const admin = options.adminPort ?? 15000;
  const spec = out.spec ?? { containers: [] };
  const proxy = `http://127.0.0.1:${outbound}`;
  const noProxy = 'localhost,127.0.0.1,::1';
  const apps = spec.containers
    .filter((c) => c.name !== SIDECAR)
    .map((c) => {
      let env = c.env;
      for (const [name, value] of [
        ['HTTP_PROXY', proxy],
        ['http_proxy', proxy],
        ['NO_PROXY', noProxy],
        ['no_proxy', noProxy],
      ] as const) {
        env = setEnv(env, name, value);
      }
      return { ...c, env };
    });
  const sidecar: V1Container = {
    name: SIDECAR,
    image: options.image,
    command: ['graylane-proxy'],
    args: [
      '--route-table',
      options.routeTable,
      '--outbound',
      `127.0.0.1:${outbound}`,
      '--admin',
      `127.0.0.1:${admin}`,
    ],
    // The admin listener answers loopback only, so the kubelet checks the outbound port.
    readinessProbe: { tcpSocket: { port: outbound } },
  };
  spec.containers = [...apps, sidecar];
  out.spec = spec;
  out.metadata = {
    ...out.metadata,
    annotations: { ...out.metadata?.annotations, 'graylane.dev/injected': 'true' },
  };
  return out;
}

/**
 * `graylane inject`: every workload of a manifest gets the graylane-proxy sidecar and the app
 * containers get HTTP_PROXY/NO_PROXY pointing at it, as `linkerd inject` does. Other objects pass
 * through unchanged.
 */
export function injectManifest(documents: readonly unknown[], options: InjectOptions): unknown[] {
  return documents.map((doc) => {
    const object = doc as {
      kind?: string;
      spec?: { template?: V1PodTemplateSpec; jobTemplate?: unknown };
    };
    if (!object || !WORKLOADS.has(object.kind ?? '') || !object.spec?.template) return doc;
    return {
      ...object,
      spec: { ...object.spec, template: injectTemplate(object.spec.template, options) },
    };
  });
}
