import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../packages/controller/test/graylane.js';
import {
  type BinRun,
  startUpstream,
  tempDir,
  type Upstream,
} from '../../packages/router-proxy/test/helpers.js';
import { startMeshProxy } from '../support/mesh-proxy.js';

const FRONTEND_DIR = fileURLToPath(new URL('../../examples/frontend/', import.meta.url));

/**
 * The example frontend in its own process, as its README starts it (`--import
 * @graylane/sdk/register`, no lane code), calling http://backend/ with the sidecar as HTTP_PROXY.
 */
async function startFrontend(version: string, sidecar: string) {
  const port = await freePort();
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', '@graylane/sdk/register', 'server.js'],
    {
      cwd: FRONTEND_DIR,
      env: { ...process.env, PORT: String(port), VERSION: version, HTTP_PROXY: sidecar },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await once(child.stdout!, 'data');
  return { child, url: `http://127.0.0.1:${port}` };
}

/**
 * The whole data plane with real processes: the graylane-proxy bin as gateway and sidecar, two
 * frontend versions running the SDK (no lane code of their own), and two backend versions. The
 * frontends exist only after the sidecar does, so the table is written again once they are up:
 * the hot reload is part of the path.
 */
describe('swimlane end to end: proxy + SDK', () => {
  const dir = tempDir();
  const tableFile = join(dir.path, 'routes.json');
  let proxy: BinRun;
  const frontends: ChildProcess[] = [];
  const backends: Upstream[] = [];

  const writeTable = (revision: number, services: Record<string, unknown>) =>
    writeFileSync(
      tableFile,
      JSON.stringify({
        apiVersion: 'graylane/v1',
        revision,
        services,
        entrypoints: [{ name: 'shop', service: 'frontend', clientLanes: 'known' }],
      }),
    );

  let backendServices: Record<string, unknown>;
  let frontendService: Record<string, unknown>;

  beforeAll(async () => {
    for (const version of ['v1', 'v2']) {
      backends.push(
        await startUpstream(`backend-${version}`, (req, res) => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end(`backend ${version} saw lane=${req.headers['x-lane'] ?? '-'}`);
        }),
      );
    }
    backendServices = {
      stable: { version: 'v1', endpoints: [backends[0]!.url] },
      lanes: { gray: { version: 'v2', endpoints: [backends[1]!.url] } },
    };
    // A placeholder frontend until the real ones are up.
    writeTable(1, {
      backend: backendServices,
      frontend: { stable: { endpoints: [backends[0]!.url] } },
    });
    proxy = await startMeshProxy(tableFile);
    const v1 = await startFrontend('v1', proxy.listeners.outbound!);
    const v2 = await startFrontend('v2', proxy.listeners.outbound!);
    frontends.push(v1.child, v2.child);
    frontendService = {
      stable: { version: 'v1', endpoints: [v1.url] },
      lanes: { gray: { version: 'v2', endpoints: [v2.url] } },
    };
    writeTable(2, { backend: backendServices, frontend: frontendService });
    const admin = proxy.listeners.admin!;
    for (const deadline = Date.now() + 3000; Date.now() < deadline; ) {
      const ready = await request(`${admin}/readyz`);
      if (((await ready.body.json()) as { revision?: number }).revision === 2) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });

  afterAll(async () => {
    for (const child of frontends) child.kill('SIGKILL');
    proxy?.child.kill('SIGTERM');
    if (proxy) await proxy.exit;
    await Promise.all(backends.map((b) => b.close()));
    dir.cleanup();
  });

  const shop = async (headers: Record<string, string> = {}) => {
    const res = await request(`${proxy.listeners.gateway}/`, { headers });
    const body = await res.body.text();
    return { status: res.statusCode, served: res.headers['x-lane-served'], body };
  };

  it('keeps untagged traffic on stable at both hops', async () => {
    const { status, served, body } = await shop();
    expect(status).toBe(200);
    expect(body).toBe('frontend v1 -> backend v1 saw lane=-');
    expect(served).toBe('frontend=stable, backend=stable');
  });

  it('carries a gray request through the SDK app to the gray backend, and reports both hops', async () => {
    const { served, body } = await shop({ 'x-lane': 'gray' });
    expect(body).toBe('frontend v2 -> backend v2 saw lane=gray');
    expect(served).toBe('frontend=gray, backend=gray');
  });

  it('takes the lane from baggage alone', async () => {
    const { served, body } = await shop({ baggage: 'lane=gray,tenant=acme' });
    expect(body).toBe('frontend v2 -> backend v2 saw lane=gray');
    expect(served).toBe('frontend=gray, backend=gray');
  });

  it('falls back to stable where the lane is absent, and keeps the tag for later hops', async () => {
    writeTable(3, {
      backend: { stable: backendServices.stable },
      frontend: frontendService,
    });
    for (const deadline = Date.now() + 3000; Date.now() < deadline; ) {
      const ready = await request(`${proxy.listeners.admin}/readyz`);
      if (((await ready.body.json()) as { revision?: number }).revision === 3) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const { served, body } = await shop({ 'x-lane': 'gray' });
    expect(body).toBe('frontend v2 -> backend v1 saw lane=gray');
    expect(served).toBe('frontend=gray, backend=stable;fallback=absent');
  });
});
