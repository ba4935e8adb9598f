import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { GraylaneProxy } from '../src/index.js';
import { startProxy, startUpstream, table, type Upstream } from './helpers.js';

/** A port with nothing listening: connections to it are refused. */
async function closedPort(): Promise<string> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

/** Reads the request, then resets the connection before any response byte: the request was sent. */
async function resetAfterRequest(): Promise<{
  url: string;
  attempts: () => number;
  server: Server;
}> {
  let attempts = 0;
  const server = createServer((socket) => {
    socket.once('data', () => {
      attempts++;
      socket.resetAndDestroy();
    });
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, attempts: () => attempts, server };
}

type Echo = { upstream: string; body: string; method: string };

describe('retries', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function proxyFor(
    services: Parameters<typeof table>[0]['services'],
  ): Promise<GraylaneProxy> {
    const proxy = await startProxy({
      initialTable: table({
        revision: 1,
        services,
        entrypoints: [{ name: 'web', service: 'web' }],
      }),
    });
    cleanups.push(() => proxy.close());
    return proxy;
  }

  async function upstream(name: string): Promise<Upstream> {
    const started = await startUpstream(name);
    cleanups.push(() => started.close());
    return started;
  }

  const send = async (
    proxy: GraylaneProxy,
    init: { method?: string; body?: string; lane?: string } = {},
  ) => {
    const res = await request(`${proxy.url('gateway')}/`, {
      method: (init.method ?? 'GET') as 'GET',
      headers: init.lane ? { 'x-lane': init.lane } : {},
      body: init.body ?? null,
    });
    const text = await res.body.text();
    return {
      status: res.statusCode,
      served: res.headers['x-lane-served'],
      body: res.statusCode === 200 ? (JSON.parse(text) as Echo) : undefined,
    };
  };

  it("tries the same lane's other endpoint before falling back", async () => {
    const alive = await upstream('gray-alive');
    const stable = await upstream('stable');
    const proxy = await proxyFor({
      web: {
        stable: { endpoints: [stable.url] },
        lanes: { gray: { endpoints: [await closedPort(), alive.url] } },
      },
    });
    for (let i = 0; i < 10; i++) {
      const res = await send(proxy, { lane: 'gray' });
      expect(res.body?.upstream).toBe('gray-alive');
      expect(res.served).toBe('web=gray');
    }
  });

  it('retries a POST whose connection was refused, streaming its body again', async () => {
    const stable = await upstream('stable');
    const proxy = await proxyFor({
      web: {
        stable: { endpoints: [stable.url] },
        lanes: { gray: { endpoints: [await closedPort()] } },
      },
    });
    for (const size of [10, 200 * 1024]) {
      const body = 'p'.repeat(size);
      const res = await send(proxy, { method: 'POST', body, lane: 'gray' });
      expect(res.status).toBe(200);
      expect(res.served).toBe('web=stable;fallback=connect_error');
      expect(res.body?.body.length).toBe(size);
    }
  });

  it('does not retry a POST that reached the upstream, unless the service opts in', async () => {
    const reset = await resetAfterRequest();
    cleanups.push(() => reset.server.close());
    const stable = await upstream('stable');
    const strict = await proxyFor({
      web: { stable: { endpoints: [stable.url] }, lanes: { gray: { endpoints: [reset.url] } } },
    });
    const refused = await send(strict, { method: 'POST', body: 'order #1', lane: 'gray' });
    expect(refused.status).toBe(502);
    expect(reset.attempts()).toBe(1);
    expect(stable.requests).toHaveLength(0);

    const optedIn = await proxyFor({
      web: {
        stable: { endpoints: [stable.url] },
        lanes: { gray: { endpoints: [reset.url] } },
        retryNonIdempotent: true,
      },
    });
    const retried = await send(optedIn, { method: 'POST', body: 'order #2', lane: 'gray' });
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ upstream: 'stable', body: 'order #2', method: 'POST' });
    expect(retried.served).toBe('web=stable;fallback=connect_error');
    expect(reset.attempts()).toBe(2);
  });

  it('retries an idempotent request with a kept body after a reset', async () => {
    const reset = await resetAfterRequest();
    cleanups.push(() => reset.server.close());
    const stable = await upstream('stable');
    const proxy = await proxyFor({
      web: { stable: { endpoints: [stable.url] }, lanes: { gray: { endpoints: [reset.url] } } },
    });
    const res = await send(proxy, { method: 'PUT', body: 'state', lane: 'gray' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ upstream: 'stable', body: 'state', method: 'PUT' });
    // The canary was tried first and reset; the client sees why the lane fell back.
    expect(reset.attempts()).toBe(1);
    expect(res.served).toBe('web=stable;fallback=connect_error');
    expect(stable.requests).toHaveLength(1);
  });

  it('never retries once response bytes reached the client', async () => {
    let attempts = 0;
    const dying = createHttpServer((_req, res) => {
      attempts++;
      res.writeHead(200, { 'content-length': '1000' });
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    dying.listen(0, '127.0.0.1');
    await once(dying, 'listening');
    cleanups.push(() => dying.close());
    const stable = await upstream('stable');
    const proxy = await proxyFor({
      web: {
        stable: { endpoints: [stable.url] },
        lanes: {
          gray: { endpoints: [`http://127.0.0.1:${(dying.address() as AddressInfo).port}`] },
        },
      },
    });
    const res = await request(`${proxy.url('gateway')}/`, { headers: { 'x-lane': 'gray' } });
    expect(res.statusCode).toBe(200);
    await expect(res.body.text()).rejects.toThrow();
    expect(attempts).toBe(1);
    expect(stable.requests).toHaveLength(0);
  });
});
