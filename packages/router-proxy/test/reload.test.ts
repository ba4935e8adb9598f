import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { GraylaneProxy } from '../src/index.js';
import { metricValue, startProxy, startUpstream, tempDir, type Upstream } from './helpers.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('route table from a watched file', () => {
  const dir = tempDir();
  const file = join(dir.path, 'routes.yaml');
  let proxy: GraylaneProxy;
  let a: Upstream;
  let b: Upstream;
  let slow: Upstream;

  const document = (revision: number, endpoint: string) => ({
    apiVersion: 'graylane/v1',
    revision,
    services: { web: { stable: { endpoints: [endpoint] } } },
    entrypoints: [{ name: 'web', service: 'web' }],
  });

  /** Writes in place (truncate + write), as an editor or `cat >` does. */
  const writeInPlace = (doc: unknown) => writeFileSync(file, stringify(doc));
  /** Writes a temp file and renames it over the table, as Kubernetes ConfigMap mounts and careful tools do. */
  const writeAtomic = (doc: unknown, n: number) => {
    const temp = join(dir.path, `.routes-${n}.tmp`);
    writeFileSync(temp, JSON.stringify(doc));
    renameSync(temp, file);
  };

  async function waitForRevision(revision: number, withinMs: number): Promise<number> {
    const start = Date.now();
    while (Date.now() - start < withinMs) {
      if (proxy.tables.loaded?.revision === revision) return Date.now() - start;
      await sleep(10);
    }
    throw new Error(
      `revision ${revision} not applied within ${withinMs} ms (at ${proxy.tables.loaded?.revision})`,
    );
  }

  beforeAll(async () => {
    a = await startUpstream('a');
    b = await startUpstream('b');
    slow = await startUpstream('slow', (_req, res) => {
      setTimeout(() => res.end(JSON.stringify({ upstream: 'slow' })), 400);
    });
    writeInPlace(document(1, a.url));
    proxy = await startProxy({ routeTable: file });
  });

  afterAll(async () => {
    await proxy.close();
    await Promise.all([a, b, slow].map((u) => u.close()));
    dir.cleanup();
  });

  it('applies a valid change within 1 s, by in-place write and by atomic rename', async () => {
    writeInPlace(document(2, b.url));
    await waitForRevision(2, 1000);
    writeAtomic(document(3, a.url), 3);
    await waitForRevision(3, 1000);
    const res = await request(`${proxy.url('gateway')}/`);
    expect(((await res.body.json()) as { upstream: string }).upstream).toBe('a');
    expect(await metricValue(proxy, 'graylane_routetable_revision')).toBe(3);
  });

  it('keeps serving the last good table when a change is invalid, and counts it', async () => {
    const before = await metricValue(proxy, 'graylane_routetable_errors_total');
    const revision = proxy.tables.loaded!.revision;
    writeInPlace({
      ...document(revision + 1, b.url),
      services: { web: { stable: { endpoints: ['ftp://x'] } } },
    });
    const deadline = Date.now() + 2000;
    while (
      (await metricValue(proxy, 'graylane_routetable_errors_total')) === before &&
      Date.now() < deadline
    ) {
      await sleep(20);
    }
    expect((await metricValue(proxy, 'graylane_routetable_errors_total')) - before).toBe(1);
    expect(proxy.tables.loaded!.revision).toBe(revision);
    const res = await request(`${proxy.url('gateway')}/`);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    writeInPlace('services: [ unclosed');
    const deadline2 = Date.now() + 2000;
    while (
      (await metricValue(proxy, 'graylane_routetable_errors_total')) === before + 1 &&
      Date.now() < deadline2
    ) {
      await sleep(20);
    }
    expect((await metricValue(proxy, 'graylane_routetable_errors_total')) - before).toBe(2);
    expect(proxy.tables.loaded!.revision).toBe(revision);
  });

  it('lets a request in flight finish on the table it started with', async () => {
    const revision = proxy.tables.loaded!.revision + 1;
    writeAtomic(document(revision, slow.url), revision);
    await waitForRevision(revision, 1000);
    const inFlight = request(`${proxy.url('gateway')}/`);
    await sleep(100);
    writeAtomic(document(revision + 1, a.url), revision + 1);
    await waitForRevision(revision + 1, 1000);
    const res = await inFlight;
    expect(res.statusCode).toBe(200);
    expect(((await res.body.json()) as { upstream: string }).upstream).toBe('slow');
  });

  it('drops no request while the table changes under load', async () => {
    const agent = new Agent({ connections: 16 });
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const seen = new Set<string>();
    const worker = async () => {
      // Bounded: stops when told, and at 1500 requests per worker at most.
      for (let i = 0; i < 1500 && !stop; i++) {
        try {
          const res = await request(`${proxy.url('gateway')}/`, { dispatcher: agent });
          const body = (await res.body.json()) as { upstream: string };
          if (res.statusCode === 200) {
            ok++;
            seen.add(body.upstream);
          } else failures.push(`status ${res.statusCode}`);
        } catch (error) {
          failures.push(String(error));
        }
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    let revision = proxy.tables.loaded!.revision;
    for (let n = 0; n < 10; n++) {
      revision++;
      const doc = document(revision, n % 2 === 0 ? b.url : a.url);
      if (n % 2 === 0) writeAtomic(doc, revision);
      else writeInPlace(doc);
      await waitForRevision(revision, 1000);
      await sleep(50);
    }
    stop = true;
    await Promise.all(workers);
    await agent.close();
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    expect([...seen].sort()).toEqual(['a', 'b']);
  });
});
