import http from 'node:http';
import https from 'node:https';
import express from 'express';
import express4 from 'express4';
import { Agent, request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { laneMiddleware } from '../src/inbound/express.js';
import { laneHandler } from '../src/inbound/http.js';
import { install } from '../src/install.js';
import { close, echo, getJson, listen, readBody, type Seen, selfSignedCert } from './helpers.js';

/**
 * A → B → C over real sockets. Inbound is the SDK's express middleware or node:http wrapper; outbound
 * is each client as the app would call it, with the SDK's global hooks installed (no per-call code).
 */

type Client = 'fetch' | 'undici' | 'http.get' | 'https';
const CLIENTS: Client[] = ['fetch', 'undici', 'http.get', 'https'];

let tls: { key: string; cert: string };
let keepAlive: https.Agent;
let uninstall: () => void;
const servers: Array<http.Server | https.Server> = [];

/** Calls `url` with `client` (no lane code at all) and returns the downstream JSON body. */
async function call(client: Client, url: string, id: string): Promise<unknown> {
  const headers = { 'x-request-id': id };
  switch (client) {
    case 'fetch':
      return (await fetch(url, { headers })).json();
    case 'undici':
      // The global dispatcher, as `undici.request(url)` is usually called.
      return (await undiciRequest(url, { headers })).body.json();
    case 'http.get':
      return new Promise((resolve, reject) => {
        http
          .get(url, { headers }, (res) => readBody(res).then((b) => resolve(JSON.parse(b)), reject))
          .on('error', reject);
      });
    case 'https':
      return new Promise((resolve, reject) => {
        const req = https.request(url, { headers, ca: tls.cert, agent: keepAlive }, (res) =>
          readBody(res).then((b) => resolve(JSON.parse(b)), reject),
        );
        req.on('error', reject).end();
      });
  }
}

/** A hop that forwards to `next` with `client`, as an express 5, express 4 or node:http service. */
async function hop(
  kind: 'express5' | 'express4' | 'http',
  client: Client,
  next: string,
  secure = false,
): Promise<string> {
  const forward = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    try {
      const id = String(req.headers['x-request-id'] ?? '');
      // A little asynchrony before the call, as real handlers have.
      await new Promise((r) => setImmediate(r));
      const body = await call(client, next, id);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(body));
    } catch (err) {
      res.statusCode = 502;
      res.end(JSON.stringify({ error: String(err) }));
    }
  };
  let handler: http.RequestListener;
  if (kind === 'http') handler = laneHandler(forward);
  else {
    const app = kind === 'express5' ? express() : express4();
    app.use(laneMiddleware());
    app.get('/', (req, res) => void forward(req, res));
    handler = app;
  }
  const server = secure ? https.createServer(tls, handler) : http.createServer(handler);
  servers.push(server);
  return listen(server, secure ? 'https' : 'http');
}

async function terminal(secure: boolean): Promise<string> {
  const server = secure ? https.createServer(tls, echo) : http.createServer(echo);
  servers.push(server);
  return listen(server, secure ? 'https' : 'http');
}

beforeAll(() => {
  tls = selfSignedCert();
  keepAlive = new https.Agent({ keepAlive: true });
  // Inbound hooks off: the middleware and wrapper are what is tested here.
  uninstall = install({ inbound: false });
});

afterAll(async () => {
  uninstall();
  keepAlive.destroy();
  await Promise.all(servers.map(close));
});

describe('A → B → C', () => {
  it.each(CLIENTS)('the lane arrives at C through %s on both hops', async (client) => {
    const c = await terminal(client === 'https');
    // With https, B is an https server too, so that both hops use the https client.
    const b = await hop('http', client, c, client === 'https');
    const a = await hop('express5', client, b);
    const seen = await getJson<Seen>(a, { 'x-lane': 'gray', 'x-request-id': '1' });
    expect(seen).toEqual({ lane: 'gray', baggage: 'lane=gray', id: '1' });
    const untagged = await getJson<Seen>(a, { 'x-request-id': '2' });
    expect(untagged).toEqual({ lane: null, baggage: null, id: '2' });
    // Baggage-only tag in, both out.
    const fromBaggage = await getJson<Seen>(a, {
      baggage: 'user=7,lane=blue',
      'x-request-id': '3',
    });
    expect(fromBaggage).toEqual({ lane: 'blue', baggage: 'lane=blue', id: '3' });
  });

  it('1000 interleaved requests in 4 lanes through a mixed chain never cross', async () => {
    // express 5 (fetch) → node:http (undici) → express 4 (http.get) → node:http (https) → C (https)
    const c = await terminal(true);
    const d = await hop('http', 'https', c);
    const e4 = await hop('express4', 'http.get', d);
    const b = await hop('http', 'undici', e4);
    const a = await hop('express5', 'fetch', b);
    const lanes = ['stable', 'gray', 'feature-x', 'canary-2'];
    const entry = new Agent({ connections: 64 });
    try {
      const results = await Promise.all(
        Array.from({ length: 1000 }, async (_, i) => {
          const lane = lanes[i % lanes.length]!;
          const headers: Record<string, string> = { 'x-request-id': String(i) };
          if (lane !== 'stable') headers['x-lane'] = lane;
          const res = await undiciRequest(a, { headers, dispatcher: entry });
          const seen = (await res.body.json()) as Seen;
          return { i, lane, seen };
        }),
      );
      const mismatches = results.filter(
        ({ i, lane, seen }) => seen.id !== String(i) || (seen.lane ?? 'stable') !== lane,
      );
      expect(mismatches).toEqual([]);
      expect(results).toHaveLength(1000);
    } finally {
      await entry.close();
    }
  });
});
