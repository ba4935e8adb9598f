import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { stringify } from 'yaml';
import { freePort, freePorts } from '../src/platform/local.js';
import type { Release } from '../src/release/status.js';

export { freePort, freePorts };

/** The real `graylane` bin (built), the fixture service, and helpers to drive both from tests. */
export const BIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
export const APP = fileURLToPath(new URL('./fixtures/app.mjs', import.meta.url));

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function tempDir(prefix = 'graylane-ctl-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunningController {
  child: ChildProcess;
  url: string;
  port: number;
  stateDir: string;
  gateway?: string;
  output(): string;
  /** The `graylane` CLI against this controller. */
  cli(...args: string[]): Promise<CliResult>;
  api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    token?: string | null,
  ): Promise<{ status: number; body: T }>;
  release(name: string): Promise<Release>;
  waitForPhase(name: string, phases: string | string[], withinMs?: number): Promise<Release>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface ControllerOptions {
  stateDir?: string;
  port?: number;
  gatewayPort?: number;
  outboundPort?: number;
  args?: string[];
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, ...env }, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Starts `graylane controller` as a real process and waits until its API answers. */
export async function startController(options: ControllerOptions = {}): Promise<RunningController> {
  const stateDir = options.stateDir ?? tempDir();
  const port = options.port ?? (await freePort());
  const args = [
    BIN,
    '--state-dir',
    stateDir,
    'controller',
    '--listen',
    `127.0.0.1:${port}`,
    '--drain',
    '200ms',
    '--log-level',
    'info',
  ];
  if (options.gatewayPort) args.push('--gateway', `127.0.0.1:${options.gatewayPort}`);
  if (options.outboundPort) args.push('--outbound', `127.0.0.1:${options.outboundPort}`);
  args.push(...(options.args ?? []));
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, GRAYLANE_TEST_RUN: RUN_ID },
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const deadline = Date.now() + 15_000;
  for (;;) {
    const ok = await request(`${url}/healthz`).then(
      async (res) => {
        await res.body.dump();
        return res.statusCode === 200;
      },
      () => false,
    );
    if (ok && output.includes('controller listening')) break;
    if (child.exitCode !== null)
      throw new Error(`controller exited (${child.exitCode}):\n${output}`);
    if (Date.now() > deadline) throw new Error(`controller did not start:\n${output}`);
    await sleep(50);
  }
  const cli = (...cliArgs: string[]) =>
    runCli(['--state-dir', stateDir, '--server', url, ...cliArgs]);
  const token = () => require_token(stateDir);
  const controller: RunningController = {
    child,
    url,
    port,
    stateDir,
    ...(options.gatewayPort ? { gateway: `http://127.0.0.1:${options.gatewayPort}` } : {}),
    output: () => output,
    cli,
    async api<T>(method: string, path: string, body?: unknown, auth?: string | null) {
      const headers: Record<string, string> = {};
      const bearer = auth === undefined ? token() : auth;
      if (bearer !== null) headers.authorization = `Bearer ${bearer}`;
      let payload: string | undefined;
      if (typeof body === 'string') {
        headers['content-type'] = 'application/yaml';
        payload = body;
      } else if (body !== undefined) {
        headers['content-type'] = 'application/json';
        payload = JSON.stringify(body);
      }
      const res = await request(`${url}${path}`, {
        method: method as 'GET',
        headers,
        body: payload,
      });
      const text = await res.body.text();
      return { status: res.statusCode, body: (text ? JSON.parse(text) : undefined) as T };
    },
    async release(name: string) {
      return (await controller.api<Release>('GET', `/v1/releases/${name}`)).body;
    },
    async waitForPhase(name, phases, withinMs = 20_000) {
      const wanted = Array.isArray(phases) ? phases : [phases];
      const until = Date.now() + withinMs;
      let last: Release | undefined;
      while (Date.now() < until) {
        last = await controller.release(name);
        if (wanted.includes(last.status.phase)) return last;
        await sleep(50);
      }
      throw new Error(
        `release ${name} not ${wanted.join('|')} within ${withinMs} ms; it is ${last?.status.phase}:\n${JSON.stringify(last?.status, null, 2)}\nprocesses: ${JSON.stringify((await controller.api('GET', '/v1/status')).body)}\ncontroller log (end):\n${output.slice(-3000)}`,
      );
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timeout = sleep(20_000).then(() => 'timeout' as const);
      const result = await Promise.race([exited, timeout]);
      if (result === 'timeout') {
        child.kill('SIGKILL');
        throw new Error(
          `controller did not stop on ${signal} within 20 s:\n${output.slice(-4000)}`,
        );
      }
      return result;
    },
  };
  return controller;
}

function require_token(stateDir: string): string {
  return readFileSync(join(stateDir, 'token'), 'utf8').trim();
}

/** Polls `read` until `check` holds; throws with the last value when it has not within `withinMs`. */
export async function until<T>(
  read: () => Promise<T>,
  check: (value: T) => boolean,
  withinMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + withinMs;
  let last: T | undefined;
  let error: unknown;
  while (Date.now() < deadline) {
    try {
      last = await read();
      if (check(last)) return last;
    } catch (e) {
      error = e;
    }
    await sleep(50);
  }
  throw new Error(
    `not within ${withinMs} ms; last value ${JSON.stringify(last)}${error ? `, last error ${String(error)}` : ''}`,
  );
}

/** Service documents for the fixture app (`run`), as `graylane apply` takes them. */
export function serviceDoc(name: string, version: string, env: Record<string, string> = {}) {
  return {
    apiVersion: 'graylane.dev/v1alpha1',
    kind: 'Service',
    metadata: { name },
    spec: { stable: { version, run: runSpec(name, version, env) } },
  };
}

export function runSpec(
  name: string,
  version: string,
  env: Record<string, string> = {},
  extra: Record<string, unknown> = {},
) {
  return {
    command: process.execPath,
    args: [APP],
    env: { NAME: name, VERSION: version, GRAYLANE_TEST_RUN: RUN_ID, ...env },
    readyPath: '/healthz',
    ...extra,
  };
}

export function entrypointDoc(name: string, service: string) {
  return {
    apiVersion: 'graylane.dev/v1alpha1',
    kind: 'Entrypoint',
    metadata: { name },
    spec: { service },
  };
}

export function releaseDoc(name: string, spec: Record<string, unknown>) {
  return { apiVersion: 'graylane.dev/v1alpha1', kind: 'Release', metadata: { name }, spec };
}

/**
 * A controller with its managed proxy (gateway + outbound) and the shop applied, serving v1 -> v1:
 * where most end-to-end tests start.
 */
export async function startShop(options: ControllerOptions = {}): Promise<RunningController> {
  const ctl = await startController({
    ...(await freePorts(3).then(([port, gatewayPort, outboundPort]) => ({
      port,
      gatewayPort,
      outboundPort,
    }))),
    ...options,
  });
  const applied = await ctl.api('POST', '/v1/apply', yamlOf(shopDocuments()));
  if (applied.status !== 200) throw new Error(`shop not applied: ${JSON.stringify(applied.body)}`);
  await until(
    () => hit(ctl.gateway!),
    (r) => r.body === 'frontend v1 -> backend v1',
  );
  return ctl;
}

/** A two-service shop: frontend calls backend through the outbound proxy. */
export function shopDocuments() {
  return [
    serviceDoc('backend', 'v1'),
    serviceDoc('frontend', 'v1', { CALLS: 'backend' }),
    entrypointDoc('shop', 'frontend'),
  ];
}

export function shopRelease(name: string, steps: unknown[], extra: Record<string, unknown> = {}) {
  return releaseDoc(name, {
    lane: 'gray',
    entrypoint: 'shop',
    services: [
      { name: 'backend', canary: { version: 'v2', run: runSpec('backend', 'v2') } },
      {
        name: 'frontend',
        canary: { version: 'v2', run: runSpec('frontend', 'v2', { CALLS: 'backend' }) },
      },
    ],
    match: [{ headers: { 'user-agent': { exact: 'foo' } } }],
    steps,
    ...extra,
  });
}

export const yamlOf = (docs: unknown[]) => docs.map((d) => stringify(d)).join('---\n');

/** One request through the gateway: the body and the provenance header. */
export async function hit(
  gateway: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; served: string }> {
  const res = await request(gateway, { headers, headersTimeout: 5_000 });
  const body = await res.body.text();
  return { status: res.statusCode, body, served: String(res.headers['x-lane-served'] ?? '') };
}

/** Pids of the fixture processes a state directory's controller runs. */
export function managedPids(stateDir: string): number[] {
  try {
    const state = JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as {
      processes: Array<{ pid?: number }>;
    };
    return state.processes.map((p) => p.pid).filter((p): p is number => p !== undefined);
  } catch {
    return [];
  }
}

/** Marks every fixture process this test file starts, so that it can count and clean them up. */
export const RUN_ID = randomUUID();

/** Processes of this test file (controllers, their proxies, fixture apps) that are alive, by their environment. */
function markedProcesses(): Array<{ pid: number; name: string; version: string }> {
  const found: Array<{ pid: number; name: string; version: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const env = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (!env.includes(`GRAYLANE_TEST_RUN=${RUN_ID}`)) continue;
      const get = (key: string) =>
        env.find((e) => e.startsWith(`${key}=`))?.slice(key.length + 1) ?? '';
      found.push({ pid: Number(entry), name: get('NAME'), version: get('VERSION') });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Fixture apps of this test file that are alive. */
export function runningApps(): Array<{ pid: number; name: string; version: string }> {
  return markedProcesses().filter((p) => p.name !== '' && p.pid !== process.pid);
}

/** Kills what a failed test may have left running (apps, managed proxies, controllers) and removes the state directory. */
export function cleanup(dir?: string): void {
  for (const marked of markedProcesses()) {
    if (marked.pid === process.pid) continue;
    try {
      process.kill(marked.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
}
