import http from 'node:http';
import { Agent, request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configure, resetConfig } from '../src/config.js';
import { withLane } from '../src/context.js';
import { resetWarnings } from '../src/log.js';
import { wrapFetch } from '../src/outbound/fetch.js';
import { getFrom, wrapRequest } from '../src/outbound/http.js';
import { laneInterceptor } from '../src/outbound/undici.js';
import { close, echo, listen, readBody, type Seen } from './helpers.js';

/** The explicit (non-global) outbound APIs: nothing is patched in this file. */

let server: http.Server;
let url: string;
const laneFetch = wrapFetch(globalThis.fetch);
const request = wrapRequest(http.request);
const get = getFrom(request);

beforeAll(async () => {
  server = http.createServer(echo);
  url = await listen(server);
});
afterAll(() => close(server));

function httpGet(options: http.RequestOptions = {}): Promise<Seen> {
  return new Promise((resolve, reject) => {
    get(url, options, (res) => readBody(res).then((b) => resolve(JSON.parse(b)), reject)).on(
      'error',
      reject,
    );
  });
}

describe('fetch', () => {
  it('tags from the context, merges baggage, never mutates the caller headers', async () => {
    const headers = { baggage: 'user=7' };
    const seen = await withLane('gray', async () => (await laneFetch(url, { headers })).json());
    expect(seen).toMatchObject({ lane: 'gray', baggage: 'user=7,lane=gray' });
    expect(headers).toEqual({ baggage: 'user=7' });
  });

  it('lets a header set on the call win, also on a Request object', async () => {
    const explicit = await withLane('gray', async () =>
      (await laneFetch(url, { headers: { 'X-Lane': 'blue' } })).json(),
    );
    expect(explicit).toMatchObject({ lane: 'blue', baggage: 'lane=blue' });
    const req = new Request(url, { headers: { baggage: 'lane=green' } });
    const fromRequest = await withLane('gray', async () => (await laneFetch(req)).json());
    expect(fromRequest).toMatchObject({ lane: 'green', baggage: 'lane=green' });
    const stableWins = await withLane('gray', async () =>
      (await laneFetch(url, { headers: { 'x-lane': 'stable' } })).json(),
    );
    expect(stableWins).toMatchObject({ lane: null, baggage: null });
  });

  it('passes untagged calls through untouched', async () => {
    expect(await (await laneFetch(url)).json()).toMatchObject({ lane: null, baggage: null });
  });
});

describe('undici interceptor', () => {
  it('composes with other interceptors and tags every header shape', async () => {
    const agent = new Agent().compose(laneInterceptor());
    try {
      const call = async (headers?: Record<string, string> | string[]) =>
        (await undiciRequest(url, { dispatcher: agent, headers })).body.json() as Promise<Seen>;
      await withLane('gray', async () => {
        expect(await call()).toMatchObject({ lane: 'gray', baggage: 'lane=gray' });
        expect(await call({ baggage: 'a=1' })).toMatchObject({
          lane: 'gray',
          baggage: 'a=1,lane=gray',
        });
        expect(await call(['baggage', 'b=2', 'x-request-id', '9'])).toEqual({
          lane: 'gray',
          baggage: 'b=2,lane=gray',
          id: '9',
        });
        expect(await call({ 'x-lane': 'blue' })).toMatchObject({
          lane: 'blue',
          baggage: 'lane=blue',
        });
      });
      expect(await call()).toMatchObject({ lane: null });
    } finally {
      await agent.close();
    }
  });
});

describe('node:http', () => {
  it('tags request and get, with and without an agent', async () => {
    const agent = new http.Agent({ keepAlive: true });
    try {
      await withLane('gray', async () => {
        expect(await httpGet()).toMatchObject({ lane: 'gray', baggage: 'lane=gray' });
        expect(await httpGet({ agent })).toMatchObject({ lane: 'gray' });
        expect(await httpGet({ agent: false, headers: { Baggage: 'a=1' } })).toMatchObject({
          lane: 'gray',
          baggage: 'a=1,lane=gray',
        });
        expect(await httpGet({ headers: { 'X-Lane': 'blue' } })).toMatchObject({ lane: 'blue' });
        const viaRequest = await new Promise<Seen>((resolve, reject) => {
          const req = request(new URL(url), { method: 'POST' }, (res) =>
            readBody(res).then((b) => resolve(JSON.parse(b)), reject),
          );
          req.on('error', reject);
          req.end('body');
        });
        expect(viaRequest).toMatchObject({ lane: 'gray' });
      });
      expect(await httpGet({ agent })).toMatchObject({ lane: null });
    } finally {
      agent.destroy();
    }
  });
});

describe('never throws into the app', () => {
  it('logs an internal error once and sends the call untagged', async () => {
    const warnings: Array<Record<string, unknown>> = [];
    configure({ logger: { warn: (fields) => warnings.push(fields) } });
    // Raw array headers are rendered when the request is built: the SDK cannot add its own.
    const rawHeaders = () =>
      new Promise<Seen>((resolve, reject) => {
        const req = request(url, { headers: ['host', '127.0.0.1', 'x-request-id', '5'] }, (res) =>
          readBody(res).then((b) => resolve(JSON.parse(b)), reject),
        );
        req.on('error', reject).end();
      });
    try {
      const seen = await withLane('gray', async () => [await rawHeaders(), await rawHeaders()]);
      expect(seen).toEqual([
        { lane: null, baggage: null, id: '5' },
        { lane: null, baggage: null, id: '5' },
      ]);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ where: 'outbound:http' });
    } finally {
      resetConfig();
      resetWarnings();
    }
  });
});
