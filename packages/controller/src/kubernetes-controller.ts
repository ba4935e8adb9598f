import type { Problem, RouteTable } from '@graylane/lane-core';
import {
  CoreV1Api,
  CustomObjectsApi,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  makeInformer,
  type ObjectCache,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { AnalysisRunner } from './analysis/runner.js';
import { parseDocument } from './documents/parse.js';
import type { EntrypointDocument, ReleaseDocument, ServiceDocument } from './documents/schema.js';
import { KeepWatching } from './kubernetes/keep-watching.js';
import { LeaderElector } from './kubernetes/lease.js';
import { ReleaseEvents } from './kubernetes/release-events.js';
import { applyRequest, REQUEST_ANNOTATION } from './kubernetes/request.js';
import { RouteTableMirror } from './kubernetes/route-table-mirror.js';
import { observeCanaries } from './platform/calls.js';
import { Effects } from './platform/effects.js';
import { KubernetesPlatform } from './platform/kubernetes.js';
import { advance } from './release/machine.js';
import { orderProblems } from './release/order.js';
import { isActive } from './release/phases.js';
import {
  initialStatus,
  type Release,
  type ReleaseEvent,
  type ReleaseStatus,
} from './release/status.js';
import { GraylaneProxyRouter } from './traffic/graylane-proxy.js';
import { RouteTablePublisher } from './traffic/publisher.js';
import { buildRouteTable } from './traffic/route-table.js';

const GROUP = 'graylane.dev';
const VERSION = 'v1alpha1';

type Cache<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

interface ReleaseObject extends KubernetesObject {
  spec: unknown;
  status?: Partial<ReleaseStatus> & { observedGeneration?: number; conditions?: Condition[] };
}

interface EntrypointObject extends KubernetesObject {
  spec: unknown;
}

interface Condition {
  type: string;
  status: 'True' | 'False';
  reason: string;
  message: string;
  lastTransitionTime: string;
}

export interface KubernetesControllerOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  identity: string;
  logger: Logger;
  leaseDurationMs?: number;
  reconcileMs?: number;
  heartbeatMs?: number;
}

/**
 * Kubernetes mode: the same release core over Releases stored as custom resources, canary
 * Deployments, and a route table built from pods. Level-triggered: informers (list + watch with
 * resourceVersion) keep a cache, and every pass recomputes from it; a status write that lost a race
 * (409 Conflict) is simply recomputed on the next pass. One replica acts, elected on a Lease.
 */
export class KubernetesController {
  readonly publisher: RouteTablePublisher;
  readonly platform: KubernetesPlatform;
  private readonly custom: CustomObjectsApi;
  private readonly releases: Cache<ReleaseObject>;
  private readonly watching: Array<KeepWatching<KubernetesObject>>;
  private readonly entrypoints: Cache<EntrypointObject>;
  private readonly elector: LeaderElector;
  private readonly mirror: RouteTableMirror;
  private router: GraylaneProxyRouter | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly effects: Effects;
  private readonly analysis: AnalysisRunner;
  private readonly events: ReleaseEvents;
  private readonly logger: Logger;

  constructor(private readonly options: KubernetesControllerOptions) {
    const { kubeConfig: kc, namespace } = options;
    this.logger = options.logger;
    this.effects = new Effects({ logger: options.logger });
    this.analysis = new AnalysisRunner({
      logger: options.logger,
      // In a cluster the controller runs no proxy of its own: a direct provider names its targets
      // and synthetic load its url, or the release is refused (see problems()).
      managedTargets: () => [],
      gateway: () => undefined,
      onMeasured: () => this.poke(),
    });
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.events = new ReleaseEvents(kc.makeApiClient(CoreV1Api), {
      namespace,
      apiVersion: `${GROUP}/${VERSION}`,
      logger: this.logger,
      writesInFlight: WRITES_IN_FLIGHT,
    });
    this.publisher = new RouteTablePublisher({
      logger: options.logger,
      ...(options.heartbeatMs ? { heartbeatMs: options.heartbeatMs } : {}),
    });
    this.platform = new KubernetesPlatform({
      kubeConfig: kc,
      namespace,
      logger: options.logger,
      owner: (ref) => {
        const owner = this.releases
          .list(this.options.namespace)
          .find(
            (r) =>
              isActive((r.status?.phase ?? 'Pending') as never) &&
              (r.spec as ReleaseDocument['spec'])?.lane === ref.lane,
          );
        return owner?.metadata?.uid
          ? {
              apiVersion: `${GROUP}/${VERSION}`,
              kind: 'Release',
              name: owner.metadata.name!,
              uid: owner.metadata.uid,
            }
          : undefined;
      },
    });
    const list = (plural: string) => () =>
      this.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural });
    this.releases = makeInformer(
      kc,
      `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/releases`,
      list('releases'),
    );
    this.entrypoints = makeInformer(
      kc,
      `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/entrypoints`,
      list('entrypoints'),
    );
    this.watching = [
      new KeepWatching(this.releases, 'releases', options.logger),
      new KeepWatching(this.entrypoints, 'entrypoints', options.logger),
    ];
    for (const informer of [this.releases, this.entrypoints] as Array<Cache<KubernetesObject>>) {
      for (const event of ['add', 'update', 'delete'] as const)
        informer.on(event, () => this.poke());
    }
    this.platform.onChange(() => this.poke());
    this.mirror = new RouteTableMirror({ kubeConfig: kc, namespace, logger: options.logger });
    this.mirror.onTable((table) => this.follow(table));
    this.elector = new LeaderElector({
      kubeConfig: kc,
      namespace,
      name: 'graylane-controller',
      identity: options.identity,
      leaseDurationMs: options.leaseDurationMs ?? 15_000,
      logger: options.logger,
      onStartedLeading: () => void this.lead(),
      onStoppedLeading: () => {
        this.router = undefined;
        const latest = this.mirror.latest();
        if (latest) this.follow(latest);
        // The next leader measures afresh from the status (an interval is never counted twice).
        this.analysis.close();
      },
    });
  }

  get isLeader(): boolean {
    return this.elector.isLeader;
  }

  async start(): Promise<void> {
    await Promise.all([
      this.platform.start(),
      ...this.watching.map((watching) => watching.start()),
      this.mirror.start(),
    ]);
    this.elector.start();
    this.timer = setInterval(() => this.poke(), this.options.reconcileMs ?? 500);
  }

  /**
   * A new leader starts from the route table its predecessor mirrored last, so that it never
   * publishes a revision at or below what proxies already serve. Without an answer from the API
   * server it does not start at all (from nothing it would publish revision 1), and asks again.
   */
  private async lead(): Promise<void> {
    let previous: RouteTable | undefined;
    try {
      previous = await this.mirror.read();
    } catch (error) {
      this.logger.warn(
        { err: error },
        'cannot read the route-table mirror; leading once it answers',
      );
      setTimeout(() => {
        if (this.elector.isLeader && !this.router) void this.lead();
      }, 1_000);
      return;
    }
    if (!(await this.events.startLeading(() => this.elector.isLeader))) return;
    this.router = new GraylaneProxyRouter(this.publisher, {
      previous,
      revision: previous?.revision ?? 0,
      requiredProxies: () => [],
      reconnectGraceMs: (this.options.heartbeatMs ?? 5_000) * 2,
      commit: (table) => this.mirror.write(table),
    });
    this.poke();
  }

  /**
   * A follower serves the table the leader mirrored (it never writes one), so that proxies behind
   * a Service in front of every replica get the current table whichever replica they reach.
   */
  private follow(table: RouteTable): void {
    if (this.router) return;
    if (table.revision > (this.publisher.current?.revision ?? 0)) this.publisher.publish(table);
  }

  private poke(): void {
    if (this.running || !this.router) return;
    this.running = this.reconcile()
      .catch((error: unknown) => this.logger.error({ err: error }, 'reconcile failed'))
      .finally(() => {
        this.running = undefined;
      });
  }

  private releaseObjects(): ReleaseObject[] {
    return [...this.releases.list(this.options.namespace)].sort((a, b) =>
      String(a.metadata?.creationTimestamp).localeCompare(String(b.metadata?.creationTimestamp)),
    );
  }

  /** The Entrypoint custom resources, as documents (invalid ones are skipped with a log line). */
  private entrypointDocuments(): EntrypointDocument[] {
    return this.entrypoints.list(this.options.namespace).flatMap((object) => {
      try {
        return [
          parseDocument(
            { metadata: { name: object.metadata?.name }, spec: object.spec },
            'Entrypoint',
          ),
        ];
      } catch (error) {
        this.logger.warn({ entrypoint: object.metadata?.name, err: error }, 'entrypoint refused');
        return [];
      }
    });
  }

  /** Every Deployment that is not a canary is a service; its stable version from its labels or image. */
  private serviceDocuments(
    stable: ReturnType<KubernetesPlatform['stableDeployments']>,
  ): ServiceDocument[] {
    return stable.map((d) => ({
      apiVersion: 'graylane.dev/v1alpha1',
      kind: 'Service',
      metadata: { name: d.metadata!.name! },
      spec: {
        stable: {
          version: d.version,
          image: d.spec?.template.spec?.containers?.[0]?.image ?? 'unknown',
        },
      },
    }));
  }

  /**
   * A Release's spec checked as local mode checks it, against what the cluster holds (`pass`: one
   * reading of it per reconcile, so that checking R new releases is not R readings of everything).
   */
  private problems(spec: ReleaseDocument['spec'], name: string, pass: PassView): Problem[] {
    const problems: Problem[] = [];
    if (!pass.entrypoints.has(spec.entrypoint)) {
      problems.push({
        path: 'spec.entrypoint',
        message: `unknown entrypoint "${spec.entrypoint}"`,
      });
    }
    spec.services.forEach((s, i) => {
      if (!pass.services.has(s.name))
        problems.push({ path: `spec.services[${i}].name`, message: `no Deployment "${s.name}"` });
      if (s.canary.image === undefined && s.canary.patch === undefined) {
        problems.push({
          path: `spec.services[${i}].canary`,
          message: 'Kubernetes mode takes image and/or patch',
        });
      }
    });
    problems.push(...orderProblems(spec.services), ...analysisProblems(spec));
    const laneOwner = pass.laneOwners.get(spec.lane);
    if (laneOwner !== undefined && laneOwner !== name) {
      problems.push({
        path: 'spec.lane',
        message: `lane ${spec.lane} is already used by release ${laneOwner}`,
      });
    }
    const reported = new Set<string>();
    for (const s of spec.services) {
      const owner = pass.serviceOwners.get(s.name);
      if (owner === undefined || owner === name || reported.has(owner)) continue;
      reported.add(owner);
      problems.push({
        path: 'spec.services',
        message: `service ${s.name} is in release ${owner} too`,
      });
    }
    return problems;
  }

  private async reconcile(): Promise<void> {
    if (!this.elector.isLeader || !this.router) return;
    const now = Date.now();
    const active: Release[] = [];
    const stable = this.platform.stableDeployments();
    const pass: PassView = {
      entrypoints: new Map(this.entrypointDocuments().map((e) => [e.metadata.name, e])),
      services: new Set(stable.map((d) => d.metadata!.name!)),
      laneOwners: new Map(),
      serviceOwners: new Map(),
    };
    const requestEvents = new Map<string, ReleaseEvent[]>();
    const decided: Array<{
      object: ReleaseObject;
      release: Release;
      events: ReleaseEvent[];
      changed: boolean;
      invalid?: Problem[];
    }> = [];
    for (const object of this.releaseObjects()) {
      let doc: ReleaseDocument;
      try {
        doc = parseDocument(
          { metadata: { name: object.metadata?.name }, spec: object.spec },
          'Release',
        );
      } catch (error) {
        decided.push({
          object,
          release: undefined as never,
          events: [],
          changed: false,
          invalid: (error as { problems: Problem[] }).problems,
        });
        continue;
      }
      const stored = object.status?.phase ? (object.status as ReleaseStatus) : undefined;
      if (stored) await this.events.catchUp(object, stored.events, now);
      const status =
        stored ??
        initialStatus(doc.spec, Date.parse(String(object.metadata?.creationTimestamp ?? now)));
      const release: Release = { ...doc, status };
      if (!stored) {
        const problems = this.problems(doc.spec, doc.metadata.name, pass);
        if (problems.length > 0) {
          decided.push({ object, release, events: [], changed: false, invalid: problems });
          continue;
        }
      }
      if (!isActive(status.phase)) {
        this.analysis.forget(doc.metadata.name);
        continue;
      }
      const requested = applyRequest(
        object.metadata?.annotations?.[REQUEST_ANNOTATION],
        release,
        now,
      );
      if (requested) {
        release.status = requested.status;
        requestEvents.set(object.metadata!.name!, requested.events);
      }
      const canaries = observeCanaries(this.platform, doc.spec);
      const entryService = pass.entrypoints.get(doc.spec.entrypoint)?.spec.service;
      const outcome = advance(
        release,
        {
          now,
          canaries,
          applied: (r) => this.router!.applied(r),
          ...this.analysis.observe(release, now),
        },
        entryService,
      );
      const next: Release = { ...release, status: outcome.status };
      active.push(next);
      pass.laneOwners.set(doc.spec.lane, doc.metadata.name);
      for (const member of doc.spec.services)
        pass.serviceOwners.set(member.name, doc.metadata.name);
      decided.push({
        object,
        release: next,
        // `Created` on the first write, the user's action (from the request annotation), then
        // what it led to.
        events: [
          ...(stored ? [] : status.events),
          ...(requestEvents.get(object.metadata!.name!) ?? []),
          ...outcome.events,
        ],
        changed: JSON.stringify(outcome.status) !== JSON.stringify(stored),
      });
      this.effects.converge(next, this.platform);
    }
    const revision = await this.publishRouting(active, stable, [...pass.entrypoints.values()]);
    // A few writes at a time: one after the other, 500 releases changing at once took ~500 round
    // trips per pass; each release's own status and events stay in order.
    await forEachLimit(decided, WRITES_IN_FLIGHT, async (item) => {
      if (item.invalid) {
        await this.writeInvalid(item.object, item.invalid);
        return;
      }
      if (item.release.status.awaitRevision === -1) {
        item.release.status.awaitRevision = revision;
        item.changed = true;
      }
      if (item.changed) await this.writeStatus(item.object, item.release, item.events);
    });
  }

  private async publishRouting(
    active: Release[],
    stable: ReturnType<KubernetesPlatform['stableDeployments']>,
    entrypoints: EntrypointDocument[],
  ): Promise<number> {
    const desired = buildRouteTable({
      services: this.serviceDocuments(stable),
      entrypoints,
      releases: active,
      endpointsOf: (service, lane, workload) =>
        this.platform.status({ service, lane }, workload).endpoints,
    });
    try {
      return await this.router!.apply(desired);
    } catch (error) {
      this.logger.error(
        { err: error },
        'the route table built from the cluster is invalid; keeping the last one',
      );
      return this.router!.current()?.revision ?? 0;
    }
  }

  /** Writes the status subresource with the resourceVersion the informer saw; 409 means recompute. */
  private async writeStatus(
    object: ReleaseObject,
    release: Release,
    events: readonly ReleaseEvent[],
  ): Promise<void> {
    const body = {
      ...object,
      status: {
        ...release.status,
        observedGeneration: object.metadata?.generation,
        conditions: [condition('Valid', 'True', 'Accepted', 'the spec is valid')],
      },
    };
    if (!(await this.replaceStatus(object, body))) return;
    this.events.record(object, events);
  }

  /** PUT on the status subresource; false when another writer won (409): the next pass recomputes. */
  private async replaceStatus(object: ReleaseObject, body: unknown): Promise<boolean> {
    try {
      await this.custom.replaceNamespacedCustomObjectStatus({
        group: GROUP,
        version: VERSION,
        namespace: this.options.namespace,
        plural: 'releases',
        name: object.metadata!.name!,
        body: body as object,
      });
      return true;
    } catch (error) {
      if ((error as { code?: number }).code === 409) return false;
      throw error;
    }
  }

  private async writeInvalid(object: ReleaseObject, problems: readonly Problem[]): Promise<void> {
    const message = problems.map((p) => `${p.path}: ${p.message}`).join('; ');
    const existing = object.status?.conditions?.find((c) => c.type === 'Valid');
    if (existing?.status === 'False' && existing.message === message) return;
    const body = {
      ...object,
      status: {
        ...object.status,
        observedGeneration: object.metadata?.generation,
        conditions: [condition('Valid', 'False', 'InvalidSpec', message)],
      },
    };
    await this.replaceStatus(object, body);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.analysis.close();
    await this.running;
    await this.effects.settled();
    await this.events.settled();
    await this.elector.stop(true);
    await Promise.all([...this.watching.map((watching) => watching.stop()), this.mirror.stop()]);
    await this.platform.close();
    this.publisher.close();
  }
}

/** What analysis needs that local mode supplies itself: the controller's own proxy and gateway. */
function analysisProblems(spec: ReleaseDocument['spec']): Problem[] {
  const analysis = spec.analysis;
  const problems: Problem[] = [];
  if (analysis?.provider.type === 'direct' && !analysis.provider.targets?.length) {
    problems.push({
      path: 'spec.analysis.provider.targets',
      message:
        'in Kubernetes mode the controller runs no proxy: give the direct provider the proxies’ /metrics URLs, or use prometheus',
    });
  }
  if (analysis?.load && analysis.load.url === undefined) {
    problems.push({
      path: 'spec.analysis.load.url',
      message: 'in Kubernetes mode the controller runs no gateway: give the load its url',
    });
  }
  return problems;
}

/** What one reconcile pass reads of the cluster once, and the releases it has decided so far. */
interface PassView {
  entrypoints: Map<string, EntrypointDocument>;
  /** The names of the user Deployments (the services). */
  services: Set<string>;
  /** The active releases decided so far in this pass, by lane and by service. */
  laneOwners: Map<string, string>;
  serviceOwners: Map<string, string>;
}

/** Status writes in flight in a pass, and core Event writes in flight: each at most this many. */
const WRITES_IN_FLIGHT = 8;

/** Runs `fn` over `items`, at most `limit` at a time. */
async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function condition(
  type: string,
  status: 'True' | 'False',
  reason: string,
  message: string,
): Condition {
  return { type, status, reason, message, lastTransitionTime: new Date().toISOString() };
}
