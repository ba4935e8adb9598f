import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { GraylaneError, RouteTable } from '@graylane/lane-core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfigError,
  ControllerRouteTableSource,
  type GraylaneProxy,
  parseCli,
  proxyOptionsFrom,
} from '../src/index.js';
import { createLogger } from '../src/logger.js';
import { metricValue, startProxy, tempDir } from './helpers.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const line = (revision: number, endpoint = 'http://127.0.0.1:9001') =>
  `${JSON.stringify({
    apiVersion: 'graylane/v1',
    revision,
    services: { web: { stable: { endpoints: [endpoint] } } },
    entrypoints: [{ name: 'web', service: 'web' }],
  })}\n`;

interface Scripted {
  url: string;
  server: Server;
  watches: Array<{ query: URLSearchParams; authorization: string | undefined }>;
  acks: Array<{ body: unknown; authorization: string | undefined }>;
  close(): Promise<void>;
}

/**
 * A controller that says exactly what a test scripts, including what the real one never would: bad
 * tables, lower revisions, error statuses. `watch` gets each watch request in turn.
 */
async function scriptedController(
  watch: (res: ServerResponse, n: number, req: IncomingMessage) => void,
): Promise<Scripted> {
  const watches: Scripted['watches'] = [];
  const acks: Scripted['acks'] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const authorization = req.headers.authorization;
    if (url.pathname === '/v1/routetable/acks') {
      let text = '';
      req.on('data', (c: Buffer) => {
        text += c.toString();
      });
      req.on('end', () => {
        acks.push({ body: JSON.parse(text), authorization });
        res.writeHead(204);
        res.end();
      });
      return;
    }
    watches.push({ query: url.searchParams, authorization });
    watch(res, watches.length, req);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/routetable`,
    server,
    watches,
    acks,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function stream(res: ServerResponse, heartbeatMs = 5_000) {
  res.writeHead(200, {
    'content-type': 'application/x-ndjson',
    'x-graylane-heartbeat-ms': String(heartbeatMs),
  });
  res.flushHeaders();
}

async function waitFor(check: () => boolean, what: string, withinMs = 5_000) {
  const deadline = Date.now() + withinMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${withinMs} ms: ${what}`);
    await sleep(5);
  }
}

describe('ControllerRouteTableSource', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  function open(
    url: string,
    options: Partial<ConstructorParameters<typeof ControllerRouteTableSource>[2]> = {},
  ) {
    const applied: RouteTable[] = [];
    const errors: GraylaneError[] = [];
    const source = new ControllerRouteTableSource(
      url,
      { onTable: (table) => applied.push(table), onError: (error) => errors.push(error) },
      { proxyId: 'p-1', logger: createLogger('silent'), ...options },
    );
    cleanups.push(() => source.stop());
    return { source, applied, errors, revisions: () => applied.map((t) => t.revision) };
  }

  it('never applies a revision at or below the applied one', async () => {
    const controller = await scriptedController((res) => {
      stream(res);
      res.write(line(3));
      res.write(line(2));
      res.write(line(3, 'http://127.0.0.1:9009'));
      res.write(line(4));
    });
    cleanups.push(controller.close);
    const watcher = open(controller.url);
    await watcher.source.start();
    await waitFor(() => watcher.revisions().includes(4), 'revision 4');
    expect(watcher.revisions()).toEqual([3, 4]);
    expect(watcher.source.appliedRevision).toBe(4);
    expect(watcher.errors).toEqual([]);
  });

  it('acknowledges each applied revision, with the bearer token on the watch and the acks', async () => {
    const controller = await scriptedController((res) => {
      stream(res);
      res.write(line(1));
      setTimeout(() => res.write(line(2)), 20);
    });
    cleanups.push(controller.close);
    const watcher = open(controller.url, { token: 's3cret' });
    await watcher.source.start();
    await waitFor(() => controller.acks.length === 2, 'two acks');
    expect(
      controller.acks
        .map((a) => a.body as { revision: number })
        .sort((x, y) => x.revision - y.revision),
    ).toEqual([
      { proxy: 'p-1', revision: 1 },
      { proxy: 'p-1', revision: 2 },
    ]);
    expect(controller.acks.every((a) => a.authorization === 'Bearer s3cret')).toBe(true);
    expect(controller.watches[0]!.authorization).toBe('Bearer s3cret');
    expect(Object.fromEntries(controller.watches[0]!.query)).toEqual({
      watch: 'true',
      proxy: 'p-1',
    });
  });

  it('reconnects after the controller ends the stream, saying what it has (sinceRevision)', async () => {
    const controller = await scriptedController((res, n) => {
      stream(res);
      if (n === 1) res.end(line(3));
      else res.write(line(4));
    });
    cleanups.push(controller.close);
    const watcher = open(controller.url);
    await watcher.source.start();
    await waitFor(() => watcher.revisions().includes(4), 'the table after reconnecting');
    expect(Object.fromEntries(controller.watches[1]!.query)).toEqual({
      watch: 'true',
      sinceRevision: '3',
      proxy: 'p-1',
    });
  });

  it('backs off between failed attempts instead of hammering the controller', async () => {
    const controller = await scriptedController((res) => {
      res.writeHead(503);
      res.end('{"error":{"code":"GRAYLANE_ERR_SHUTTING_DOWN"}}');
    });
    cleanups.push(controller.close);
    const watcher = open(controller.url, { startTimeoutMs: 0 });
    await watcher.source.start();
    await sleep(700);
    // 100 ms doubling, full jitter: about 4-6 attempts in 700 ms; without backoff, hundreds.
    expect(controller.watches.length).toBeGreaterThanOrEqual(2);
    expect(controller.watches.length).toBeLessThan(15);
    expect(watcher.applied).toEqual([]);
  });

  it('takes a 200 that is not a watch for a failed attempt, not for bad tables', async () => {
    const controller = await scriptedController((res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>not the controller</html>\n');
    });
    cleanups.push(controller.close);
    const watcher = open(controller.url, { startTimeoutMs: 0 });
    await watcher.source.start();
    await sleep(700);
    expect(watcher.errors).toEqual([]);
    expect(controller.watches.length).toBeGreaterThanOrEqual(2);
    expect(controller.watches.length).toBeLessThan(15);
  });

  it('start resolves without a table at its bound, and the table applies when it comes', async () => {
    let serve = false;
    const controller = await scriptedController((res) => {
      if (!serve) {
        res.writeHead(503);
        res.end();
        return;
      }
      stream(res);
      res.write(line(9));
    });
    cleanups.push(controller.close);
    const watcher = open(controller.url, { startTimeoutMs: 200, backoff: { maxMs: 100 } });
    const started = Date.now();
    await watcher.source.start();
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(watcher.source.appliedRevision).toBeUndefined();
    serve = true;
    await waitFor(() => watcher.revisions().includes(9), 'the late first table');
  });

  it('ends a line that outgrows its bound instead of buffering it', async () => {
    const controller = await scriptedController((res, n) => {
      stream(res);
      if (n === 1) res.write(`{"revision":1,"padding":"${'x'.repeat(4096)}`);
      else res.write(line(2));
    });
    cleanups.push(controller.close);
    const watcher = open(controller.url, { maxLineBytes: 1024 });
    await watcher.source.start();
    await waitFor(() => watcher.revisions().includes(2), 'the table on the next connection');
    expect(controller.watches.length).toBe(2);
  });
});

describe('graylane-proxy with a controller that sends a bad table', () => {
  let proxy: GraylaneProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
  });

  it('refuses it, counts it, and keeps serving the last good table', async () => {
    const controller = await scriptedController((res) => {
      stream(res);
      res.write(line(1));
      setTimeout(() => {
        res.write('{"apiVersion": "graylane/v1", "revision": 2, not json\n');
        res.write(
          `${JSON.stringify({ apiVersion: 'graylane/v1', revision: 3, services: { web: { stable: { endpoints: ['ftp://x'] } } }, entrypoints: [] })}\n`,
        );
      }, 50);
    });
    try {
      proxy = await startProxy({ routeTable: controller.url, outbound: undefined });
      expect(proxy.tables.loaded?.revision).toBe(1);
      await waitFor(() => controller.acks.length === 1, 'the ack of revision 1');
      const deadline = Date.now() + 3_000;
      while (Date.now() < deadline) {
        if ((await metricValue(proxy, 'graylane_routetable_errors_total')) === 2) break;
        await sleep(20);
      }
      expect(await metricValue(proxy, 'graylane_routetable_errors_total')).toBe(2);
      expect(proxy.tables.loaded?.revision).toBe(1);
      expect(await metricValue(proxy, 'graylane_routetable_revision')).toBe(1);
      expect(controller.acks.map((a) => a.body)).toEqual([
        { proxy: proxy.runtime.options.proxyId, revision: 1 },
      ]);
    } finally {
      await controller.close();
    }
  });
});

describe('--route-table with a URL', () => {
  const gateway = ['--gateway', '127.0.0.1:0'];

  it('takes the controller URL, and the token only from the environment or the config file', () => {
    const cli = parseCli([...gateway, '--route-table', 'http://127.0.0.1:7070/v1/routetable'], {
      GRAYLANE_ROUTE_TABLE_TOKEN: 't0ken',
    });
    expect(!cli.help && proxyOptionsFrom(cli.config)).toMatchObject({
      routeTable: 'http://127.0.0.1:7070/v1/routetable',
      routeTableToken: 't0ken',
      routeTableStartTimeoutMs: 10_000,
    });
    expect(() => parseCli([...gateway, '--route-table-token', 'x'], {})).toThrow(ConfigError);
  });

  it('reads the URL from GRAYLANE_ROUTE_TABLE and from the config file', () => {
    const url = 'https://controller.internal:7070/v1/routetable';
    const fromEnv = parseCli(gateway, { GRAYLANE_ROUTE_TABLE: url });
    expect(!fromEnv.help && fromEnv.config.routeTable).toBe(url);
    const dir = tempDir();
    try {
      const config = join(dir.path, 'proxy.yaml');
      writeFileSync(
        config,
        `routeTable: ${url}\nrouteTableToken: from-file\nrouteTableStartTimeoutMs: 0\n`,
      );
      const fromFile = parseCli([...gateway, '--config', config], {});
      expect(!fromFile.help && fromFile.config).toMatchObject({
        routeTable: url,
        routeTableToken: 'from-file',
        routeTableStartTimeoutMs: 0,
      });
    } finally {
      dir.cleanup();
    }
  });

  it('refuses a URL of another scheme, naming the field', () => {
    expect(() =>
      parseCli([...gateway, '--route-table', 'ftp://controller/v1/routetable'], {}),
    ).toThrow(/routeTable: a file, or the controller's http\(s\) URL/);
  });
});
