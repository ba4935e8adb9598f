import http from 'node:http';
import express from 'express';
import { Agent, type Dispatcher, fetch as undiciFetch, request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configure, LANE_SERVED_HEADER, optionsFromEnv, resetConfig } from '../src/config.js';
import { currentRelay, withLane } from '../src/context.js';
import { laneMiddleware } from '../src/inbound/express.js';
import { instrumentServer, laneHandler } from '../src/inbound/http.js';
import { type OutgoingLike, runWithIncoming } from '../src/inbound/incoming.js';
import { install } from '../src/install.js';
import { resetWarnings } from '../src/log.js';
import { laneInterceptor } from '../src/outbound/undici.js';
import { close, echo, listen, readBody } from './helpers.js';

/**
 * Provenance relay over real sockets. Stand-in sidecars put their hop before the `x-lane-served` of
 * the app behind them, as graylane-proxy does; the apps use the SDK's global hooks and no provenance
 * code of their own, and their responses must carry the hops of the calls they made.
 */

type Client =
  | 'fetch'
  | 'undici.request'
  | 'undici.fetch'
  | 'composed agent'
  | 'http.get'
  | 'http.request';
const CLIENTS: Client[] = [
  'fetch',
  'undici.request',
  'undici.fetch',
  'composed agent',
  'http.get',
  'http.request',
];

const servers: http.Server[] = [];
/** The sidecars' and the tester's own agent: no SDK hook on it. */
let raw: Agent;
/** An app's own agent with the lane interceptor composed onto it. */
let composed: Dispatcher;
let uninstall: () => void;

beforeAll(() => {
  raw = new Agent({ connections: 64 });
  composed = new Agent().compose(laneInterceptor());
  // Inbound hooks off: the middleware, the wrapper and instrumentServer are what is tested here.
  uninstall = install({ inbound: false });
});

afterAll(async () => {
  uninstall();
  await Promise.all(servers.map(close));
  await raw.close();
  await (composed as Agent).close();
});

async function serve(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  servers.push(server);
  return listen(server);
}

function laneOf(req: http.IncomingMessage): string {
  return String(req.headers['x-lane'] ?? 'stable');
}

/**
 * A stand-in for graylane-proxy in front of `app`: forwards the request (with its own agent, so no
 * SDK hook sees it) and answers with its hop before the app's `x-lane-served`. `fallback` marks a
 * tagged request served by stable.
 */
function sidecar(service: string, app: string, fallback = false): Promise<string> {
  return serve(async (req, res) => {
    const headers: Record<string, string> = {};
    for (const name of ['x-lane', 'baggage', 'x-request-id']) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const up = await undiciRequest(`${app}${req.url ?? '/'}`, { headers, dispatcher: raw });
    const body = await up.body.text();
    const lane = laneOf(req);
    const hop =
      fallback && lane !== 'stable' ? `${service}=stable;fallback=absent` : `${service}=${lane}`;
    const downstream = up.headers[LANE_SERVED_HEADER];
    res.setHeader(LANE_SERVED_HEADER, downstream ? `${hop}, ${String(downstream)}` : hop);
    res.setHeader('content-type', 'application/json');
    res.end(body);
  });
}

/** The response of a GET made with `client`, body read. */
async function call(client: Client, url: string): Promise<{ served: string | null; body: string }> {
  const fromHeaders = (value: unknown) => (value === undefined ? null : String(value));
  switch (client) {
    case 'fetch': {
      const res = await fetch(url);
      return { served: res.headers.get(LANE_SERVED_HEADER), body: await res.text() };
    }
    case 'undici.fetch': {
      const res = await undiciFetch(url);
      return { served: res.headers.get(LANE_SERVED_HEADER), body: await res.text() };
    }
    case 'undici.request':
    case 'composed agent': {
      const dispatcher = client === 'composed agent' ? composed : undefined;
      const res = await undiciRequest(url, { dispatcher });
      return { served: fromHeaders(res.headers[LANE_SERVED_HEADER]), body: await res.body.text() };
    }
    case 'http.get':
    case 'http.request':
      return new Promise((resolve, reject) => {
        const onResponse = (res: http.IncomingMessage) =>
          readBody(res).then(
            (body) => resolve({ served: fromHeaders(res.headers[LANE_SERVED_HEADER]), body }),
            reject,
          );
        if (client === 'http.get') http.get(url, onResponse).on('error', reject);
        else http.request(url, { method: 'GET' }, onResponse).on('error', reject).end();
      });
  }
}

/** What the tester at the gateway gets: the `x-lane-served` header and the JSON body. */
async function get(
  url: string,
  lane?: string,
): Promise<{ served: string | null; body: Record<string, unknown> }> {
  const headers: Record<string, string> = lane === undefined ? {} : { 'x-lane': lane };
  const res = await undiciRequest(url, { headers, dispatcher: raw });
  const served = res.headers[LANE_SERVED_HEADER];
  const text = await res.body.text();
  return {
    served: served === undefined ? null : String(served),
    body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
  };
}

/** The leaf services: a sidecar named `service` in front of an echo app. */
async function leaf(service: string, fallback = false): Promise<string> {
  return sidecar(service, await serve(echo), fallback);
}

describe('provenance relay', () => {
  it('A → B → C: the gateway sees every hop in call order, through fetch, undici and http.get', async () => {
    const c = await leaf('c');
    const d = await leaf('d', true);
    // B: a node:http app (res.end, no writeHead) that calls C with fetch.
    const appB = await serve(
      laneHandler(async (_req, res) => {
        const fromC = await call('fetch', c);
        res.end(fromC.body);
      }),
    );
    const b = await sidecar('b', appB);
    // A: an Express app that calls B with fetch, C three times with undici.request, D with http.get.
    const app = express();
    app.use(laneMiddleware());
    app.get('/', async (_req, res) => {
      const seen = [await call('fetch', b)];
      for (let i = 0; i < 3; i++) seen.push(await call('undici.request', c));
      seen.push(await call('http.get', d));
      res.json(seen.map((s) => s.served));
    });
    const a = await sidecar('a', await serve(app));

    const gray = await get(a, 'gray');
    // What A's clients saw, one response each.
    expect(gray.body).toEqual([
      'b=gray, c=gray',
      'c=gray',
      'c=gray',
      'c=gray',
      'd=stable;fallback=absent',
    ]);
    expect(gray.served).toBe('a=gray, b=gray, c=gray, d=stable;fallback=absent');
    const stable = await get(a);
    expect(stable.served).toBe('a=stable, b=stable, c=stable, d=stable');
  });

  it.each(CLIENTS)('%s: each hop of two calls is recorded once, in order', async (client) => {
    const b = await leaf('b');
    const c = await leaf('c');
    const app = await serve(
      laneHandler(async (_req, res) => {
        await call(client, b);
        await call(client, c);
        // One recorded response per call: the fetch wrapper and the dispatcher underneath it do
        // not both record the same response.
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ responses: currentRelay()?.responses }));
      }),
    );
    const { served, body } = await get(app, 'gray');
    expect(served).toBe('b=gray, c=gray');
    expect(body).toEqual({ responses: 2 });
  });

  it('covers a server instrumented with instrumentServer and calls made in withLane', async () => {
    const b = await leaf('b');
    const server = instrumentServer(
      http.createServer(async (_req, res) => {
        await call('fetch', b);
        await withLane('blue', () => call('http.get', b));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      }),
    );
    servers.push(server);
    const url = await listen(server);
    expect((await get(url, 'gray')).served).toBe('b=gray, b=blue');
  });

  it('keeps the header an app sets itself, with setHeader or in writeHead', async () => {
    const b = await leaf('b');
    const viaSetHeader = await serve(
      laneHandler(async (_req, res) => {
        await call('fetch', b);
        res.setHeader('X-Lane-Served', 'mine=1');
        res.end();
      }),
    );
    const viaWriteHead = await serve(
      laneHandler(async (_req, res) => {
        await call('undici.request', b);
        res.writeHead(200, 'OK', ['X-Lane-Served', 'mine=2']).end();
      }),
    );
    const viaExpress = express();
    viaExpress.use(laneMiddleware());
    viaExpress.get('/', async (_req, res) => {
      await call('http.get', b);
      res.set('x-lane-served', 'mine=3').json({});
    });
    expect((await get(viaSetHeader, 'gray')).served).toBe('mine=1');
    expect((await get(viaWriteHead, 'gray')).served).toBe('mine=2');
    expect((await get(await serve(viaExpress), 'gray')).served).toBe('mine=3');
  });

  it('adds no header to a request without outbound calls, or whose upstreams report none', async () => {
    const plain = await serve(echo);
    const quiet = await serve(laneHandler((_req, res) => res.end('{}')));
    const untold = await serve(
      laneHandler(async (_req, res) => {
        await call('fetch', plain);
        await call('http.get', plain);
        res.end('{}');
      }),
    );
    expect((await get(quiet, 'gray')).served).toBeNull();
    expect((await get(untold, 'gray')).served).toBeNull();
    expect((await get(untold)).served).toBeNull();
  });

  it('200 interleaved requests in 2 lanes never mix their hops', async () => {
    const b = await leaf('b');
    const c = await leaf('c');
    const app = express();
    app.use(laneMiddleware());
    app.get('/', async (req, res) => {
      // Uneven delays, so that requests of both lanes overlap at every step.
      const i = Number(req.query.i);
      await new Promise((r) => setTimeout(r, i % 7));
      await call(i % 3 === 0 ? 'fetch' : 'undici.request', b);
      await new Promise((r) => setTimeout(r, i % 5));
      await call(i % 2 === 0 ? 'http.get' : 'composed agent', c);
      res.json({ i });
    });
    const a = await serve(app);
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const lane = i % 2 === 0 ? 'gray' : 'stable';
        const { served, body } = await get(`${a}/?i=${i}`, lane === 'stable' ? undefined : lane);
        return { i, lane, served, body };
      }),
    );
    const wrong = results.filter(
      ({ i, lane, served, body }) => body.i !== i || served !== `b=${lane}, c=${lane}`,
    );
    expect(wrong).toEqual([]);
  });

  it('follows a configured servedHeader', async () => {
    const upstream = await serve((_req, res) => {
      res.setHeader('x-served', 'b=gray');
      res.end();
    });
    const app = await serve(
      laneHandler(async (_req, res) => {
        await call('fetch', upstream);
        res.end();
      }),
    );
    configure({ servedHeader: 'X-Served' });
    try {
      const res = await undiciRequest(app, { headers: { 'x-lane': 'gray' }, dispatcher: raw });
      await res.body.text();
      expect(res.headers['x-served']).toBe('b=gray');
      expect(res.headers[LANE_SERVED_HEADER]).toBeUndefined();
      expect(optionsFromEnv({ GRAYLANE_SERVED_HEADER: 'x-served' })).toEqual({
        servedHeader: 'x-served',
      });
      expect(() => configure({ servedHeader: 'x-lane' })).toThrow(
        expect.objectContaining({ code: 'GRAYLANE_ERR_CONFIG' }),
      );
    } finally {
      resetConfig();
    }
  });
});

describe('provenance relay internals', () => {
  /** A response stand-in with Node's header methods, recording what was written. */
  function fakeResponse(setHeader?: () => never) {
    const headers = new Map<string, string>();
    const res = {
      headersSent: false,
      written: undefined as Record<string, string> | undefined,
      once: () => res,
      getHeader: (name: string) => headers.get(name),
      setHeader:
        setHeader ??
        ((name: string, value: string) => {
          headers.set(name.toLowerCase(), value);
        }),
      writeHead(this: { headersSent: boolean; written?: Record<string, string> }) {
        this.headersSent = true;
        this.written = Object.fromEntries(headers);
        return this;
      },
    };
    return res;
  }

  it('records through undici handlers of the older API too (an undici 6 dispatcher)', () => {
    const res = fakeResponse();
    const dispatch = laneInterceptor()((_opts, handler) => {
      // What an undici 6 dispatcher does with a handler: raw headers, onHeaders.
      const legacy = handler as Dispatcher.DispatchHandler;
      legacy.onConnect?.(() => {});
      legacy.onHeaders?.(
        200,
        [Buffer.from('X-Lane-Served'), Buffer.from('b=gray, c=gray')],
        () => {},
        'OK',
      );
      legacy.onComplete?.([]);
      return true;
    });
    const completed: string[] = [];
    const handler = {
      onConnect: () => completed.push('connect'),
      onHeaders: () => completed.push('headers') > 0,
      onData: () => true,
      onComplete: () => completed.push('complete'),
      onError: (err: Error) => {
        throw err;
      },
    };
    runWithIncoming(
      { headers: { 'x-lane': 'gray' } },
      () => {
        dispatch({ origin: 'http://127.0.0.1', path: '/', method: 'GET' }, handler);
        res.writeHead();
      },
      res as unknown as OutgoingLike,
    );
    expect(completed).toEqual(['connect', 'headers', 'complete']);
    expect(res.written).toEqual({ [LANE_SERVED_HEADER]: 'b=gray, c=gray' });
  });

  it('never throws into the app when the header cannot be set', async () => {
    const warnings: Array<Record<string, unknown>> = [];
    configure({ logger: { warn: (fields) => warnings.push(fields) } });
    const res = fakeResponse(() => {
      throw new Error('boom');
    });
    try {
      const b = await leaf('b');
      await runWithIncoming(
        { headers: {} },
        async () => {
          await call('fetch', b);
          res.writeHead();
        },
        res as unknown as OutgoingLike,
      );
      expect(res.headersSent).toBe(true);
      expect(warnings).toEqual([expect.objectContaining({ where: 'provenance' })]);
    } finally {
      resetConfig();
      resetWarnings();
    }
  });
});
