import type { IncomingMessage } from 'node:http';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { GraylaneProxy } from '../../src/index.js';
import { createLogger } from '../../src/logger.js';
import { metricValue, serviceTable, startProxy, startUpstream, type Upstream } from '../helpers.js';
import { collect, rawConnect } from '../raw-socket.js';

const IDLE_MS = 300;
const TOTAL_MS = 1_200;

/**
 * Issue 15 item 1: a request body that stops arriving (or arrives too slowly) is given up on, on
 * every listener: 408 before any upstream attempt, 504 after one began; a client that leaves
 * mid-body is counted 499, not logged as a failure.
 */
describe('request bodies that stall', () => {
  let proxy: GraylaneProxy;
  let upstream: Upstream;
  const logs: Array<{ level: number; msg: string }> = [];

  beforeAll(async () => {
    upstream = await startUpstream('backend', (req: IncomingMessage, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'x-upstream': 'backend' });
        res.end('ok');
      });
    });
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) {
          logs.push(JSON.parse(line) as { level: number; msg: string });
        }
        done();
      },
    });
    proxy = await startProxy({
      initialTable: serviceTable('backend', upstream.url),
      inbound: { host: '127.0.0.1', port: 0 },
      inboundApp: { target: upstream.url, service: 'backend' },
      server: {
        headersTimeoutMs: 5_000,
        keepAliveTimeoutMs: 5_000,
        requestBodyIdleTimeoutMs: IDLE_MS,
        requestBodyTimeoutMs: TOTAL_MS,
      },
      logger: createLogger('info', sink),
    });
  });

  afterAll(async () => {
    await proxy.close();
    await upstream.close();
  });

  /** Opens a request with `Content-Length: 1000`, sends `sent` bytes of body, then waits. */
  async function stall(port: number, method: string, sent: number, host = 'backend') {
    const socket = await rawConnect(port);
    const reply = collect(socket, 5_000);
    socket.write(`${method} /x HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 1000\r\n\r\n`);
    socket.write('a'.repeat(sent));
    return reply;
  }

  it('408 for a buffered (PUT) body that stops arriving, before any upstream attempt', async () => {
    const before = upstream.requests.length;
    const reply = await stall(proxy.address('gateway')!.port, 'PUT', 10);
    expect(reply.status, reply.text).toBe(408);
    expect(reply.headers['x-graylane-error']).toBe('GRAYLANE_ERR_BODY_TIMEOUT');
    expect(reply.closed).toBe(true);
    expect(reply.elapsedMs).toBeLessThan(TOTAL_MS);
    expect(upstream.requests.length).toBe(before);
    expect(
      await metricValue(proxy, 'graylane_refused_requests_total', { reason: 'body_idle' }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      await metricValue(proxy, 'graylane_requests_total', { listener: 'gateway', code: '408' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('408 for a body that trickles in, never idle but never done', async () => {
    const socket = await rawConnect(proxy.address('gateway')!.port);
    const reply = collect(socket, 5_000);
    socket.write('PUT /x HTTP/1.1\r\nHost: backend\r\nContent-Length: 1000\r\n\r\n');
    const drip = setInterval(() => socket.writable && socket.write('a'), IDLE_MS / 3);
    const answer = await reply;
    clearInterval(drip);
    expect(answer.status, answer.text).toBe(408);
    expect(answer.elapsedMs).toBeGreaterThanOrEqual(TOTAL_MS - 100);
    expect(
      await metricValue(proxy, 'graylane_refused_requests_total', { reason: 'body_timeout' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('504 for a streamed (POST) body that stops once the upstream attempt began', async () => {
    const reply = await stall(proxy.address('gateway')!.port, 'POST', 10);
    expect(reply.status, reply.text).toBe(504);
    expect(reply.headers['x-graylane-error']).toBe('GRAYLANE_ERR_BODY_TIMEOUT');
    expect(reply.closed).toBe(true);
  });

  it('the outbound and inbound listeners give up on stalled bodies too', async () => {
    const outbound = await stall(proxy.address('outbound')!.port, 'PUT', 10);
    expect(outbound.status, outbound.text).toBe(408);
    const inbound = await stall(proxy.address('inbound')!.port, 'PUT', 10);
    expect([408, 504], inbound.text).toContain(inbound.status);
    expect(inbound.headers['x-graylane-error']).toBe('GRAYLANE_ERR_BODY_TIMEOUT');
  });

  it('frees every stalled request: 50 at once are all answered and none stays watched', async () => {
    const replies = await Promise.all(
      Array.from({ length: 50 }, () => stall(proxy.address('gateway')!.port, 'PUT', 10)),
    );
    expect(replies.map((r) => r.status)).toEqual(replies.map(() => 408));
    expect(proxy.runtime.bodies.size).toBe(0);
  });

  it('a client that leaves mid-body is counted 499 and logged as no failure', async () => {
    const before = await metricValue(proxy, 'graylane_requests_total', { code: '499' });
    for (const method of ['PUT', 'POST']) {
      const socket = await rawConnect(proxy.address('gateway')!.port);
      socket.write(`${method} /x HTTP/1.1\r\nHost: backend\r\nContent-Length: 1000\r\n\r\n`);
      socket.write('a'.repeat(10));
      await sleep(50);
      socket.destroy();
    }
    await vi.waitFor(async () =>
      expect(await metricValue(proxy, 'graylane_requests_total', { code: '499' })).toBe(before + 2),
    );
    expect(logs.filter((line) => line.level >= 50)).toEqual([]);
  });

  it('logs a stalled body at warn once per reason, not once per request', () => {
    const warnings = logs.filter((line) => line.msg.startsWith('request body timed out'));
    expect(warnings.length).toBe(2);
    expect(warnings.every((line) => line.level === 40)).toBe(true);
  });
});
