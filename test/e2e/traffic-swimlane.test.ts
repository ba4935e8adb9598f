import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleRun, freePorts, hit, until } from '../../examples/demo/stack.mjs';
import { type BinRun, tempDir } from '../../packages/router-proxy/test/helpers.js';
import { startMeshProxy } from '../support/mesh-proxy.js';

/**
 * "Traffic swimlane", Kruise Rollout's end-to-end canary: gateway -> a -> b. A match rule at the
 * entry (`user-agent: foo`) puts a request in lane gray and tags it; every hop then serves gray
 * where it has a gray version and stable where it has none. The lanes come and go by route-table
 * revisions (a file the proxy watches), the apps are the examples in their own processes.
 */
const FOO = { 'user-agent': 'foo' };

/** An example app (a = the frontend, b = the backend) as the controller would start it. */
async function startApp(
  example: 'frontend' | 'backend',
  version: string,
  port: number,
  env: Record<string, string>,
) {
  const run = exampleRun(example, version);
  const child: ChildProcess = spawn(run.command, run.args, {
    cwd: run.cwd,
    env: { ...process.env, ...run.env, ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await once(child.stdout!, 'data');
  return child;
}

describe('traffic swimlane: a match rule at the entry, lane gray hop by hop', () => {
  const dir = tempDir();
  const tableFile = join(dir.path, 'routes.json');
  let proxy: BinRun;
  let revision = 0;
  const ports = { a1: 0, a2: 0, b1: 0, b2: 0 };
  const apps: ChildProcess[] = [];
  let bCanary: ChildProcess | undefined;

  async function publish(bLanes: Record<string, unknown>) {
    revision += 1;
    const healthCheck = { path: '/healthz', intervalMs: 200 };
    writeFileSync(
      tableFile,
      JSON.stringify({
        apiVersion: 'graylane/v1',
        revision,
        services: {
          a: {
            stable: { version: 'v1', endpoints: [`http://127.0.0.1:${ports.a1}`] },
            lanes: { gray: { version: 'v2', endpoints: [`http://127.0.0.1:${ports.a2}`] } },
          },
          b: {
            stable: { version: 'v1', endpoints: [`http://127.0.0.1:${ports.b1}`] },
            lanes: bLanes,
            healthCheck,
          },
        },
        entrypoints: [
          {
            name: 'shop',
            service: 'a',
            clientLanes: 'off',
            assign: [{ lane: 'gray', when: { headers: { 'user-agent': { exact: 'foo' } } } }],
          },
        ],
      }),
    );
    const wanted = revision;
    await until(
      `revision ${wanted} applied`,
      async () =>
        (await (await request(`${proxy.listeners.admin}/readyz`)).body.json()) as {
          revision?: number;
        },
      (r: { revision?: number }) => r.revision === wanted,
    );
  }

  const bGray = () => ({
    gray: { version: 'v2', endpoints: [`http://127.0.0.1:${ports.b2}`] },
  });

  beforeAll(async () => {
    [ports.a1, ports.a2, ports.b1, ports.b2] = await freePorts(4);
    revision = 1;
    writeFileSync(
      tableFile,
      JSON.stringify({ apiVersion: 'graylane/v1', revision, services: {}, entrypoints: [] }),
    );
    proxy = await startMeshProxy(tableFile);
    const sidecar = { HTTP_PROXY: proxy.listeners.outbound!, BACKEND_URL: 'http://b/' };
    apps.push(await startApp('frontend', 'v1', ports.a1, sidecar));
    apps.push(await startApp('frontend', 'v2', ports.a2, sidecar));
    apps.push(await startApp('backend', 'v1', ports.b1, {}));
    await publish({});
  }, 60_000);

  afterAll(async () => {
    for (const child of [...apps, bCanary]) child?.kill('SIGKILL');
    proxy?.child.kill('SIGTERM');
    if (proxy) await proxy.exit;
    dir.cleanup();
  });

  it('b has no canary: the matched request reaches a gray, and b serves it from stable', async () => {
    const plain = await hit(`${proxy.listeners.gateway}/`);
    expect(plain.served).toBe('a=stable, b=stable');
    const matched = await hit(`${proxy.listeners.gateway}/`, FOO);
    expect(matched.body).toBe('frontend v2 -> backend v1');
    // a gray passed the tag on: b, which has no lane gray, says so rather than just "stable".
    expect(matched.served).toBe('a=gray, b=stable;fallback=absent');
  });

  it('b canary deployed: the matched request reaches b gray; others stay stable', async () => {
    bCanary = await startApp('backend', 'v2', ports.b2, {});
    await publish(bGray());
    const matched = await hit(`${proxy.listeners.gateway}/`, FOO);
    expect(matched.body).toBe('frontend v2 -> backend v2');
    expect(matched.served).toBe('a=gray, b=gray');
    expect((await hit(`${proxy.listeners.gateway}/`)).body).toBe('frontend v1 -> backend v1');
  });

  it('b canary killed: stable again with no failed request; back: gray again', async () => {
    let sending = true;
    const outcomes: Array<{ status: number; body: string; served: string }> = [];
    const load = (async () => {
      while (sending) outcomes.push(await hit(`${proxy.listeners.gateway}/`, FOO));
    })();
    await until(
      'load on b gray',
      async () => outcomes.length,
      (n: number) => n >= 20,
    );
    bCanary!.kill('SIGKILL');
    await once(bCanary!, 'exit');
    const killedAt = outcomes.length;
    await until(
      'matched requests on b stable',
      async () => outcomes.slice(killedAt),
      (seen: Array<{ body: string }>) =>
        seen.filter((o) => o.body === 'frontend v2 -> backend v1').length >= 20,
    );
    bCanary = await startApp('backend', 'v2', ports.b2, {});
    const backAt = outcomes.length;
    await until(
      'matched requests on b gray again',
      async () => outcomes.slice(backAt),
      (seen: Array<{ body: string }>) => seen.some((o) => o.body === 'frontend v2 -> backend v2'),
    );
    sending = false;
    await load;
    const failed = outcomes.filter((o) => o.status !== 200);
    console.log(`[figures] matched requests across the kill and the return: ${outcomes.length}`);
    expect(failed).toEqual([]);
    // Only b ever changes: v2 while its canary is up, v1 (by fallback) while it is down.
    const fallbacks = outcomes.filter((o) => o.body === 'frontend v2 -> backend v1');
    expect(fallbacks.length).toBeGreaterThanOrEqual(20);
    for (const o of fallbacks) expect(o.served).toMatch(/^a=gray, b=stable;fallback=\w+$/);
    expect(new Set(outcomes.map((o) => o.body))).toEqual(
      new Set(['frontend v2 -> backend v1', 'frontend v2 -> backend v2']),
    );
  }, 90_000);
});
