import { STABLE } from '@graylane/lane-core';
import type { Logger } from 'pino';
import { AnalysisRunner } from './analysis/runner.js';
import type { AnyDocument } from './documents/parse.js';
import { checkReferences, dependents } from './documents/references.js';
import { ControllerError } from './errors.js';
import { observeCanaries } from './platform/calls.js';
import { Effects } from './platform/effects.js';
import { LocalPlatform } from './platform/local.js';
import { ManagedProxy, type ManagedProxyOptions } from './platform/managed-proxy.js';
import type { Platform } from './platform/platform.js';
import { act, type ReleaseAction } from './release/actions.js';
import { advance } from './release/machine.js';
import { isActive, servesStable } from './release/phases.js';
import { initialStatus, type Release, type ReleaseEvent } from './release/status.js';
import { FileStateStore, loadOrCreateToken } from './state/file-store.js';
import type { ControllerState } from './state/store.js';
import { GraylaneProxyRouter } from './traffic/graylane-proxy.js';
import { RouteTablePublisher } from './traffic/publisher.js';
import { buildRouteTable, finishRouteTable } from './traffic/route-table.js';
import type { TrafficRouter } from './traffic/router.js';

export interface ControllerOptions {
  stateDir: string;
  /** The controller's own URL, for the proxies it starts to watch. */
  url: () => string;
  logger: Logger;
  proxies: ManagedProxyOptions;
  readToken?: string;
  reconcileMs?: number;
  drainMs?: number;
  heartbeatMs?: number;
}

/**
 * The control plane of local mode: documents in, state on disk, the release core driven by a
 * reconcile loop, workloads on the local platform and routing through the proxies' route table.
 */
export class Controller {
  readonly store: FileStateStore;
  readonly publisher: RouteTablePublisher;
  token = '';
  /** Set once the state is loaded, the token exists and the first reconcile ran. */
  started = false;
  tokenCreated = false;
  private state!: ControllerState;
  private committed: ControllerState | undefined;
  private platform!: Platform & { supervisor?: LocalPlatform['supervisor'] };
  private router!: TrafficRouter;
  private timer: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> | undefined;
  private again = false;
  private closing = false;
  private scheduled: NodeJS.Immediate | undefined;
  private readonly effects: Effects;
  private readonly logger: Logger;
  private readonly proxy: ManagedProxy;
  private readonly analysis: AnalysisRunner;

  constructor(private readonly options: ControllerOptions) {
    this.logger = options.logger;
    this.proxy = new ManagedProxy({
      listeners: options.proxies,
      stateDir: options.stateDir,
      url: options.url,
      ...(options.readToken ? { readToken: options.readToken } : {}),
    });
    this.effects = new Effects({ logger: options.logger, onSettled: () => this.poke() });
    this.analysis = new AnalysisRunner({
      logger: options.logger,
      managedTargets: () => this.metricsTargets(),
      gateway: () => this.proxy.gatewayUrl(),
      onMeasured: () => this.poke(),
    });
    this.store = new FileStateStore(options.stateDir);
    this.publisher = new RouteTablePublisher({
      logger: options.logger,
      ...(options.heartbeatMs ? { heartbeatMs: options.heartbeatMs } : {}),
    });
  }

  /** Locks and loads the state, adopts what runs, and starts reconciling. The API is bound by the caller. */
  async start(): Promise<void> {
    await this.store.lock();
    try {
      this.state = await this.store.load();
      this.committed = structuredClone(this.state);
    } catch (error) {
      await this.store.close();
      throw error;
    }
    const token = await loadOrCreateToken(this.options.stateDir);
    this.token = token.token;
    this.tokenCreated = token.created;
    const local = new LocalPlatform({
      stateDir: this.options.stateDir,
      logger: this.logger,
      drainMs: this.options.drainMs ?? 1_000,
      env: () => this.proxy.appEnv(),
      onChange: (records) => {
        this.state.processes = records;
        this.persist();
        this.poke();
      },
      declared: [...(this.state.declared ?? [])],
      reservedPorts: () => this.proxy.reservedPorts(),
      onDeclared: (declared) => {
        this.state.declared = declared;
        this.persist();
      },
    });
    this.platform = local;
    const adoption = await local.supervisor.adopt(this.state.processes);
    if (Object.values(adoption).some((list) => list.length > 0)) {
      this.logger.info(adoption, 'processes from the previous run');
    }
    this.router = new GraylaneProxyRouter(this.publisher, {
      previous: this.state.routeTable,
      revision: this.state.revision,
      requiredProxies: () => (this.proxy.wanted ? [ManagedProxy.proxyId] : []),
      reconnectGraceMs: (this.options.heartbeatMs ?? 5_000) * 2,
      commit: async (table) => {
        this.state.revision = table.revision;
        this.state.routeTable = table;
        await this.save();
      },
    });
    this.timer = setInterval(() => this.poke(), this.options.reconcileMs ?? 250);
    await this.reconcile();
    this.started = true;
  }

  /**
   * Waits until the proxy run for `--gateway`/`--outbound` is ready; says why it is not when it
   * exits or times out first.
   */
  async managedProxyProblem(): Promise<string | undefined> {
    if (!(this.platform instanceof LocalPlatform)) return undefined;
    return this.proxy.problem(this.platform.supervisor);
  }

  get snapshot(): Readonly<ControllerState> {
    return this.state;
  }

  /** Runs a reconcile soon; calls while one runs fold into one more. */
  poke(): void {
    if (this.closing) return;
    if (this.reconciling || this.scheduled) {
      if (this.reconciling) this.again = true;
      return;
    }
    // A macrotask, so that a burst of changes is one reconcile and never starves the API.
    this.scheduled = setImmediate(() => {
      this.scheduled = undefined;
      this.runReconcile();
    });
  }

  private runReconcile(): void {
    this.reconciling = this.reconcile()
      .catch((error: unknown) => this.logger.error({ err: error }, 'reconcile failed'))
      .finally(() => {
        this.reconciling = undefined;
        if (this.again) {
          this.again = false;
          this.poke();
        }
      });
  }

  /**
   * Writes a snapshot of the state. The API answers from the last snapshot on disk, never from
   * memory ahead of it, so what a client saw survives a `kill -9` at any instant.
   */
  private save(): Promise<void> {
    const snapshot = structuredClone(this.state);
    return this.store.save(snapshot).then(() => {
      this.committed = snapshot;
    });
  }

  private persist(): void {
    if (!this.state) return;
    this.save().catch((error: unknown) => this.logger.error({ err: error }, 'state write failed'));
  }

  /** Documents as last written to disk, for reads. */
  view(kind: AnyDocument['kind']): Readonly<Record<string, AnyDocument>> {
    const state = this.committed ?? this.state;
    if (kind === 'Service') return state.services;
    if (kind === 'Entrypoint') return state.entrypoints;
    return state.releases;
  }

  private entryService(release: Release): string | undefined {
    return this.state.entrypoints[release.spec.entrypoint]?.spec.service;
  }

  private releasesByAge(): Release[] {
    return Object.values(this.state.releases).sort((a, b) =>
      a.status.createdAt.localeCompare(b.status.createdAt),
    );
  }

  private async reconcile(): Promise<void> {
    if (this.platform instanceof LocalPlatform) await this.proxy.ensure(this.platform.supervisor);
    // While a promotion moves a service's stable version, the platform's promote owns its instances.
    const promoting = new Set(
      Object.values(this.state.releases)
        .filter((r) => isActive(r.status.phase))
        .flatMap((r) => Object.entries(r.status.services))
        .filter(([, s]) => servesStable(s.canary))
        .map(([name]) => name),
    );
    for (const service of Object.values(this.state.services)) {
      if (service.spec.stable.run && !promoting.has(service.metadata.name)) {
        const ref = { service: service.metadata.name, lane: STABLE };
        this.effects.start(
          `deploy ${ref.service}/${ref.lane}`,
          () => this.platform.deploy(ref, service.spec.stable),
          false,
        );
      }
    }
    const now = Date.now();
    let changed = false;
    for (const release of this.releasesByAge()) {
      if (!isActive(release.status.phase)) {
        this.analysis.forget(release.metadata.name);
        continue;
      }
      const outcome = advance(
        release,
        {
          now,
          canaries: observeCanaries(this.platform, release.spec),
          applied: (r) => this.router.applied(r),
          ...this.analysis.observe(release, now),
        },
        this.entryService(release),
      );
      if (
        outcome.events.length > 0 ||
        JSON.stringify(outcome.status) !== JSON.stringify(release.status)
      ) {
        release.status = outcome.status;
        changed = true;
        this.logEvents(release, outcome.events);
      }
      this.converge(release);
    }
    const revision = await this.publishRouting();
    for (const release of Object.values(this.state.releases)) {
      if (release.status.awaitRevision === -1) {
        release.status.awaitRevision = revision;
        changed = true;
      }
    }
    if (changed || revision !== this.state.revision) this.persist();
  }

  private logEvents(release: Release, events: readonly ReleaseEvent[]): void {
    for (const event of events) {
      this.logger[event.type === 'Warning' ? 'warn' : 'info'](
        {
          release: release.metadata.name,
          lane: release.spec.lane,
          reason: event.reason,
          phase: event.phase,
        },
        event.message,
      );
    }
  }

  /** Makes the platform match what each canary's state asks for. */
  private converge(release: Release): void {
    this.effects.converge(release, this.platform, (ref, workload) => {
      const service = this.state.services[ref.service];
      // Written with the platform's renames, in the same state snapshot.
      if (service && JSON.stringify(service.spec.stable) !== JSON.stringify(workload)) {
        service.spec = { ...service.spec, stable: workload };
      }
    });
  }

  private async publishRouting(): Promise<number> {
    const desired = buildRouteTable({
      services: Object.values(this.state.services),
      entrypoints: Object.values(this.state.entrypoints),
      releases: this.releasesByAge(),
      endpointsOf: (service, lane, workload) =>
        this.platform.status({ service, lane }, workload).endpoints,
    });
    try {
      return await this.router.apply(desired);
    } catch (error) {
      this.logger.error(
        { err: error },
        'the route table the controller built is invalid; keeping the last one',
      );
      return this.state.revision;
    }
  }

  // ---- what the API calls ----

  /** Applies documents as one change: all are checked before any is stored. */
  async apply(
    documents: readonly AnyDocument[],
  ): Promise<Array<{ kind: string; name: string; result: string }>> {
    const trial: ControllerState = structuredClone(this.state);
    const results: Array<{ kind: string; name: string; result: string }> = [];
    const order = { Service: 0, Entrypoint: 1, Release: 2 } as const;
    const sorted = [...documents].sort((a, b) => order[a.kind] - order[b.kind]);
    const now = Date.now();
    for (const doc of sorted) {
      checkReferences(trial, doc, this.platform.name);
      const name = doc.metadata.name;
      const { status: _ignored, ...clean } = doc;
      if (doc.kind === 'Service') {
        const had = trial.services[name];
        trial.services[name] = clean as typeof doc;
        results.push({ kind: doc.kind, name, result: had ? 'configured' : 'created' });
      } else if (doc.kind === 'Entrypoint') {
        const had = trial.entrypoints[name];
        trial.entrypoints[name] = clean as typeof doc;
        results.push({ kind: doc.kind, name, result: had ? 'configured' : 'created' });
      } else {
        const had = trial.releases[name];
        if (had && isActive(had.status.phase)) {
          results.push({ kind: doc.kind, name, result: 'unchanged' });
          continue;
        }
        trial.releases[name] = { ...(clean as typeof doc), status: initialStatus(doc.spec, now) };
        results.push({ kind: doc.kind, name, result: had ? 'restarted' : 'created' });
      }
    }
    this.checkRouting(trial);
    this.state.services = trial.services;
    this.state.entrypoints = trial.entrypoints;
    this.state.releases = trial.releases;
    await this.save();
    this.poke();
    return results;
  }

  /** Refuses a change whose route table the proxies would refuse, before anything is stored. */
  private checkRouting(trial: ControllerState): void {
    const everyLaneRouted = Object.values(trial.releases).map((release) => ({
      ...release,
      status: {
        ...release.status,
        entryRouted: true,
        weight: 50,
        services: Object.fromEntries(
          release.spec.services.map((s) => [
            s.name,
            { canary: 'routed' as const, health: 'ready' },
          ]),
        ),
      },
    }));
    const desired = buildRouteTable({
      services: Object.values(trial.services),
      entrypoints: Object.values(trial.entrypoints),
      releases: everyLaneRouted.filter((r) => isActive(r.status.phase)),
      endpointsOf: (service, lane, workload) =>
        workload.endpoints ?? this.platform.status({ service, lane }, workload).endpoints,
    });
    // Throws GRAYLANE_ERR_INVALID_DOCUMENT with the route-table path of the problem.
    finishRouteTable(desired, this.state.revision + 1);
  }

  async remove(kind: AnyDocument['kind'], name: string): Promise<void> {
    const collection = this.collection(kind);
    const doc = collection[name];
    if (!doc) throw new ControllerError('notFound', `${kind.toLowerCase()} ${name} not found`);
    if (kind === 'Release' && isActive((doc as Release).status.phase)) {
      throw new ControllerError(
        'conflict',
        `release ${name} is ${(doc as Release).status.phase}; roll it back first`,
      );
    }
    const users = dependents(this.state, kind, name);
    if (users.length > 0)
      throw new ControllerError(
        'conflict',
        `${kind.toLowerCase()} ${name} is used by ${users.join(', ')}`,
      );
    delete collection[name];
    if (kind === 'Service') {
      const service = doc as AnyDocument;
      if (service.kind === 'Service' && service.spec.stable.run) {
        await this.platform.remove({ service: name, lane: STABLE });
      }
    }
    await this.save();
    this.poke();
  }

  collection(kind: AnyDocument['kind']): Record<string, AnyDocument> {
    if (kind === 'Service') return this.state.services;
    if (kind === 'Entrypoint') return this.state.entrypoints;
    return this.state.releases;
  }

  async act(name: string, action: ReleaseAction): Promise<Release> {
    const release = this.state.releases[name];
    if (!release) throw new ControllerError('notFound', `release ${name} not found`);
    const outcome = act(release, action, Date.now());
    release.status = outcome.status;
    this.logEvents(release, outcome.events);
    await this.save();
    this.poke();
    return this.committed?.releases[name] ?? release;
  }

  /** Per-service canary health and the proxies' applied revisions, for `graylane status`. */
  describe(release: Release) {
    return {
      ...release,
      routeTableRevision: (this.committed ?? this.state).revision,
      proxies: this.router.instances(),
    };
  }

  /** The admin `/metrics` of the proxy this controller runs, when it runs one. */
  metricsTargets(): string[] {
    return this.proxy.metricsTargets();
  }

  info() {
    return {
      revision: this.state.revision,
      proxies: this.router.instances(),
      processes: this.state.processes.map(({ id, pid, health, restarts, spec }) => ({
        id,
        pid,
        health,
        restarts,
        port: spec.port,
      })),
    };
  }

  async close(options: { stopWorkloads?: boolean } = {}): Promise<void> {
    this.closing = true;
    clearInterval(this.timer);
    this.timer = undefined;
    clearImmediate(this.scheduled);
    this.analysis.close();
    await this.reconciling;
    await this.effects.settled();
    await this.platform?.close(options);
    this.router?.close();
    this.publisher.close();
    if (this.state) await this.save();
    await this.store.close();
  }
}
