import { once } from 'node:events';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { ProxyAgent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selfSignedCert } from '../../../test/support/tls.js';
import type { GraylaneProxy } from '../src/index.js';
import { metricValue, send, startProxy, startUpstream, table, type Upstream } from './helpers.js';

type Echo = { upstream: string; url: string; headers: Record<string, string> };

describe('outbound (sidecar) listener', () => {
  let proxy: GraylaneProxy;
  let external: Upstream;
  let secure: HttpsServer;
  let securePort: number;
  let cert: string;
  const ups: Record<string, Upstream> = {};

  beforeAll(async () => {
    ups.v1 = await startUpstream('backend-v1');
    ups.v2 = await startUpstream('backend-v2');
    external = await startUpstream('external');
    const tls = selfSignedCert();
    cert = tls.cert;
    secure = createHttpsServer(tls, (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ upstream: 'secure', headers: req.headers }));
    });
    secure.listen(0, '127.0.0.1');
    await once(secure, 'listening');
    securePort = (secure.address() as AddressInfo).port;
    proxy = await startProxy({
      initialTable: table({
        revision: 1,
        services: {
          backend: {
            stable: { version: 'v1', endpoints: [ups.v1!.url] },
            lanes: { gray: { version: 'v2', endpoints: [ups.v2!.url] } },
          },
        },
      }),
    });
  });

  afterAll(async () => {
    await proxy.close();
    await Promise.all([...Object.values(ups), external].map((u) => u.close()));
    secure.closeAllConnections();
    secure.close();
  });

  it('routes Host-addressed calls by the first DNS label of the host', async () => {
    for (const host of ['backend', 'backend:8080', 'backend.shop.svc.cluster.local']) {
      const sent = await send(`${proxy.url('outbound')}/x`, {
        headers: { host, 'x-lane': 'gray' },
      });
      expect(sent.json<Echo>().upstream).toBe('backend-v2');
      expect(sent.headers['x-lane-served']).toBe('backend=gray');
    }
  });

  it("routes absolute-form requests, as an app's HTTP_PROXY sends them", async () => {
    const agent = new ProxyAgent({ uri: proxy.url('outbound'), proxyTunnel: false });
    try {
      const res = await request('http://backend:8080/orders?id=1', {
        dispatcher: agent,
        headers: { 'x-lane': 'gray' },
      });
      const body = (await res.body.json()) as Echo;
      expect(body.upstream).toBe('backend-v2');
      expect(body.url).toBe('/orders?id=1');
    } finally {
      await agent.close();
    }
  });

  it("routes by lane inside a CONNECT tunnel to a service (undici's default ProxyAgent)", async () => {
    const agent = new ProxyAgent({ uri: proxy.url('outbound') });
    try {
      for (const [lane, expected] of [
        ['gray', 'backend-v2'],
        [undefined, 'backend-v1'],
      ] as const) {
        const res = await request('http://backend/tunnelled', {
          dispatcher: agent,
          headers: lane ? { 'x-lane': lane } : {},
        });
        expect(((await res.body.json()) as Echo).upstream).toBe(expected);
      }
    } finally {
      await agent.close();
    }
  });

  it('passes other hosts through with the lane header and baggage entry removed', async () => {
    const port = new URL(external.url).port;
    const sent = await send(`${proxy.url('outbound')}/hello`, {
      headers: { host: `localhost:${port}`, 'x-lane': 'gray', baggage: 'lane=gray,tenant=acme' },
    });
    const body = sent.json<Echo>();
    expect(body.upstream).toBe('external');
    expect(body.headers['x-lane']).toBeUndefined();
    expect(body.headers.baggage).toBe('tenant=acme');
    expect(
      await metricValue(proxy, 'graylane_passthrough_requests_total', {
        kind: 'http',
        outcome: 'passed',
      }),
    ).toBeGreaterThan(0);
  });

  it('tunnels CONNECT to a host outside the mesh, so HTTPS calls keep working', async () => {
    const agent = new ProxyAgent({ uri: proxy.url('outbound'), requestTls: { ca: cert } });
    try {
      const res = await request(`https://127.0.0.1:${securePort}/`, {
        dispatcher: agent,
        headers: { 'x-lane': 'gray' },
      });
      expect(res.statusCode).toBe(200);
      expect(((await res.body.json()) as Echo).upstream).toBe('secure');
    } finally {
      await agent.close();
    }
  });

  it('refuses unknown hosts, plain and CONNECT, when configured to', async () => {
    const strict = await startProxy({
      initialTable: proxy.tables.current!.table,
      runtime: { unknownHosts: 'refuse' },
    });
    const agent = new ProxyAgent({ uri: strict.url('outbound'), requestTls: { ca: cert } });
    try {
      const port = new URL(external.url).port;
      const sent = await send(`${strict.url('outbound')}/`, {
        headers: { host: `localhost:${port}` },
      });
      expect(sent.status).toBe(502);
      expect(sent.headers['x-graylane-error']).toBe('GRAYLANE_ERR_UNKNOWN_HOST');
      expect(external.requests.some((r) => r.url === '/' && r.headers.via)).toBe(false);
      await expect(
        request(`https://127.0.0.1:${securePort}/`, { dispatcher: agent }),
      ).rejects.toThrow(/502/);
      const served = await send(`${strict.url('outbound')}/`, { headers: { host: 'backend' } });
      expect(served.status).toBe(200);
    } finally {
      await agent.close();
      await strict.close();
    }
  });

  it('answers 400 to a call addressed to the sidecar itself, instead of looping', async () => {
    const sent = await send(`${proxy.url('outbound')}/`);
    expect(sent.status).toBe(400);
    expect(sent.text).toMatch(/is this proxy/);
  });

  it('answers 400 to calls addressed to its admin listener, however often asked', async () => {
    const admin = proxy.address('admin')!;
    for (let i = 0; i < 3; i++) {
      const sent = await send(`${proxy.url('outbound')}/metrics`, {
        headers: { host: `127.0.0.1:${admin.port}` },
      });
      expect(sent.status).toBe(400);
      expect(sent.text).toMatch(/is this proxy/);
    }
  });
});
