// The demo's machinery, apart from its story: a real `graylane controller` (with its gateway and
// outbound proxy) in a temporary state directory, the example services as the processes it runs,
// and the requests that show what traffic does. The end-to-end tests drive the same stack.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
// The controller's own port picker (every port held open until all are known), from its build.
import { freePort, freePorts } from '../../packages/controller/dist/platform/local.js';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
export const GRAYLANE_BIN = here('../../packages/controller/dist/cli/main.js');
export const EXAMPLES = { frontend: here('../frontend'), backend: here('../backend') };

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export { freePort, freePorts };

/** Polls `read` until `check` holds; fails naming `what` and the last value. */
// Bounds are generous: on a loaded machine a Node process with Express and the SDK takes seconds.
export async function until(what, read, check, withinMs = 60_000) {
  const deadline = Date.now() + withinMs;
  let last;
  let error;
  while (Date.now() < deadline) {
    try {
      last = await read();
      if (check(last)) return last;
    } catch (e) {
      error = e;
    }
    await sleep(100);
  }
  const detail = error ? `; last error: ${error.message}` : '';
  throw new Error(
    `${what}: not within ${withinMs / 1000} s; last seen ${JSON.stringify(last)}${detail}`,
  );
}

/** A workload the controller runs from one of the examples. */
export function exampleRun(service, version, env = {}) {
  const args =
    service === 'frontend' ? ['--import', '@graylane/sdk/register', 'server.js'] : ['server.js'];
  return {
    command: process.execPath,
    args,
    cwd: EXAMPLES[service],
    env: { VERSION: version, ...env },
    readyPath: '/healthz',
  };
}

const doc = (kind, name, spec) => ({
  apiVersion: 'graylane.dev/v1alpha1',
  kind,
  metadata: { name },
  spec,
});

/**
 * The shop: backend and frontend v1 as processes the controller runs, and the entry `shop`. The
 * proxies check every endpoint's /healthz: a canary that comes back after a crash is taken back at
 * the next passed check, not when its outlier ejection (30 s, doubling) runs out.
 */
export function shopDocuments() {
  const healthCheck = { path: '/healthz', intervalMs: 500 };
  return [
    doc('Service', 'backend', {
      stable: { version: 'v1', run: exampleRun('backend', 'v1') },
      healthCheck,
    }),
    doc('Service', 'frontend', {
      stable: { version: 'v1', run: exampleRun('frontend', 'v1') },
      healthCheck,
    }),
    doc('Entrypoint', 'shop', { service: 'frontend', clientLanes: 'known' }),
  ];
}

/** Applies the shop and waits until its entry answers from v1 -> v1. */
export async function applyShop(stack) {
  await stack.apply(shopDocuments());
  await until(
    'the shop to answer',
    () => hit(stack.gateway),
    (r) => r.body === 'frontend v1 -> backend v1',
    120_000,
  );
}

/** A release of lane gray with both services' v2, split by the `x-user` header (sticky). */
export function shopRelease(name, steps, extra = {}) {
  return doc('Release', name, {
    lane: 'gray',
    entrypoint: 'shop',
    services: [
      { name: 'backend', canary: { version: 'v2', run: exampleRun('backend', 'v2') } },
      { name: 'frontend', canary: { version: 'v2', run: exampleRun('frontend', 'v2') } },
    ],
    sticky: 'header:x-user',
    steps,
    ...extra,
  });
}

/** One request through the gateway: status, body and the provenance header. */
export async function hit(gateway, headers = {}) {
  const res = await request(gateway, { headers, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const body = await res.body.text();
  return { status: res.statusCode, body, served: String(res.headers['x-lane-served'] ?? '') };
}

/**
 * `n` requests, the i-th with `headersOf(i)`, counted by what answered them (the body names each
 * service's version: `frontend v2 -> backend v2`). Failed requests count under their status.
 */
export async function sample(gateway, n, headersOf = () => ({})) {
  const counts = new Map();
  for (let i = 0; i < n; i++) {
    const { status, body } = await hit(gateway, headersOf(i));
    const key = status === 200 ? body : `HTTP ${status}: ${body}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/**
 * Starts `graylane controller` with a gateway and an outbound proxy, in its own process group so
 * that a Ctrl-C in the terminal reaches only whoever started it, which then stops it once (a second
 * signal would make the controller exit without stopping its processes).
 */
export async function startStack({ drain = '300ms' } = {}) {
  // Ports are picked free, then bound by the controller's processes a moment later; on a busy
  // machine another process can take one in between. The controller then exits saying so, and
  // another set of ports is tried.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startStackOn(await freePorts(3), drain);
    } catch (error) {
      if (attempt === 3 || !error.message.includes('EADDRINUSE')) throw error;
    }
  }
}

async function startStackOn([apiPort, gatewayPort, outboundPort], drain) {
  const stateDir = mkdtempSync(join(tmpdir(), 'graylane-demo-'));
  const url = `http://127.0.0.1:${apiPort}`;
  const child = spawn(
    process.execPath,
    [
      GRAYLANE_BIN,
      '--state-dir',
      stateDir,
      'controller',
      '--listen',
      `127.0.0.1:${apiPort}`,
      '--gateway',
      `127.0.0.1:${gatewayPort}`,
      '--outbound',
      `127.0.0.1:${outboundPort}`,
      '--drain',
      drain,
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let log = '';
  child.stdout.on('data', (chunk) => (log += chunk));
  child.stderr.on('data', (chunk) => (log += chunk));
  const exited = once(child, 'exit');
  const stack = {
    child,
    url,
    stateDir,
    gateway: `http://127.0.0.1:${gatewayPort}/`,
    log: () => log,
    token: () => readFileSync(join(stateDir, 'token'), 'utf8').trim(),
    async api(method, path, body) {
      const headers = { authorization: `Bearer ${stack.token()}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await request(`${url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.body.text();
      const value = text ? JSON.parse(text) : undefined;
      if (res.statusCode >= 400)
        throw new Error(
          `${method} ${path}: ${res.statusCode} ${value?.error?.code}: ${value?.error?.message}`,
        );
      return value;
    },
    apply: (documents) => stack.api('POST', '/v1/apply', documents),
    release: (name) => stack.api('GET', `/v1/releases/${name}`),
    act: (name, action) => stack.api('POST', `/v1/releases/${name}/${action}`),
    processes: async () => (await stack.api('GET', '/v1/status')).processes,
    waitForPhase: (name, phase, withinMs = 60_000) =>
      until(
        `release ${name} ${phase}`,
        () => stack.release(name),
        (r) => r.status.phase === phase,
        withinMs,
      ),
    /** SIGTERM: the controller stops every process it runs, then exits. Idempotent. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const [code] = await Promise.race([exited, sleep(30_000).then(() => ['timeout'])]);
      if (code === 'timeout') child.kill('SIGKILL');
      rmSync(stateDir, { recursive: true, force: true });
      return code;
    },
  };
  try {
    await until(
      'the controller API and its proxy',
      // The API answers once the controller has loaded its state; the proxy for --gateway and
      // --outbound is ready a moment later, or the controller exits saying why it is not.
      async () => {
        if (child.exitCode !== null) return 'exited';
        const { processes } = await stack.api('GET', '/v1/status');
        return processes.find((p) => p.id.startsWith('graylane-proxy.managed'))?.health;
      },
      (health) => health === 'ready' || health === 'exited',
      60_000,
    );
    if (child.exitCode !== null) throw new Error(`the controller exited (${child.exitCode})`);
  } catch (error) {
    await stack.stop();
    throw new Error(`${error.message}\n${log}`);
  }
  return stack;
}

/** Whether a pid is alive (not a zombie). */
export function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}
