import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { parseDuration } from '../documents/duration.js';
import type { Workload } from '../documents/schema.js';
import type { Platform, WorkloadRef, WorkloadStatus } from './platform.js';
import { type ProcessRecord, type ProcessSpec, ProcessSupervisor } from './processes.js';

export interface LocalPlatformOptions {
  stateDir: string;
  logger: Logger;
  /** Environment every managed process gets (the outbound proxy as HTTP_PROXY, for one). */
  env: () => Record<string, string>;
  /** Time between "no proxy sends here any more" and SIGTERM, for requests already in flight. */
  drainMs: number;
  onChange: (records: ProcessRecord[]) => void;
  /** Workloads with `endpoints` deployed so far (`service/lane`), kept in the state like processes. */
  declared: string[];
  onDeclared: (declared: string[]) => void;
  /** Ports others will bind (the managed proxy's listeners): never handed to an instance. */
  reservedPorts?: () => ReadonlySet<number>;
}

/** Not a lane name (lanes are DNS labels), so never taken for one. */
const RETIRING = '_retiring';
const STABLE = 'stable';

const instanceId = (ref: WorkloadRef, index: number) => `${ref.service}.${ref.lane}.${index}`;
const prefixOf = (ref: WorkloadRef) => `${ref.service}.${ref.lane}.`;

/**
 * Free loopback ports chosen by the kernel, all held open until every one is known: ports released
 * one at a time may come back twice. `avoid` are ports promised to someone who has not bound them yet.
 */
export async function freePorts(
  count: number,
  avoid: ReadonlySet<number> = new Set(),
): Promise<number[]> {
  const servers: Server[] = [];
  const ports: number[] = [];
  try {
    while (ports.length < count) {
      const server = createServer();
      servers.push(server);
      const port = await new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
      });
      if (!avoid.has(port)) ports.push(port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

export async function freePort(avoid?: ReadonlySet<number>): Promise<number> {
  return (await freePorts(1, avoid))[0]!;
}

/**
 * Local mode: a workload with `run` is a set of processes on this machine, one per replica, each on
 * its own loopback port; a workload with `endpoints` runs elsewhere and is only routed to.
 */
export class LocalPlatform implements Platform {
  readonly name = 'local';
  readonly supervisor: ProcessSupervisor;
  private readonly logDir: string;

  constructor(private readonly options: LocalPlatformOptions) {
    this.logDir = join(options.stateDir, 'logs');
    mkdirSync(this.logDir, { recursive: true, mode: 0o700 });
    this.supervisor = new ProcessSupervisor(options.logger, options.onChange, options.stateDir);
  }

  private instances(ref: WorkloadRef): ProcessRecord[] {
    const prefix = prefixOf(ref);
    return this.supervisor
      .list()
      .filter((r) => r.id.startsWith(prefix))
      .sort((a, b) => a.id.localeCompare(b.id, 'en', { numeric: true }));
  }

  private declare(ref: WorkloadRef, present: boolean): void {
    const key = `${ref.service}/${ref.lane}`;
    const has = this.options.declared.includes(key);
    if (has === present) return;
    this.options.declared = present
      ? [...this.options.declared, key]
      : this.options.declared.filter((k) => k !== key);
    this.options.onDeclared(this.options.declared);
  }

  async deploy(ref: WorkloadRef, workload: Workload): Promise<void> {
    const run = workload.run;
    if (!run) {
      this.declare(ref, true);
      return;
    }
    const existing = this.instances(ref);
    for (let i = 0; i < run.replicas; i++) {
      const id = instanceId(ref, i);
      const port =
        run.port !== undefined
          ? run.port + i
          : (this.supervisor.get(id)?.spec.port ??
            (await freePort(this.options.reservedPorts?.())));
      const spec: ProcessSpec = {
        command: run.command,
        args: run.args,
        env: { ...this.options.env(), ...run.env },
        ...(run.cwd !== undefined ? { cwd: run.cwd } : {}),
        port,
        readyPath: run.readyPath,
        readyTimeoutMs: parseDuration(run.readyTimeout) ?? 30_000,
        logFile: this.supervisor.get(id)?.spec.logFile ?? join(this.logDir, `${id}.log`),
      };
      this.supervisor.ensure(id, spec);
    }
    const surplus = existing.filter(
      (r) => Number(r.id.slice(prefixOf(ref).length)) >= run.replicas,
    );
    await Promise.all(surplus.map((r) => this.supervisor.stop(r.id)));
  }

  status(ref: WorkloadRef, workload: Workload): WorkloadStatus {
    if (!workload.run) {
      // Run by someone else: there once declared, with the endpoints the spec gives.
      const declared =
        ref.lane === STABLE || this.options.declared.includes(`${ref.service}/${ref.lane}`);
      return declared
        ? { health: 'ready', endpoints: workload.endpoints ?? [] }
        : { health: 'absent', endpoints: [] };
    }
    const instances = this.instances(ref);
    const endpoints = instances.map((r) => `http://127.0.0.1:${r.spec.port}`);
    if (instances.length === 0) {
      // A promotion is done only once the previous stable instances are gone too.
      const retiring =
        ref.lane !== STABLE && this.instances({ service: ref.service, lane: RETIRING }).length > 0;
      if (retiring)
        return { health: 'starting', endpoints, message: 'stopping the previous stable version' };
      return { health: 'absent', endpoints };
    }
    const worst = (['failed', 'unready', 'starting'] as const).find((h) =>
      instances.some((r) => r.health === h),
    );
    const message = instances.find((r) => r.health === worst)?.message;
    return { health: worst ?? 'ready', endpoints, ...(message ? { message } : {}) };
  }

  async remove(ref: WorkloadRef): Promise<void> {
    this.declare(ref, false);
    const instances = this.instances(ref);
    if (instances.length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, this.options.drainMs));
    await Promise.all(instances.map((r) => this.supervisor.stop(r.id)));
  }

  /**
   * The canary's instances take the stable names at once (no await in between, so no reconcile
   * sees a service without stable instances); the previous stable instances are set aside and
   * stopped after drain.
   */
  async promote(service: string, lane: string): Promise<void> {
    this.declare({ service, lane }, false);
    const canary = this.instances({ service, lane });
    const previous = this.instances({ service, lane: STABLE });
    if (canary.length > 0) {
      for (const record of previous) {
        this.supervisor.rename(
          record.id,
          `${service}.${RETIRING}.${record.id.slice(prefixOf({ service, lane: STABLE }).length)}`,
        );
      }
      for (const record of canary) {
        this.supervisor.rename(
          record.id,
          `${service}.${STABLE}.${record.id.slice(prefixOf({ service, lane }).length)}`,
        );
      }
    }
    const retiring = this.instances({ service, lane: RETIRING });
    if (retiring.length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, this.options.drainMs));
    await Promise.all(retiring.map((r) => this.supervisor.stop(r.id)));
  }

  async close(options: { stopWorkloads?: boolean } = {}): Promise<void> {
    await this.supervisor.close(options.stopWorkloads ?? false);
  }
}
