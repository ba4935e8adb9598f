import { once } from 'node:events';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GraylaneProxy, parseCli } from '../src/index.js';
import {
  type BinRun,
  metricValue,
  runBin,
  send,
  startProxy,
  startUpstream,
  table,
  type Upstream,
  upstreamTimeouts,
} from './helpers.js';

type Echo = { upstream: string; headers: Record<string, string> };

/** A port that was free a moment ago and has nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function startInbound(target: string, extra: Parameters<typeof startProxy>[0] = {}) {
  return startProxy({
    gateway: undefined,
    outbound: undefined,
    inbound: { host: '127.0.0.1', port: 0 },
    inboundApp: { target, service: 'backend', version: 'v2', lane: 'gray' },
    ...extra,
  });
}

describe('inbound (sidecar) listener', () => {
  let app: Upstream;
  let proxy: GraylaneProxy;

  beforeAll(async () => {
    app = await startUpstream('backend-app', (req, res) => {
      res.writeHead(200, {
        'content-type': 'application/json',
        // An app with the SDK reports the hops it called, after its own.
        ...(req.url === '/chain' ? { 'x-lane-served': 'db=gray' } : {}),
      });
      res.end(JSON.stringify({ upstream: 'backend-app', headers: req.headers }));
    });
    proxy = await startInbound(app.url);
  });

  afterAll(async () => {
    await proxy.close();
    await app.close();
  });

  const get = async (path: string, headers: Record<string, string> = {}) => {
    const sent = await send(`${proxy.url('inbound')}${path}`, { headers });
    return { res: sent, body: sent.json<Echo>() };
  };

  it('forwards every request to the app, with no route table', async () => {
    const { res, body } = await get('/orders?id=1');
    expect(res.status).toBe(200);
    expect(body.upstream).toBe('backend-app');
    expect(app.requests.at(-1)?.url).toBe('/orders?id=1');
    expect(body.headers.via).toMatch(/^1\.1 graylane-/);
    expect(body.headers['x-forwarded-for']).toBe('127.0.0.1');
  });

  it('gives a baggage-only request the lane header, keeping the other members', async () => {
    const { body } = await get('/', { baggage: 'userId=42,lane=gray' });
    expect(body.headers['x-lane']).toBe('gray');
    expect(body.headers.baggage).toBe('userId=42,lane=gray');
  });

  it('lets the header win and writes the same lane into baggage', async () => {
    const { body } = await get('/', { 'x-lane': 'gray', baggage: 'lane=blue' });
    expect(body.headers['x-lane']).toBe('gray');
    expect(body.headers.baggage).toBe('lane=gray');
  });

  it('drops an invalid tag from header and baggage, counts it, and serves as stable', async () => {
    const counted = () =>
      metricValue(proxy, 'graylane_invalid_lane_total', { listener: 'inbound' });
    const before = await counted();
    const header = await get('/', { 'x-lane': 'Gray,blue' });
    expect(header.res.status).toBe(200);
    expect(header.body.headers['x-lane']).toBeUndefined();
    // The hop names the lane this instance serves, whatever the request's lane.
    expect(header.res.headers['x-lane-served']).toBe('backend=gray');

    const baggage = await get('/', { baggage: 'userId=42,lane=NOT_A_LANE' });
    expect(baggage.body.headers['x-lane']).toBeUndefined();
    expect(baggage.body.headers.baggage).toBe('userId=42');
    expect((await counted()) - before).toBe(2);
  });

  it('counts requests by service, lane, version and code, and times them', async () => {
    const labels = { listener: 'inbound', service: 'backend', lane: 'gray', version: 'v2' };
    const before = await metricValue(proxy, 'graylane_requests_total', { ...labels, code: '200' });
    const timed = () => metricValue(proxy, 'graylane_request_duration_seconds_count', labels);
    const timedBefore = await timed();
    await get('/', { 'x-lane': 'gray' });
    await get('/', { baggage: 'lane=gray' });
    const after = await metricValue(proxy, 'graylane_requests_total', { ...labels, code: '200' });
    expect(after - before).toBe(2);
    expect((await timed()) - timedBefore).toBe(2);
  });

  it('puts its hop first in x-lane-served, before the hops the app reported', async () => {
    expect((await get('/chain', { 'x-lane': 'gray' })).res.headers['x-lane-served']).toBe(
      'backend=gray, db=gray',
    );
    expect((await get('/')).res.headers['x-lane-served']).toBe('backend=gray');
  });

  it('answers 502 with a code when the app cannot be reached', async () => {
    const down = await startInbound(`http://127.0.0.1:${await closedPort()}`);
    try {
      const res = await send(`${down.url('inbound')}/`, { headers: { 'x-lane': 'gray' } });
      expect(res.status).toBe(502);
      expect(res.headers['x-graylane-error']).toBe('GRAYLANE_ERR_UPSTREAM');
      expect(res.headers['x-lane-served']).toBe('backend=gray');
      const labels = { listener: 'inbound', service: 'backend', lane: 'gray', code: '502' };
      expect(await metricValue(down, 'graylane_requests_total', labels)).toBe(1);
    } finally {
      await down.close();
    }
  });

  it('answers 504 when the app sends no response head within headersTimeoutMs (+200 ms)', async () => {
    // An app that accepts the connection and never answers.
    const hung = createServer((socket) => socket.on('error', () => {}));
    hung.listen(0, '127.0.0.1');
    await once(hung, 'listening');
    const port = (hung.address() as { port: number }).port;
    const slow = await startInbound(`http://127.0.0.1:${port}`, {
      runtime: {
        upstream: upstreamTimeouts({ headersTimeoutMs: 300 }),
      },
    });
    try {
      const started = Date.now();
      const res = await send(`${slow.url('inbound')}/`, { headers: { 'x-lane': 'gray' } });
      const elapsed = Date.now() - started;
      expect(res.status).toBe(504);
      expect(res.headers['x-graylane-error']).toBe('GRAYLANE_ERR_UPSTREAM_TIMEOUT');
      expect(elapsed).toBeGreaterThanOrEqual(300);
      expect(elapsed).toBeLessThan(300 + 200);
    } finally {
      await slow.close();
      hung.close();
    }
  });

  it("uses the route table's lane header and baggage key when one is loaded", async () => {
    const tabled = await startInbound(app.url, {
      initialTable: table({
        revision: 1,
        laneHeader: 'x-swimlane',
        baggageKey: 'swimlane',
        services: { backend: { stable: { endpoints: [app.url] } } },
      }),
    });
    try {
      const res = await send(`${tabled.url('inbound')}/`, {
        headers: { baggage: 'swimlane=gray' },
      });
      const body = res.json<Echo>();
      expect(body.headers['x-swimlane']).toBe('gray');
      expect(body.headers['x-lane']).toBeUndefined();
      expect(res.headers['x-lane-served']).toBe('backend=gray');
    } finally {
      await tabled.close();
    }
  });

  it('is ready without a route table', async () => {
    const res = await send(`${proxy.url('admin')}/readyz`);
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ status: 'ready' });
  });
});

describe('inbound configuration', () => {
  const inbound = ['--inbound', ':0', '--inbound-target', 'http://127.0.0.1:3000'];

  it('needs no route table with --inbound alone', () => {
    const cli = parseCli([...inbound, '--service', 'backend'], {});
    expect(cli.help).toBe(false);
    if (!cli.help) expect(cli.config.routeTable).toBeUndefined();
  });

  it('reads the inbound settings from the environment', () => {
    const cli = parseCli([], {
      GRAYLANE_INBOUND: '127.0.0.1:0',
      GRAYLANE_INBOUND_TARGET: 'http://127.0.0.1:3000',
      GRAYLANE_SERVICE: 'backend',
      GRAYLANE_SERVICE_VERSION: 'v2',
    });
    expect(!cli.help && cli.config).toMatchObject({ service: 'backend', version: 'v2' });
  });

  it('refuses what it cannot serve, with the reason', () => {
    const code = (args: string[]) => {
      try {
        parseCli(args, {});
        return undefined;
      } catch (error) {
        return [(error as { code: string }).code, (error as Error).message];
      }
    };
    expect(code([])).toEqual(['GRAYLANE_ERR_CONFIG', expect.stringMatching(/nothing to serve/)]);
    expect(code([...inbound, '--service', 'backend', '--gateway', ':0'])?.[1]).toBe(
      '--route-table is required',
    );
    expect(code(inbound)?.[1]).toMatch(/--inbound needs --inbound-target and --service/);
    expect(code(['--inbound', ':0', '--inbound-target', 'ftp://x', '--service', 'b'])?.[1]).toMatch(
      /inboundTarget/,
    );
  });
});

describe('graylane-proxy bin with --inbound only', () => {
  let app: Upstream;
  let run: BinRun | undefined;

  beforeAll(async () => {
    app = await startUpstream('app');
  });

  afterAll(async () => {
    run?.child.kill('SIGKILL');
    await app.close();
  });

  it('serves the app with no route table', async () => {
    run = await runBin([
      '--inbound',
      '127.0.0.1:0',
      '--inbound-target',
      app.url,
      '--service',
      'web',
      '--service-lane',
      'gray',
      '--admin',
      '127.0.0.1:0',
    ]);
    const { inbound, admin } = run.listeners;
    const res = await send(`${inbound}/hello`, { headers: { baggage: 'lane=gray' } });
    expect(res.status).toBe(200);
    expect(res.json<Echo>().headers['x-lane']).toBe('gray');
    expect(res.headers['x-lane-served']).toBe('web=gray');
    expect((await send(`${admin}/readyz`)).status).toBe(200);
    const metrics = await send(`${admin}/metrics`);
    expect(metrics.text).toContain(
      'graylane_requests_total{listener="inbound",service="web",lane="gray",version="",code="200"} 1',
    );
    run.child.kill('SIGTERM');
    expect((await run.exit).code).toBe(0);
  });
});
