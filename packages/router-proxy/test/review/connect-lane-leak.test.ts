import { EnvHttpProxyAgent, ProxyAgent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GraylaneProxy } from '../../src/index.js';
import { startProxy, startUpstream, table, type Upstream } from '../helpers.js';

type Echo = { upstream: string; headers: Record<string, string> };

/**
 * Issue 15 item 5: undici's ProxyAgent and EnvHttpProxyAgent tunnel plain `http:` calls with CONNECT;
 * to a host outside the mesh the lane must not leak through that tunnel.
 */
describe('CONNECT to a host outside the mesh, plain HTTP inside', () => {
  let proxy: GraylaneProxy;
  let external: Upstream;
  let backend: Upstream;

  beforeAll(async () => {
    external = await startUpstream('external');
    backend = await startUpstream('backend');
    proxy = await startProxy({
      initialTable: table({
        revision: 1,
        services: { backend: { stable: { endpoints: [backend.url] }, lanes: { gray: {} } } },
      }),
    });
  });

  afterAll(async () => {
    await proxy.close();
    await external.close();
    await backend.close();
  });

  // A new object each time: undici's proxy agents write `host` into the headers they are given.
  const tagged = () => ({ 'x-lane': 'gray', baggage: 'lane=gray,tenant=acme' });

  for (const [name, make] of [
    ['ProxyAgent', () => new ProxyAgent({ uri: proxy.url('outbound') })],
    [
      'EnvHttpProxyAgent (HTTP_PROXY)',
      () => {
        // What an app started with HTTP_PROXY gets: the agent reads the variables when made.
        const saved = { HTTP_PROXY: process.env.HTTP_PROXY, NO_PROXY: process.env.NO_PROXY };
        process.env.HTTP_PROXY = proxy.url('outbound');
        delete process.env.NO_PROXY;
        try {
          return new EnvHttpProxyAgent();
        } finally {
          for (const [name, value] of Object.entries(saved)) {
            if (value === undefined) delete process.env[name];
            else process.env[name] = value;
          }
        }
      },
    ],
  ] as const) {
    it(`${name}: the external host gets no lane, other baggage intact`, async () => {
      const dispatcher = make();
      try {
        const before = external.requests.length;
        const res = await request(`${external.url}/x`, { dispatcher, headers: tagged() });
        const body = (await res.body.json()) as Echo;
        expect(res.statusCode).toBe(200);
        expect(external.requests.length).toBe(before + 1);
        expect(body.headers['x-lane']).toBeUndefined();
        expect(body.headers.baggage).toBe('tenant=acme');
        // It did go through the proxy's tunnel, not around it.
        expect(String(body.headers.via)).toMatch(/graylane-/);
      } finally {
        await dispatcher.close();
      }
    });
  }

  it('a service reached through the same agent still gets its lane', async () => {
    const dispatcher = new ProxyAgent({ uri: proxy.url('outbound') });
    try {
      const res = await request('http://backend/y', { dispatcher, headers: tagged() });
      const body = (await res.body.json()) as Echo;
      expect(body.upstream).toBe('backend');
      expect(body.headers['x-lane']).toBe('gray');
    } finally {
      await dispatcher.close();
    }
  });
});
