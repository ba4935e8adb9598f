import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import express from 'express';
import express4 from 'express4';
import Koa from 'koa';
import { afterAll, describe, expect, it } from 'vitest';
import { getLane } from '../src/context.js';
import { laneMiddleware } from '../src/inbound/express.js';
import { instrumentServer, laneHandler } from '../src/inbound/http.js';
import { runWithIncoming } from '../src/inbound/incoming.js';
import { sdkRegistry } from '../src/metrics.js';
import { close, getJson, listen } from './helpers.js';

const servers: http.Server[] = [];
afterAll(async () => {
  await Promise.all(servers.map(close));
});

async function serve(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  servers.push(server);
  return listen(server);
}

/** Sends a POST whose body arrives in a later TCP write, so body events come from the socket. */
function postLate(url: string, lane: string, body: string): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1');
    let response = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      response += d;
    });
    socket.on('end', () => resolve(response.slice(response.indexOf('\r\n\r\n') + 4)));
    socket.on('error', reject);
    socket.write(
      `POST / HTTP/1.1\r\nhost: x\r\nx-lane: ${lane}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n`,
    );
    setTimeout(() => socket.write(body), 30);
  });
}

async function invalidCount(): Promise<number> {
  const metric = await sdkRegistry.getSingleMetric('graylane_sdk_invalid_lane_total')?.get();
  return metric?.values.find((v) => v.labels.source === 'inbound')?.value ?? 0;
}

describe('inbound', () => {
  it.each([
    ['express 5', express],
    ['express 4', express4],
  ] as const)(
    '%s middleware: handlers and body-parser callbacks run in the lane',
    async (_, make) => {
      const app = make();
      app.use(laneMiddleware());
      app.use(make.json());
      app.post('/', (req, res) => {
        res.json({ lane: getLane(), body: req.body });
      });
      app.get('/', async (_req, res) => {
        await sleep(1);
        res.json({ lane: getLane() });
      });
      const url = await serve(app);
      expect(await getJson(url, { 'x-lane': 'gray' })).toEqual({ lane: 'gray' });
      expect(await getJson(url)).toEqual({ lane: 'stable' });
      const posted = JSON.parse(await postLate(url, 'blue', '{"a":1}'));
      expect(posted).toEqual({ lane: 'blue', body: { a: 1 } });
    },
  );

  it('node:http wrapper and instrumentServer', async () => {
    const wrapped = await serve(
      laneHandler((_req, res) => res.end(JSON.stringify({ lane: getLane() }))),
    );
    expect(await getJson(wrapped, { baggage: 'lane=blue' })).toEqual({ lane: 'blue' });
    const server = instrumentServer(
      http.createServer((req, res) => {
        // Body events come from the socket's context; the SDK binds them to the request's.
        req.on('data', () => undefined);
        req.on('end', () => res.end(JSON.stringify({ lane: getLane() })));
      }),
    );
    servers.push(server);
    const url = await listen(server);
    expect(await postLate(url, 'gray', 'x')).toBe(JSON.stringify({ lane: 'gray' }));
  });

  it('drops and counts a malformed tag; the request runs in the stable lane', async () => {
    const url = await serve(
      laneHandler((_req, res) => res.end(JSON.stringify({ lane: getLane() }))),
    );
    const before = await invalidCount();
    expect(await getJson(url, { 'x-lane': 'Gray!' })).toEqual({ lane: 'stable' });
    expect(await getJson(url, { 'x-lane': 'a,b', baggage: 'lane=blue' })).toEqual({ lane: 'blue' });
    expect(await invalidCount()).toBe(before + 2);
  });

  it('Koa: runWithIncoming from the first middleware', async () => {
    const app = new Koa();
    app.use((ctx, next) => runWithIncoming(ctx.req, next, ctx.res));
    app.use(async (ctx) => {
      await sleep(1);
      ctx.body = { lane: getLane() };
    });
    const url = await serve(app.callback());
    expect(await getJson(url, { 'x-lane': 'feature-x' })).toEqual({ lane: 'feature-x' });
    expect(await getJson(url)).toEqual({ lane: 'stable' });
  });
});
