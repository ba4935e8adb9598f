import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Logger } from 'pino';
import { request } from 'undici';

/** How to run one process and tell that it is ready. */
export interface ProcessSpec {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  /** Probed at `http://127.0.0.1:<port><readyPath>` until it answers 2xx. */
  port: number;
  readyPath: string;
  readyTimeoutMs: number;
  logFile: string;
}

export type ProcessHealth = 'starting' | 'ready' | 'unready' | 'failed' | 'stopped';

/** What the state keeps of a process, so that a restarted controller adopts it instead of starting another. */
export interface ProcessRecord {
  id: string;
  spec: ProcessSpec;
  pid?: number;
  /** The kernel's start time of `pid` (clock ticks since boot), so a reused pid is not taken for ours. */
  pidStart?: string;
  health: ProcessHealth;
  message?: string;
  restarts: number;
  startedAt?: string;
}

const MARKER_ENV = 'GRAYLANE_MANAGED_BY';
const PROCESS_ENV = 'GRAYLANE_PROCESS';

/** Live processes whose environment carries `marker` (Linux /proc; elsewhere none are found). */
function markedProcesses(
  marker: string,
): Array<{ pid: number; id: string; start: string | undefined }> {
  const found: Array<{ pid: number; id: string; start: string | undefined }> = [];
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return found;
  }
  for (const entry of entries) {
    const pid = Number(entry);
    try {
      const env = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (!env.includes(`${MARKER_ENV}=${marker}`) || !isAlive(pid)) continue;
      const id =
        env.find((e) => e.startsWith(`${PROCESS_ENV}=`))?.slice(PROCESS_ENV.length + 1) ?? '';
      found.push({ pid, id, start: processStartTime(pid) });
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

/** The whole process group (a shell or npm wrapper's children too), else the process alone. */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

const BACKOFF_MS = [500, 1_000, 2_000, 5_000, 10_000];
const TICK_MS = 200;

/** State and start time (clock ticks since boot) from /proc/PID/stat; undefined without /proc. */
function procStat(pid: number): { state: string; start: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '?', start: fields[19] ?? '' };
  } catch {
    return undefined;
  }
}

export function processStartTime(pid: number): string | undefined {
  return procStat(pid)?.start;
}

/**
 * Whether `pid` runs and is the process started at `start`. A zombie is dead: an orphan whose new
 * parent does not reap (PID 1 in a container often does not) still answers signal 0.
 */
export function isAlive(pid: number, start?: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = procStat(pid);
  if (stat === undefined) return true;
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return start === undefined || stat.start === start;
}

/** The last lines a process wrote, for events that say why it failed. */
export async function lastLines(file: string, count = 8): Promise<string> {
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, 4096);
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, size - length);
      return buffer.toString('utf8').trimEnd().split('\n').slice(-count).join('\n');
    } finally {
      await handle.close();
    }
  } catch {
    return '';
  }
}

async function probe(port: number, path: string): Promise<boolean> {
  try {
    const res = await request(`http://127.0.0.1:${port}${path}`, {
      headersTimeout: 1_000,
      bodyTimeout: 1_000,
      headers: { 'user-agent': 'graylane-controller' },
    });
    await res.body.dump();
    return res.statusCode >= 200 && res.statusCode < 300;
  } catch {
    return false;
  }
}

/**
 * Starts, watches, restarts (with backoff, as a kubelet does) and stops local processes. Processes
 * are detached with their output in a log file, so they outlive a controller that is killed and are
 * adopted by the next one: same pid and start time means the same process, never a second copy.
 */
export class ProcessSupervisor {
  private readonly records = new Map<string, ProcessRecord>();
  private readonly children = new Map<string, ChildProcess>();
  private readonly startedAt = new Map<string, number>();
  private readonly nextStart = new Map<string, number>();
  private readonly probing = new Set<string>();
  private readonly stopping = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly logger: Logger,
    private readonly onChange: (records: ProcessRecord[]) => void,
    /** Put in every process's environment, so that a process this state never recorded is found. */
    private readonly marker: string,
  ) {}

  /**
   * Takes over processes recorded by an earlier controller: alive ones are adopted, gone ones
   * restarted. A controller killed between starting a process and recording its pid leaves an
   * orphan: found by its environment marker, it is adopted when its record lacks a pid, and stopped
   * otherwise, so that nothing ever runs twice.
   */
  async adopt(
    records: readonly ProcessRecord[],
  ): Promise<{ adopted: string[]; restarted: string[]; stoppedOrphans: number[] }> {
    const adopted: string[] = [];
    const restarted: string[] = [];
    const stoppedOrphans: number[] = [];
    const known = new Set(records.map((r) => r.pid).filter((pid) => pid !== undefined));
    const orphans = markedProcesses(this.marker).filter((p) => !known.has(p.pid));
    for (const record of records) {
      const copy = structuredClone(record);
      const orphan =
        copy.pid === undefined || !isAlive(copy.pid, copy.pidStart)
          ? orphans.find((o) => o.id === copy.id)
          : undefined;
      if (orphan) {
        orphans.splice(orphans.indexOf(orphan), 1);
        copy.pid = orphan.pid;
        if (orphan.start === undefined) delete copy.pidStart;
        else copy.pidStart = orphan.start;
      }
      if (copy.pid !== undefined && isAlive(copy.pid, copy.pidStart)) {
        adopted.push(copy.id);
        this.startedAt.set(copy.id, Date.now());
      } else {
        delete copy.pid;
        delete copy.pidStart;
        if (copy.health === 'ready') copy.health = 'unready';
        restarted.push(copy.id);
      }
      this.records.set(copy.id, copy);
    }
    // Gone before anything starts, so that no instance ever runs twice, not even for a moment.
    await Promise.all(
      orphans.map((orphan) => {
        stoppedOrphans.push(orphan.pid);
        this.logger.warn(
          { pid: orphan.pid, process: orphan.id },
          'stopping a process no record knows of',
        );
        return this.terminate(orphan.pid, orphan.start, 5_000);
      }),
    );
    this.timer ??= setInterval(() => this.tick(), TICK_MS);
    return { adopted, restarted, stoppedOrphans };
  }

  list(): ProcessRecord[] {
    return [...this.records.values()];
  }

  get(id: string): ProcessRecord | undefined {
    return this.records.get(id);
  }

  /** Runs `spec` as `id` unless it already runs (a changed spec replaces the process). */
  ensure(id: string, spec: ProcessSpec): void {
    if (this.closed) return;
    const existing = this.records.get(id);
    if (
      existing &&
      JSON.stringify(existing.spec) === JSON.stringify(spec) &&
      !this.stopping.has(id)
    )
      return;
    if (existing?.pid !== undefined) signalGroup(existing.pid, 'SIGTERM');
    this.records.set(id, { id, spec, health: 'starting', restarts: 0 });
    this.nextStart.set(id, 0);
    this.timer ??= setInterval(() => this.tick(), TICK_MS);
    this.changed();
  }

  /** Renames a process (a canary that becomes stable keeps running under its new name). */
  rename(from: string, to: string): void {
    const record = this.records.get(from);
    if (!record) return;
    if (this.records.has(to)) {
      // Never lose track of a running process: the caller sets the other one aside first.
      throw new Error(`cannot rename ${from} to ${to}: ${to} exists`);
    }
    this.records.delete(from);
    this.records.set(to, { ...record, id: to });
    for (const map of [this.children, this.startedAt, this.nextStart] as Map<string, unknown>[]) {
      if (map.has(from)) {
        map.set(to, map.get(from));
        map.delete(from);
      }
    }
    this.changed();
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone and forgotten. */
  stop(id: string, graceMs = 10_000): Promise<void> {
    const pending = this.stopping.get(id);
    if (pending) return pending;
    const record = this.records.get(id);
    if (!record) return Promise.resolve();
    // Registered before any of it runs, and cleared only after: a record that never got a pid
    // would otherwise finish at once and leave a stale entry that no start ever gets past.
    const done = (
      record.pid === undefined
        ? Promise.resolve()
        : this.terminate(record.pid, record.pidStart, graceMs)
    ).finally(() => {
      if (this.records.get(id) === record) this.records.delete(id);
      this.children.delete(id);
      this.stopping.delete(id);
      this.changed();
    });
    this.stopping.set(id, done);
    return done;
  }

  private async terminate(
    pid: number,
    pidStart: string | undefined,
    graceMs: number,
  ): Promise<void> {
    signalGroup(pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (isAlive(pid, pidStart) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (isAlive(pid, pidStart)) signalGroup(pid, 'SIGKILL');
    while (isAlive(pid, pidStart)) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  /** Stops watching; with `stopAll` the processes are stopped too, otherwise left for adoption. */
  async close(stopAll: boolean): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.timer = undefined;
    if (stopAll) await Promise.all([...this.records.keys()].map((id) => this.stop(id, 5_000)));
    for (const child of this.children.values()) child.removeAllListeners('exit');
  }

  private changed(): void {
    this.onChange(this.list());
  }

  private tick(): void {
    const now = Date.now();
    for (const record of this.records.values()) {
      if (this.stopping.has(record.id)) continue;
      const alive = record.pid !== undefined && isAlive(record.pid, record.pidStart);
      if (!alive) {
        if (record.pid !== undefined) void this.exited(record, undefined);
        else if (now >= (this.nextStart.get(record.id) ?? 0)) this.start(record);
        continue;
      }
      if (
        record.health === 'starting' ||
        record.health === 'unready' ||
        record.health === 'failed'
      ) {
        void this.checkReady(record, now);
      }
    }
  }

  private start(record: ProcessRecord): void {
    const { spec } = record;
    let log: number | undefined;
    try {
      log = openSync(spec.logFile, 'a', 0o600);
      const child = spawn(spec.command, spec.args, {
        cwd: spec.cwd,
        env: {
          ...process.env,
          ...spec.env,
          PORT: String(spec.port),
          [MARKER_ENV]: this.marker,
          [PROCESS_ENV]: record.id,
        },
        detached: true,
        stdio: ['ignore', log, log],
      });
      child.unref();
      child.on('error', (error) => {
        record.health = 'failed';
        record.message = `cannot start ${spec.command}: ${error.message}`;
        delete record.pid;
        this.nextStart.set(record.id, Date.now() + this.backoff(record));
        this.changed();
      });
      if (child.pid === undefined) return;
      child.on('exit', (code, signal) => void this.exited(record, signal ?? code));
      record.pid = child.pid;
      const start = processStartTime(child.pid);
      if (start === undefined) delete record.pidStart;
      else record.pidStart = start;
      record.startedAt = new Date().toISOString();
      if (record.health !== 'failed') record.health = 'starting';
      this.children.set(record.id, child);
      this.startedAt.set(record.id, Date.now());
      this.logger.info({ process: record.id, pid: child.pid, port: spec.port }, 'process started');
      this.changed();
    } finally {
      if (log !== undefined) closeSync(log);
    }
  }

  private async exited(
    record: ProcessRecord,
    how: string | number | null | undefined,
  ): Promise<void> {
    if (
      this.records.get(record.id) !== record ||
      record.pid === undefined ||
      this.stopping.has(record.id)
    )
      return;
    const pid = record.pid;
    delete record.pid;
    delete record.pidStart;
    this.children.delete(record.id);
    record.restarts += 1;
    const delay = this.backoff(record);
    this.nextStart.set(record.id, Date.now() + delay);
    // Health and reason change in the same turn as the pid: a reader between two turns must never
    // see a process that is gone still called ready, or a failure without its reason.
    const status = how === undefined ? 'exited' : `exited (${how})`;
    const message = `pid ${pid} ${status}; restarting in ${delay} ms`;
    record.message = message;
    if (record.health !== 'failed') record.health = 'unready';
    this.logger.warn({ process: record.id, pid, how }, 'process exited; restarting');
    this.changed();
    const output = await lastLines(record.spec.logFile, 4);
    if (!output || this.records.get(record.id) !== record || record.message !== message) return;
    record.message = `${message}; last output:\n${output}`;
    this.changed();
  }

  private backoff(record: ProcessRecord): number {
    return BACKOFF_MS[Math.min(record.restarts, BACKOFF_MS.length) - 1] ?? BACKOFF_MS[0]!;
  }

  private async checkReady(record: ProcessRecord, now: number): Promise<void> {
    if (this.probing.has(record.id)) return;
    this.probing.add(record.id);
    try {
      const ok = await probe(record.spec.port, record.spec.readyPath);
      if (this.records.get(record.id) !== record) return;
      if (ok) {
        record.health = 'ready';
        delete record.message;
        this.changed();
        return;
      }
      const since = this.startedAt.get(record.id) ?? now;
      if (record.health === 'starting' && now - since > record.spec.readyTimeoutMs) {
        // The output is read first, so that the failure and its reason appear in the same turn.
        const output = await lastLines(record.spec.logFile);
        if (this.records.get(record.id) !== record || record.health !== 'starting') return;
        record.health = 'failed';
        record.message = `not ready within ${record.spec.readyTimeoutMs} ms (GET ${record.spec.readyPath} on port ${record.spec.port})${output ? `; last output:\n${output}` : ''}`;
        this.changed();
      }
    } finally {
      this.probing.delete(record.id);
    }
  }
}
