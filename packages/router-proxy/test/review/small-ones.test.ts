import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GraylaneProxy } from '../../src/index.js';
import {
  metricValue,
  serviceTable,
  startProxy,
  startUpstream,
  table,
  tempDir,
  type Upstream,
} from '../helpers.js';
import { rawExchange } from '../raw-socket.js';

/** A port nothing listens on: bound, then closed. */
async function deadPort(): Promise<number> {
  const server = createNetServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Issue 15 item 11: the ejection gauge, trailers, bad flag values. */
describe('small ones', () => {
  let stable: Upstream;
  let trailing: Upstream;

  beforeAll(async () => {
    stable = await startUpstream('stable');
    trailing = await startUpstream('trailing', (req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { trailer: 'x-checksum', 'transfer-encoding': 'chunked' });
        res.write('body');
        res.addTrailers({ 'x-checksum': 'abc' });
        res.end();
      });
    });
  });

  afterAll(async () => {
    await stable.close();
    await trailing.close();
  });

  it('resets graylane_endpoint_ejected for an endpoint removed from the table or re-added', async () => {
    const dead = `http://127.0.0.1:${await deadPort()}`;
    const withDead = (revision: number) =>
      table({
        revision,
        services: {
          web: { stable: { endpoints: [stable.url] }, lanes: { gray: { endpoints: [dead] } } },
        },
        entrypoints: [{ name: 'web', service: 'web', clientLanes: 'any' }],
      });
    const proxy: GraylaneProxy = await startProxy({
      initialTable: withDead(1),
      runtime: {
        outlier: {
          consecutiveFailures: 1,
          baseEjectionMs: 60_000,
          maxEjectionMs: 60_000,
          maxEjectionPercent: 50,
        },
      },
    });
    try {
      const labels = { service: 'web', lane: 'gray', endpoint: dead };
      for (let i = 0; i < 3; i++) {
        const res = await request(`${proxy.url('gateway')}/`, { headers: { 'x-lane': 'gray' } });
        await res.body.dump();
      }
      expect(await metricValue(proxy, 'graylane_endpoint_ejected', labels)).toBe(1);
      proxy.tables.set(
        table({
          revision: 2,
          services: { web: { stable: { endpoints: [stable.url] } } },
          entrypoints: [{ name: 'web', service: 'web' }],
        }),
        'test',
      );
      expect(await metricValue(proxy, 'graylane_endpoint_ejected', labels)).toBe(0);
      proxy.tables.set(withDead(3), 'test');
      expect(await metricValue(proxy, 'graylane_endpoint_ejected', labels)).toBe(0);
    } finally {
      await proxy.close();
    }
  });

  it('counts trailers it drops, both ways', async () => {
    const proxy = await startProxy({
      initialTable: serviceTable('web', trailing.url),
    });
    try {
      const reply = await rawExchange(
        proxy.address('gateway')!.port,
        'POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\nTrailer: x-sig\r\nConnection: close\r\n\r\n4\r\nbody\r\n0\r\nx-sig: s\r\n\r\n',
      );
      expect(reply.status).toBe(200);
      expect(reply.text).not.toContain('x-checksum: abc');
      expect(
        await metricValue(proxy, 'graylane_dropped_trailers_total', { direction: 'request' }),
      ).toBe(1);
      expect(
        await metricValue(proxy, 'graylane_dropped_trailers_total', { direction: 'response' }),
      ).toBe(1);
    } finally {
      await proxy.close();
    }
  });

  it('reports every bad flag value with exit 2 and one line, no stack trace', () => {
    const bin = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
    const dir = tempDir();
    const file = join(dir.path, 't.json');
    writeFileSync(file, JSON.stringify({ apiVersion: 'graylane/v1', revision: 1 }));
    try {
      for (const args of [
        ['--gateway', 'nonsense'],
        ['--gateway', '127.0.0.1:99999'],
        ['--outbound', 'x:y'],
        ['--admin', 'nonsense', '--gateway', ':0'],
        ['--inbound', 'nope', '--inbound-target', 'http://127.0.0.1:1', '--service', 'web'],
        ['--gateway', ':0', '--drain-delay-ms', 'soon'],
        ['--gateway', ':0', '--log-level', 'loud'],
      ]) {
        const run = spawnSync(process.execPath, [bin, '--route-table', file, ...args], {
          encoding: 'utf8',
          timeout: 10_000,
        });
        expect(run.status, `${args.join(' ')}: ${run.stderr}`).toBe(2);
        expect(run.stderr.trim().split('\n').length, run.stderr).toBeLessThanOrEqual(2);
        expect(run.stderr).not.toMatch(/\n\s+at /);
      }
    } finally {
      dir.cleanup();
    }
  });
});
