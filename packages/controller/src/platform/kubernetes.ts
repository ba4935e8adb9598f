import { createHash } from 'node:crypto';
import { STABLE } from '@graylane/lane-core';
import {
  AppsV1Api,
  CoreV1Api,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  makeInformer,
  type ObjectCache,
  PatchStrategy,
  setHeaderOptions,
  type V1Deployment,
  type V1Pod,
  type V1PodTemplateSpec,
  type V1Service,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Workload } from '../documents/schema.js';
import { KeepWatching } from '../kubernetes/keep-watching.js';
import type { Platform, WorkloadRef, WorkloadStatus } from './platform.js';

export const LABELS = {
  lane: 'graylane.dev/lane',
  service: 'graylane.dev/service',
  version: 'graylane.dev/version',
  specHash: 'graylane.dev/spec-hash',
} as const;

/** Who owns a canary: the Release, so that deleting it garbage-collects its canaries. */
export interface Owner {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
}

export interface KubernetesPlatformOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  logger: Logger;
  /** The Release that owns the canaries being deployed (set by the driver per call). */
  owner?: (ref: WorkloadRef) => Owner | undefined;
}

type Cache<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

export const canaryName = (service: string, lane: string) => `${service}-${lane}`;

/** Where a pod answers: its first container's first port (80 when it declares none). */
function podEndpoint(pod: V1Pod): string | undefined {
  const ip = pod.status?.podIP;
  const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  if (!ip || !ready || pod.metadata?.deletionTimestamp) return undefined;
  const port = pod.spec?.containers?.[0]?.ports?.[0]?.containerPort ?? 80;
  return `http://${ip.includes(':') ? `[${ip}]` : ip}:${port}`;
}

function matches(
  labels: Record<string, string> | undefined,
  selector: Record<string, string>,
): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** A strategic-merge patch, as far as a canary needs it: objects merge, `containers` merge by name. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (Array.isArray(patch)) {
    if (
      !Array.isArray(target) ||
      !patch.every((p) => typeof (p as { name?: unknown })?.name === 'string')
    )
      return patch;
    const out = [...target] as Array<{ name?: string }>;
    for (const item of patch as Array<{ name: string }>) {
      const at = out.findIndex((t) => t?.name === item.name);
      if (at === -1) out.push(item);
      else out[at] = mergePatch(out[at], item) as { name?: string };
    }
    return out;
  }
  if (patch === null || typeof patch !== 'object') return patch;
  const base =
    target !== null && typeof target === 'object' && !Array.isArray(target)
      ? { ...(target as object) }
      : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete (base as Record<string, unknown>)[key];
    else
      (base as Record<string, unknown>)[key] = mergePatch(
        (base as Record<string, unknown>)[key],
        value,
      );
  }
  return base;
}

/**
 * The canary Deployment of `base` for one lane: the same pod template with the canary's image and
 * patch, and labels that keep it apart. Its pods drop every label the user's Deployment selects on
 * and every label a Service selects on, so neither the stable Deployment nor plain Kubernetes
 * Service traffic ever reaches a canary pod; they carry the graylane labels instead.
 */
export function canaryDeployment(
  base: V1Deployment,
  ref: WorkloadRef,
  workload: Workload,
  serviceSelectors: readonly Record<string, string>[],
  owner?: Owner,
): V1Deployment {
  const template = structuredClone(base.spec!.template);
  const dropped = new Set([
    ...Object.keys(base.spec?.selector?.matchLabels ?? {}),
    ...serviceSelectors.flatMap((s) => Object.keys(s)),
  ]);
  const selector = { [LABELS.service]: ref.service, [LABELS.lane]: ref.lane };
  const labels = Object.fromEntries(
    Object.entries(template.metadata?.labels ?? {}).filter(([k]) => !dropped.has(k)),
  );
  template.metadata = {
    ...template.metadata,
    labels: { ...labels, ...selector, [LABELS.version]: workload.version },
  };
  let deployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: canaryName(ref.service, ref.lane),
      namespace: base.metadata?.namespace,
      labels: { ...selector, [LABELS.version]: workload.version },
      ...(owner
        ? {
            ownerReferences: [
              {
                apiVersion: owner.apiVersion,
                kind: owner.kind,
                name: owner.name,
                uid: owner.uid,
                controller: true,
                blockOwnerDeletion: true,
              },
            ],
          }
        : {}),
    },
    spec: { replicas: base.spec?.replicas ?? 1, selector: { matchLabels: selector }, template },
  };
  if (workload.image) {
    for (const container of deployment.spec!.template.spec?.containers ?? [])
      container.image = workload.image;
  }
  if (workload.patch) deployment = mergePatch(deployment, workload.patch) as V1Deployment;
  const hash = createHash('sha256')
    .update(canonicalJson(deployment.spec))
    .digest('hex')
    .slice(0, 16);
  deployment.metadata!.annotations = {
    ...deployment.metadata!.annotations,
    [LABELS.specHash]: hash,
  };
  return deployment;
}

/**
 * JSON with every map's keys sorted. The same object reads differently from a LIST (the client
 * types it: keys in its models' order) and from a WATCH event (the server's JSON, in Go's field
 * order), so comparing or hashing plain JSON.stringify output would see a change after a restart.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/**
 * The pod template the user's Deployment takes on promotion: the canary's, with the user's own pod
 * labels (so its selector and Services still match) and the canary's version label. Undefined when
 * the Deployment has it already.
 */
export function promotedTemplate(
  base: V1Deployment,
  canary: V1Deployment,
): V1PodTemplateSpec | undefined {
  const template = structuredClone(canary.spec!.template);
  const version = template.metadata?.labels?.[LABELS.version];
  template.metadata = {
    ...template.metadata,
    labels: {
      ...base.spec!.template.metadata?.labels,
      ...(version ? { [LABELS.version]: version } : {}),
    },
  };
  const same =
    canonicalJson(template.spec) === canonicalJson(base.spec!.template.spec) &&
    version === base.spec!.template.metadata?.labels?.[LABELS.version];
  return same ? undefined : template;
}

/** Objects by each `label=value` that `labels` gives them. */
function indexBy<T>(
  objects: readonly T[],
  labels: (object: T) => Record<string, string> | undefined,
): Map<string, T[]> {
  const index = new Map<string, T[]>();
  for (const object of objects) {
    for (const [key, value] of Object.entries(labels(object) ?? {})) {
      const entry = `${key}=${value}`;
      const list = index.get(entry);
      if (list) list.push(object);
      else index.set(entry, [object]);
    }
  }
  return index;
}

const indexByLabel = (pods: readonly V1Pod[]) => indexBy(pods, (p) => p.metadata?.labels);
export const indexServicesBySelector = (services: readonly V1Service[]) =>
  indexBy(services, (s) => s.spec?.selector);

/** The selectors of the indexed Services that select pods with these labels (a Service without one selects none). */
export function selectorsMatching(
  index: Map<string, V1Service[]>,
  podLabels: Record<string, string>,
): Record<string, string>[] {
  const candidates = new Set(
    Object.entries(podLabels).flatMap(([k, v]) => index.get(`${k}=${v}`) ?? []),
  );
  return [...candidates]
    .map((s) => s.spec?.selector ?? {})
    .filter((selector) => matches(podLabels, selector));
}

function rolledOut(d: V1Deployment | undefined): boolean {
  if (!d) return false;
  const want = d.spec?.replicas ?? 1;
  const s = d.status ?? {};
  return (
    (s.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0) &&
    (s.updatedReplicas ?? 0) >= want &&
    (s.availableReplicas ?? 0) >= want
  );
}

/**
 * Kubernetes mode: a service is a Deployment of the release's namespace, a canary is a Deployment
 * `<service>-<lane>` owned by the Release. Everything is read from informers (list, then watch with
 * resourceVersion), never polled.
 */
export class KubernetesPlatform implements Platform {
  readonly name = 'kubernetes';
  private readonly apps: AppsV1Api;
  private readonly core: CoreV1Api;
  private readonly deployments: Cache<V1Deployment>;
  private readonly watching: Array<KeepWatching<KubernetesObject>>;
  private readonly pods: Cache<V1Pod>;
  private readonly services: Cache<V1Service>;
  /** Services by each `label=value` of their selector, built again after any Service changed. */
  private serviceIndex: Map<string, V1Service[]> | undefined;
  /** Pods by `label=value`, built again after any pod changed (see podsMatching). */
  private podIndex: Map<string, V1Pod[]> | undefined;

  constructor(private readonly options: KubernetesPlatformOptions) {
    const { kubeConfig: kc, namespace } = options;
    this.apps = kc.makeApiClient(AppsV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
    this.deployments = makeInformer(kc, `/apis/apps/v1/namespaces/${namespace}/deployments`, () =>
      this.apps.listNamespacedDeployment({ namespace }),
    );
    this.pods = makeInformer(kc, `/api/v1/namespaces/${namespace}/pods`, () =>
      this.core.listNamespacedPod({ namespace }),
    );
    this.services = makeInformer(kc, `/api/v1/namespaces/${namespace}/services`, () =>
      this.core.listNamespacedService({ namespace }),
    );
    for (const event of ['add', 'update', 'delete'] as const) {
      this.pods.on(event, () => {
        this.podIndex = undefined;
      });
      this.services.on(event, () => {
        this.serviceIndex = undefined;
      });
    }
    this.watching = [
      new KeepWatching(this.deployments, 'deployments', options.logger),
      new KeepWatching(this.pods, 'pods', options.logger),
      new KeepWatching(this.services, 'services', options.logger),
    ];
  }

  async start(): Promise<void> {
    await Promise.all(this.watching.map((watching) => watching.start()));
  }

  /** Calls `listener` whenever a Deployment or Pod changes (the driver reconciles then). */
  onChange(listener: () => void): void {
    for (const event of ['add', 'update', 'delete'] as const) {
      this.deployments.on(event, listener);
      this.pods.on(event, listener);
    }
  }

  /**
   * The services: every Deployment of the namespace that is not a canary, with its stable version
   * from the `graylane.dev/version` or `app.kubernetes.io/version` label, else its image's tag.
   */
  stableDeployments(): Array<V1Deployment & { version: string }> {
    return this.deployments
      .list(this.options.namespace)
      .filter((d) => d.metadata?.labels?.[LABELS.lane] === undefined)
      .map((d) => {
        const labels = d.spec?.template.metadata?.labels ?? {};
        const image = d.spec?.template.spec?.containers?.[0]?.image ?? '';
        const tag = image.includes(':') ? image.slice(image.lastIndexOf(':') + 1) : 'latest';
        return {
          ...d,
          version: labels[LABELS.version] ?? labels['app.kubernetes.io/version'] ?? tag,
        };
      });
  }

  private deployment(name: string): V1Deployment | undefined {
    return this.deployments.get(name, this.options.namespace);
  }

  /**
   * Labels the Services of the namespace select on, where they select the stable pods. Only the
   * Services that select on one of the pods' labels are looked at: every canary is deployed again
   * (idempotently) on every pass, and a scan of every Service each time was O(canaries × Services).
   */
  private serviceSelectors(base: V1Deployment): Record<string, string>[] {
    const podLabels = base.spec?.template.metadata?.labels ?? {};
    this.serviceIndex ??= indexServicesBySelector(this.services.list(this.options.namespace));
    return selectorsMatching(this.serviceIndex, podLabels);
  }

  async deploy(ref: WorkloadRef, workload: Workload): Promise<void> {
    if (ref.lane === STABLE) return;
    const base = this.deployment(ref.service);
    if (!base) throw new Error(`Deployment ${this.options.namespace}/${ref.service} not found`);
    const desired = canaryDeployment(
      base,
      ref,
      workload,
      this.serviceSelectors(base),
      this.options.owner?.(ref),
    );
    const existing = this.deployment(desired.metadata!.name!);
    const namespace = this.options.namespace;
    if (!existing) {
      await this.apps
        .createNamespacedDeployment({ namespace, body: desired })
        .catch((error: unknown) => {
          if ((error as { code?: number }).code !== 409) throw error;
        });
      return;
    }
    if (
      existing.metadata?.annotations?.[LABELS.specHash] ===
      desired.metadata!.annotations![LABELS.specHash]
    )
      return;
    desired.metadata!.resourceVersion = existing.metadata?.resourceVersion;
    await this.apps.replaceNamespacedDeployment({
      name: desired.metadata!.name!,
      namespace,
      body: desired,
    });
  }

  status(ref: WorkloadRef, _workload: Workload): WorkloadStatus {
    const name = ref.lane === STABLE ? ref.service : canaryName(ref.service, ref.lane);
    const d = this.deployment(name);
    if (!d) return { health: 'absent', endpoints: [] };
    const selector = d.spec?.selector?.matchLabels ?? {};
    const endpoints = this.podsMatching(selector)
      .map(podEndpoint)
      .filter((e): e is string => e !== undefined)
      .sort();
    if (rolledOut(d)) return { health: 'ready', endpoints };
    const available = d.status?.availableReplicas ?? 0;
    return {
      health: 'starting',
      endpoints,
      message: `${available}/${d.spec?.replicas ?? 1} available`,
    };
  }

  /**
   * The pods a selector matches, from the pods that carry its rarest label. A scan of every pod per
   * Deployment made each pass O(Deployments × Pods): at 500 releases × 10 services, 10,000 pods
   * read 10,000 times (bench/kubernetes-scale.mjs).
   */
  private podsMatching(selector: Record<string, string>): V1Pod[] {
    this.podIndex ??= indexByLabel(this.pods.list(this.options.namespace));
    let fewest: V1Pod[] | undefined;
    for (const [key, value] of Object.entries(selector)) {
      const pods = this.podIndex.get(`${key}=${value}`) ?? [];
      if (fewest === undefined || pods.length < fewest.length) fewest = pods;
    }
    // An empty selector selects every pod.
    return (fewest ?? this.pods.list(this.options.namespace)).filter((p) =>
      matches(p.metadata?.labels, selector),
    );
  }

  async remove(ref: WorkloadRef): Promise<void> {
    if (ref.lane === STABLE) return;
    await this.apps
      .deleteNamespacedDeployment({
        name: canaryName(ref.service, ref.lane),
        namespace: this.options.namespace,
      })
      .catch((error: unknown) => {
        if ((error as { code?: number }).code !== 404) throw error;
      });
  }

  /**
   * The user's Deployment takes the canary's pod template (its own labels kept, so its selector and
   * Services still match), rolls out, and only then is the canary deleted. Called again until done.
   */
  async promote(service: string, lane: string): Promise<void> {
    const base = this.deployment(service);
    const canary = this.deployment(canaryName(service, lane));
    if (!base) throw new Error(`Deployment ${this.options.namespace}/${service} not found`);
    if (canary) {
      const template = promotedTemplate(base, canary);
      if (template) {
        await this.apps.patchNamespacedDeployment(
          { name: service, namespace: this.options.namespace, body: { spec: { template } } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
        return;
      }
      if (!rolledOut(base)) return;
      await this.remove({ service, lane });
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.watching.map((watching) => watching.stop()));
  }
}
