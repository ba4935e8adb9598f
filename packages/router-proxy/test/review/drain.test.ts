import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  runBin,
  send,
  serviceTable,
  startProxy,
  startUpstream,
  tempDir,
  type Upstream,
} from '../helpers.js';
import { collect, rawConnect } from '../raw-socket.js';

/** A TCP server that keeps every connection open and silent: the far end of a blind tunnel. */
async function silentServer(): Promise<Server & { port: number }> {
  const server = createServer((socket) => socket.on('error', () => {}));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return Object.assign(server, { port: (server.address() as { port: number }).port });
}

async function openTunnel(outbound: string, port: number) {
  const socket = await rawConnect(Number(new URL(outbound).port));
  const established = new Promise<string>((resolve) =>
    socket.once('data', (c) => resolve(String(c))),
  );
  socket.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  expect(await established).toMatch(/^HTTP\/1\.1 200/);
  return socket;
}

/** Issue 15 item 7: blind CONNECT tunnels are cut at the drain deadline; a second signal exits now. */
describe('drain: CONNECT tunnels and a second signal', () => {
  let far: Server & { port: number };
  const dir = tempDir();
  let tableFile: string;

  beforeAll(async () => {
    far = await silentServer();
    tableFile = join(dir.path, 'table.json');
    writeFileSync(tableFile, JSON.stringify({ apiVersion: 'graylane/v1', revision: 1 }));
  });

  afterAll(() => {
    far.closeAllConnections?.();
    far.close();
    dir.cleanup();
  });

  async function startBin(drainTimeoutMs: number) {
    const config = join(dir.path, `config-${drainTimeoutMs}.json`);
    writeFileSync(config, JSON.stringify({ drainTimeoutMs, drainDelayMs: 0 }));
    return runBin(
      [
        '--route-table',
        tableFile,
        '--outbound',
        '127.0.0.1:0',
        '--admin',
        '127.0.0.1:0',
        '--config',
        config,
      ],
      {},
    );
  }

  it('cuts an open CONNECT tunnel at drainTimeoutMs', async () => {
    const run = await startBin(800);
    const tunnel = await openTunnel(run.listeners.outbound!, far.port);
    const closed = collect(tunnel, 10_000);
    const signalled = Date.now();
    run.child.kill('SIGTERM');
    const { code } = await run.exit;
    const tookMs = Date.now() - signalled;
    expect(code).toBe(0);
    expect(tookMs).toBeLessThan(2_500);
    expect((await closed).closed).toBe(true);
  });

  it('exits at once on a second SIGTERM or SIGINT', async () => {
    for (const second of ['SIGTERM', 'SIGINT'] as const) {
      const run = await startBin(20_000);
      const tunnel = await openTunnel(run.listeners.outbound!, far.port);
      run.child.kill('SIGTERM');
      await sleep(300);
      const signalled = Date.now();
      run.child.kill(second);
      await run.exit;
      expect(Date.now() - signalled, second).toBeLessThan(1_000);
      tunnel.destroy();
    }
  });
});

/**
 * Issue 15 item 8: `/readyz` turns 503 at once and the listeners keep accepting for `drainDelayMs`;
 * the whole-request deadline stops at the response head (SSE), on every listener; a cut response is
 * counted.
 */
describe('drain: deregistration window, long responses', () => {
  let stream: Upstream;

  beforeAll(async () => {
    stream = await startUpstream('stream', (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let n = 0;
      const tick = setInterval(() => {
        res.write(`data: ${n}\n\n`);
        if (++n === 8) {
          clearInterval(tick);
          res.end();
        }
      }, 100);
      if (req.url === '/stall') {
        clearInterval(tick);
        res.write('data: then nothing\n\n');
      }
      res.on('close', () => clearInterval(tick));
    });
  });

  afterAll(async () => {
    await stream.close();
  });

  it('reports not ready at once, keeps accepting for drainDelayMs, then stops', async () => {
    const proxy = await startProxy({
      initialTable: serviceTable('stream', stream.url),
      drainDelayMs: 800,
    });
    const gateway = proxy.url('gateway');
    const admin = proxy.url('admin');
    const closing = proxy.close();
    const ready = await request(`${admin}/readyz`);
    expect(ready.statusCode).toBe(503);
    await ready.body.dump();
    await sleep(300);
    const during = await send(`${gateway}/`);
    expect(during.status).toBe(200);
    await closing;
    await expect(send(`${gateway}/`)).rejects.toThrow();
  });

  it('lets an SSE response run past requestTimeoutMs on every listener', async () => {
    const proxy = await startProxy({
      initialTable: serviceTable('stream', stream.url),
      inbound: { host: '127.0.0.1', port: 0 },
      inboundApp: { target: stream.url, service: 'stream' },
      runtime: {
        upstream: {
          connectTimeoutMs: 1_000,
          headersTimeoutMs: 1_000,
          bodyTimeoutMs: 300,
          requestTimeoutMs: 300,
          keepAliveTimeoutMs: 1_000,
        },
      },
    });
    try {
      for (const kind of ['gateway', 'outbound', 'inbound'] as const) {
        const sent = await send(`${proxy.url(kind)}/`, { headers: { host: 'stream' } });
        expect(sent.status, kind).toBe(200);
        expect(sent.text.match(/data: /g)?.length, kind).toBe(8);
      }
      const before = await proxy.metrics.registry.getSingleMetricAsString(
        'graylane_cut_responses_total',
      );
      expect(before).not.toMatch(/listener="gateway"/);
      await expect(send(`${proxy.url('gateway')}/stall`)).rejects.toThrow();
      await sleep(100);
      const after = await proxy.metrics.registry.getSingleMetricAsString(
        'graylane_cut_responses_total',
      );
      expect(after).toMatch(
        /graylane_cut_responses_total\{listener="gateway",reason="timeout"\} 1/,
      );
    } finally {
      await proxy.close();
    }
  });
});
