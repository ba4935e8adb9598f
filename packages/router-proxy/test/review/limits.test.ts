import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GraylaneProxy } from '../../src/index.js';
import { metricValue, startProxy, startUpstream, table, type Upstream } from '../helpers.js';
import { collect, rawConnect, rawExchange } from '../raw-socket.js';

const TUNNEL_IDLE_MS = 400;

/** Issue 15 item 12: refusals counted, the admin listener guarded, idle tunnels closed. */
describe('listener limits', () => {
  let proxy: GraylaneProxy;
  let web: Upstream;
  let echo: Server & { port: number };

  beforeAll(async () => {
    web = await startUpstream('web');
    const server = createServer((socket) => {
      socket.on('error', () => {});
      socket.pipe(socket);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    echo = Object.assign(server, { port: (server.address() as { port: number }).port });
    proxy = await startProxy({
      initialTable: table({
        revision: 1,
        services: { web: { stable: { endpoints: [web.url] } } },
        entrypoints: [{ name: 'web', match: { pathPrefix: '/web' }, service: 'web' }],
      }),
      server: {
        headersTimeoutMs: 5_000,
        keepAliveTimeoutMs: 5_000,
        maxConnections: 3,
        maxHeaderBytes: 2_048,
        tunnelIdleTimeoutMs: TUNNEL_IDLE_MS,
      },
    });
  });

  afterAll(async () => {
    await proxy.close(0);
    await web.close();
    echo.close();
  });

  const refused = (listener: string, reason: string) =>
    metricValue(proxy, 'graylane_refused_requests_total', { listener, reason });

  it('counts the refusals the proxy makes itself, by listener and reason', async () => {
    const gateway = proxy.address('gateway')!.port;
    const outbound = proxy.address('outbound')!.port;
    await rawExchange(gateway, 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n');
    expect(await refused('gateway', 'malformed_request')).toBe(1);
    await rawExchange(gateway, `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(3_000)}\r\n\r\n`);
    expect(await refused('gateway', 'headers_too_large')).toBe(1);
    await rawExchange(gateway, 'GET /other HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(await refused('gateway', 'no_entrypoint')).toBe(1);
    await rawExchange(
      gateway,
      'POST /web HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n',
    );
    expect(await refused('gateway', 'transfer_coding')).toBe(1);
    await rawExchange(outbound, 'CONNECT nowhere HTTP/1.1\r\nHost: nowhere\r\n\r\n');
    expect(await refused('outbound', 'bad_request')).toBe(1);
  });

  it('counts connections past the cap', async () => {
    const gateway = proxy.address('gateway')!.port;
    const held = await Promise.all([rawConnect(gateway), rawConnect(gateway), rawConnect(gateway)]);
    await sleep(50);
    const reply = await rawExchange(gateway, 'GET /web HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(reply.status).toBe(503);
    expect(await refused('gateway', 'overloaded')).toBe(1);
    for (const socket of held) socket.destroy();
    await sleep(50);
  });

  it('gives the admin listener the same head guard and connection cap', async () => {
    const admin = proxy.address('admin')!.port;
    const big = await rawExchange(
      admin,
      `GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(3_000)}\r\n\r\n`,
    );
    expect(big.status).toBe(431);
    expect(big.headers['x-graylane-error']).toBe('GRAYLANE_ERR_HEADERS_TOO_LARGE');
    const smuggle = await rawExchange(
      admin,
      'GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n',
    );
    expect(smuggle.status).toBe(400);
    const held = await Promise.all([rawConnect(admin), rawConnect(admin), rawConnect(admin)]);
    await sleep(50);
    const past = await rawExchange(admin, 'GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(past.status).toBe(503);
    expect(past.headers['x-graylane-error']).toBe('GRAYLANE_ERR_OVERLOADED');
    for (const socket of held) socket.destroy();
    await sleep(50);
    expect(await refused('admin', 'headers_too_large')).toBe(1);
  });

  it('closes a CONNECT tunnel idle for tunnelIdleTimeoutMs, not one in use', async () => {
    const outbound = proxy.address('outbound')!.port;
    const open = async () => {
      const socket = await rawConnect(outbound);
      const established = new Promise<string>((resolve) =>
        socket.once('data', (c) => resolve(String(c))),
      );
      socket.write(
        `CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\n`,
      );
      expect(await established).toMatch(/^HTTP\/1\.1 200/);
      return socket;
    };
    const idle = await open();
    const idleClosed = collect(idle, 5_000);
    const busy = await open();
    const busyClosed = collect(busy, 5_000);
    const keepBusy = setInterval(() => busy.write('ping'), TUNNEL_IDLE_MS / 4);
    const idleReply = await idleClosed;
    expect(idleReply.closed).toBe(true);
    expect(idleReply.elapsedMs).toBeGreaterThanOrEqual(TUNNEL_IDLE_MS - 50);
    expect(idleReply.elapsedMs).toBeLessThan(TUNNEL_IDLE_MS * 4);
    await sleep(TUNNEL_IDLE_MS * 2);
    expect(busy.destroyed).toBe(false);
    clearInterval(keepBusy);
    expect((await busyClosed).closed).toBe(true);
  });
});
