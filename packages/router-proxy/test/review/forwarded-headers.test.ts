import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GraylaneProxy } from '../../src/index.js';
import { send, startProxy, startUpstream, table, type Upstream } from '../helpers.js';

type Echo = { headers: Record<string, string> };

/**
 * Issue 15 item 10: X-Forwarded-* from a trusted proxy in front are kept (XFF appended), from anyone
 * else replaced; the sticky cookie is Secure when the request came in over HTTPS.
 */
describe('gateway: X-Forwarded-* and trusted proxies', () => {
  let web: Upstream;
  const proxies: GraylaneProxy[] = [];

  beforeAll(async () => {
    web = await startUpstream('web');
  });

  afterAll(async () => {
    for (const proxy of proxies) await proxy.close();
    await web.close();
  });

  const start = async (trustedProxies: string[]) => {
    const proxy = await startProxy({
      initialTable: table({
        revision: 1,
        services: { web: { stable: { endpoints: [web.url] }, lanes: { gray: {} } } },
        entrypoints: [
          {
            name: 'web',
            service: 'web',
            assign: [{ lane: 'gray', weight: 50, sticky: 'cookie:graylane' }],
          },
        ],
      }),
      runtime: { trustedProxies },
    });
    proxies.push(proxy);
    return proxy;
  };

  const claimed = {
    'x-forwarded-for': '203.0.113.9',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'shop.example.com',
  };

  it('replaces what an untrusted client claims', async () => {
    const proxy = await start([]);
    const sent = await send(`${proxy.url('gateway')}/`, { headers: { host: 'web', ...claimed } });
    const seen = sent.json<Echo>().headers;
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe('web');
    expect(String(sent.headers['set-cookie'])).not.toMatch(/Secure/i);
  });

  it('keeps and appends what a trusted proxy in front says; the cookie is then Secure', async () => {
    const proxy = await start(['10.0.0.0/8', '127.0.0.0/8', '::1']);
    const sent = await send(`${proxy.url('gateway')}/`, { headers: { host: 'web', ...claimed } });
    const seen = sent.json<Echo>().headers;
    expect(seen['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('https');
    expect(seen['x-forwarded-host']).toBe('shop.example.com');
    expect(String(sent.headers['set-cookie'])).toMatch(/; Secure/i);
  });

  it('writes Forwarded (RFC 7239): replaced from a client, appended behind a trusted proxy', async () => {
    const edge = await start([]);
    const fromClient = await send(`${edge.url('gateway')}/`, {
      headers: { host: 'web:8080', forwarded: 'for=203.0.113.9;proto=https' },
    });
    expect(fromClient.json<Echo>().headers.forwarded).toBe(
      'for=127.0.0.1;proto=http;host="web:8080"',
    );
    const behind = await start(['127.0.0.0/8']);
    const fromProxy = await send(`${behind.url('gateway')}/`, {
      headers: { host: 'web', forwarded: 'for=203.0.113.9;proto=https' },
    });
    expect(fromProxy.json<Echo>().headers.forwarded).toBe(
      'for=203.0.113.9;proto=https, for=127.0.0.1;proto=http;host=web',
    );
  });

  it('does not trust a peer outside the configured ranges', async () => {
    const proxy = await start(['10.0.0.0/8']);
    const sent = await send(`${proxy.url('gateway')}/`, { headers: { host: 'web', ...claimed } });
    expect(sent.json<Echo>().headers['x-forwarded-for']).toBe('127.0.0.1');
  });
});
