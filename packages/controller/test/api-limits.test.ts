import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  API_LIMITS,
  type ApiLimits,
  createApp,
  registerRouteTableRoutes,
} from '../src/api/server.js';
import { RouteTablePublisher } from '../src/index.js';
import { openWatch, routeTable, sleep, waitFor } from './helpers.js';

/**
 * A client that is slow or stalls while sending its request (a slowloris, a half-dead proxy) must
 * not hold the controller's API: it is answered 408 and disconnected, while watch streams, which
 * are slow on the response side by design, live on.
 */
describe('the API against slow clients', () => {
  let app: FastifyInstance | undefined;

  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function serve(limits: ApiLimits) {
    app = createApp(pino({ level: 'silent' }), limits);
    const publisher = new RouteTablePublisher({ heartbeatMs: 60_000 });
    publisher.publish(routeTable(1));
    registerRouteTableRoutes(app, publisher, () => {});
    app.get('/ping', async () => ({ ok: true }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    return { port, publisher, url: `http://127.0.0.1:${port}` };
  }

  /** A raw connection that records what the server answered and when it closed. */
  async function rawClient(port: number) {
    const socket: Socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    let answer = '';
    let closedAt: number | undefined;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      closedAt = Date.now();
    });
    return { socket, answer: () => answer, closedAt: () => closedAt };
  }

  const small: ApiLimits = { ...API_LIMITS, headersTimeoutMs: 400, requestTimeoutMs: 800 };

  it('disconnects a client that never finishes its request head, and serves others meanwhile', async () => {
    const { port, url } = await serve(small);
    const stalled = await rawClient(port);
    const start = Date.now();
    stalled.socket.write('GET /ping HTTP/1.1\r\nHost: controller\r\nX-Slow: ');
    expect((await fetch(`${url}/ping`)).status).toBe(200);
    await waitFor(
      () => stalled.closedAt() !== undefined,
      'the stalled client disconnected',
      10_000,
    );
    expect(stalled.answer()).toMatch(/^HTTP\/1\.1 408 /);
    expect(stalled.closedAt()! - start).toBeGreaterThanOrEqual(small.headersTimeoutMs - 50);
  });

  it('answers 408 to a request body that trickles in slower than the request deadline', async () => {
    const { port } = await serve(small);
    const slow = await rawClient(port);
    const start = Date.now();
    slow.socket.write(
      'POST /v1/routetable/acks HTTP/1.1\r\nHost: controller\r\n' +
        'Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{',
    );
    // A byte every 100 ms keeps the socket busy, so no idle timeout can be what ends it.
    const trickle = setInterval(() => slow.socket.write(' '), 100);
    try {
      await waitFor(() => slow.closedAt() !== undefined, 'the slow client disconnected', 10_000);
    } finally {
      clearInterval(trickle);
    }
    expect(slow.answer()).toMatch(/^HTTP\/1\.1 408 /);
    expect(slow.closedAt()! - start).toBeGreaterThanOrEqual(small.requestTimeoutMs - 50);
  });

  it('keeps a route-table watch open past every request deadline', async () => {
    const { publisher, url } = await serve(small);
    const watch = await openWatch(`${url}/v1/routetable`);
    await waitFor(() => watch.revisions().length === 1, 'the current table');
    await sleep(small.requestTimeoutMs * 2);
    publisher.publish(routeTable(2, 'http://127.0.0.1:9002'));
    await waitFor(() => watch.revisions().length === 2, 'the next table on the same stream');
    expect(watch.revisions()).toEqual([1, 2]);
    watch.close();
  });

  it('applies the default limits to the server it builds', async () => {
    await serve(API_LIMITS);
    expect(app!.server.headersTimeout).toBe(API_LIMITS.headersTimeoutMs);
    expect(app!.server.requestTimeout).toBe(API_LIMITS.requestTimeoutMs);
    expect(app!.server.keepAliveTimeout).toBe(API_LIMITS.keepAliveTimeoutMs);
  });
});
