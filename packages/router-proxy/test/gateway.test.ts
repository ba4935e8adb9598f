import { Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GraylaneProxy } from '../src/index.js';
import { metricValue, send, startProxy, startUpstream, table, type Upstream } from './helpers.js';
import { rawConnect } from './raw-socket.js';
import { referenceBucket } from './sticky-reference.js';

type Echo = { upstream: string; headers: Record<string, string> };

describe('gateway: entrypoints and lane assignment', () => {
  let proxy: GraylaneProxy;
  const ups: Record<string, Upstream> = {};

  beforeAll(async () => {
    for (const name of ['web-v1', 'web-v2', 'web-blue', 'api-v1', 'admin-v1']) {
      ups[name] = await startUpstream(name);
    }
    proxy = await startProxy({
      initialTable: table({
        revision: 3,
        services: {
          web: {
            stable: { version: 'v1', endpoints: [ups['web-v1']!.url] },
            lanes: {
              gray: { version: 'v2', endpoints: [ups['web-v2']!.url] },
              blue: { version: 'blue', endpoints: [ups['web-blue']!.url] },
            },
          },
          api: { stable: { endpoints: [ups['api-v1']!.url] } },
          admin: { stable: { endpoints: [ups['admin-v1']!.url] } },
        },
        entrypoints: [
          {
            name: 'web',
            service: 'web',
            clientLanes: 'known',
            assign: [
              { lane: 'gray', when: { headers: { 'user-agent': { exact: 'tester' } } } },
              { lane: 'blue', when: { headers: { 'x-team': { regex: '^blue-' } } } },
              { lane: 'gray', weight: 30, sticky: 'cookie:graylane' },
            ],
          },
          { name: 'api', match: { pathPrefix: '/api' }, service: 'api', clientLanes: 'off' },
          {
            name: 'admin',
            match: { host: 'admin.example', pathPrefix: '/' },
            service: 'admin',
            clientLanes: 'any',
            clientLanesSecret: { header: 'x-lane-secret', value: 'sesame-open' },
          },
        ],
      }),
    });
  });

  afterAll(async () => {
    await proxy.close();
    await Promise.all(Object.values(ups).map((u) => u.close()));
  });

  const get = async (path: string, headers: Record<string, string> = {}) => {
    const sent = await send(`${proxy.url('gateway')}${path}`, { headers });
    return { res: sent, body: sent.json<Echo>() };
  };

  it('matches the longest path prefix and whole segments', async () => {
    expect((await get('/api/orders')).body.upstream).toBe('api-v1');
    expect((await get('/api')).body.upstream).toBe('api-v1');
    expect((await get('/apix')).body.upstream).not.toBe('api-v1');
  });

  it('matches an entrypoint by host, case- and port-insensitive', async () => {
    expect((await get('/', { host: 'ADMIN.example:8080' })).body.upstream).toBe('admin-v1');
  });

  it('answers 404 with a reason when no entrypoint matches', async () => {
    const only = await startProxy({
      initialTable: table({
        revision: 1,
        services: { api: { stable: { endpoints: [ups['api-v1']!.url] } } },
        entrypoints: [{ name: 'api', match: { pathPrefix: '/api' }, service: 'api' }],
      }),
    });
    try {
      const res = await fetch(`${only.url('gateway')}/nothing`);
      expect(res.status).toBe(404);
      expect(res.headers.get('x-graylane-error')).toBe('GRAYLANE_ERR_NO_ENTRYPOINT');
      expect(await res.text()).toMatch(/no entrypoint matches \/nothing/);
    } finally {
      await only.close();
    }
  });

  it('clientLanes known: accepts a lane the table defines, ignores one it does not', async () => {
    const known = await get('/', { 'x-lane': 'blue', cookie: 'graylane=k' });
    expect(known.body.upstream).toBe('web-blue');
    expect(known.body.headers['x-lane']).toBe('blue');
    const unknown = await get('/', { 'x-lane': 'purple', 'user-agent': 'tester' });
    // Not accepted from the client, so the assign rules decide.
    expect(unknown.body.upstream).toBe('web-v2');
    expect(unknown.body.headers['x-lane']).toBe('gray');
  });

  it('clientLanes known: reads a client lane from baggage and forwards both consistently', async () => {
    const { body } = await get('/', { baggage: 'userId=7,lane=blue;ttl=1', cookie: 'graylane=k' });
    expect(body.upstream).toBe('web-blue');
    expect(body.headers['x-lane']).toBe('blue');
    // The lane member is rewritten by the gateway; every other member is kept as it was.
    expect(body.headers.baggage).toBe('userId=7,lane=blue');
  });

  it('clientLanes off: strips the client tag, header and baggage entry', async () => {
    const { body } = await get('/api', { 'x-lane': 'gray', baggage: 'lane=gray,k=v' });
    expect(body.headers['x-lane']).toBeUndefined();
    expect(body.headers.baggage).toBe('k=v');
  });

  it('clientLanesSecret: accepts the client tag only with the secret, and never forwards it', async () => {
    const withSecret = await get('/', {
      host: 'admin.example',
      'x-lane': 'anything-goes',
      'x-lane-secret': 'sesame-open',
    });
    expect(withSecret.body.headers['x-lane']).toBe('anything-goes');
    expect(withSecret.body.headers['x-lane-secret']).toBeUndefined();
    const wrong = await get('/', {
      host: 'admin.example',
      'x-lane': 'anything-goes',
      'x-lane-secret': 'guess-guess',
    });
    expect(wrong.body.headers['x-lane']).toBeUndefined();
    expect(wrong.body.headers['x-lane-secret']).toBeUndefined();
  });

  it('assign: the first matching header rule wins', async () => {
    expect((await get('/', { 'user-agent': 'tester', 'x-team': 'blue-1' })).body.upstream).toBe(
      'web-v2',
    );
    expect((await get('/', { 'x-team': 'blue-1', cookie: 'graylane=k' })).body.upstream).toBe(
      'web-blue',
    );
  });

  it('assign: a weighted sticky rule sets the cookie and keeps its answer for that key', async () => {
    const first = await get('/');
    const cookie = first.res.headers['set-cookie']?.[0];
    expect(cookie).toMatch(
      /^graylane=[0-9a-f-]{36}; Max-Age=\d+; Path=\/; HttpOnly; SameSite=Lax$/,
    );
    const key = cookie!.split(';')[0]!;
    const lanes = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const again = await get('/', { cookie: key });
      expect(again.res.headers['set-cookie']).toBeUndefined();
      lanes.add(again.body.upstream);
    }
    expect(lanes.size).toBe(1);
    expect([...lanes][0]).toBe(first.body.upstream);
  });

  it('assign: exactly the keys whose bucket is below 30 % land in the weighted lane', async () => {
    // The split is a function of the key: each key's lane is known in advance, from the reference
    // hash, and about 30 % of these keys (122 of 400) are in the lane.
    const n = 400;
    const wrong: string[] = [];
    let gray = 0;
    for (let i = 0; i < n; i++) {
      const key = `user-${i}`;
      const expected = referenceBucket(key, 'gray') < 3_000 ? 'web-v2' : 'web-v1';
      const { body } = await get('/', { cookie: `graylane=${key}` });
      if (body.upstream !== expected) wrong.push(`${key}: ${body.upstream}`);
      if (body.upstream === 'web-v2') gray++;
    }
    expect(wrong).toEqual([]);
    expect(gray).toBe(122);
  });

  it('counts assignments by entrypoint, lane and reason', async () => {
    const labels = { entrypoint: 'web', lane: 'gray', reason: 'match' };
    const before = await metricValue(proxy, 'graylane_lane_assignments_total', labels);
    await get('/', { 'user-agent': 'tester' });
    expect((await metricValue(proxy, 'graylane_lane_assignments_total', labels)) - before).toBe(1);
  });

  it('removes hop-by-hop headers and sets x-forwarded-*', async () => {
    const { body } = await get('/api', {
      connection: 'x-secret-hop, keep-alive',
      'x-secret-hop': 'drop me',
      'keep-alive': 'timeout=5',
      'x-forwarded-for': '203.0.113.9',
      'x-forwarded-proto': 'https',
      te: 'trailers',
    });
    expect(body.headers['x-secret-hop']).toBeUndefined();
    expect(body.headers['keep-alive']).toBeUndefined();
    expect(body.headers.te).toBeUndefined();
    // The client is no trusted proxy (trustedProxies is empty): what it claims is replaced.
    expect(body.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(body.headers['x-forwarded-proto']).toBe('http');
    expect(body.headers['x-forwarded-host']).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(body.headers.via).toMatch(/^1\.1 graylane-[0-9a-f]+$/);
  });

  it('writes Forwarded and Via per request, the Host changing on one kept-alive connection', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const seen = [];
      for (const host of ['a.example', 'a.example', '[::1]:8080', 'a.example']) {
        const reply = await send(`${proxy.url('gateway')}/api`, { agent, headers: { host } });
        seen.push(reply.json<{ headers: Record<string, string> }>().headers);
      }
      expect(seen.map((h) => h.forwarded)).toEqual([
        'for=127.0.0.1;proto=http;host=a.example',
        'for=127.0.0.1;proto=http;host=a.example',
        'for=127.0.0.1;proto=http;host="[::1]:8080"',
        'for=127.0.0.1;proto=http;host=a.example',
      ]);
      const earlier = await send(`${proxy.url('gateway')}/api`, {
        agent,
        headers: { via: '1.0 lb, 1.1 edge' },
      });
      const via = earlier.json<{ headers: Record<string, string> }>().headers.via;
      expect(via).toBe(`1.0 lb, 1.1 edge, 1.1 ${proxy.runtime.viaToken}`);
    } finally {
      agent.destroy();
    }
  });

  it('answers 508 to a request that already passed this proxy too often', async () => {
    const token = `1.1 ${proxy.runtime.viaToken}`;
    const via = Array.from({ length: 8 }, () => token).join(', ');
    const res = await fetch(`${proxy.url('gateway')}/api`, { headers: { via } });
    expect(res.status).toBe(508);
    expect(res.headers.get('x-graylane-error')).toBe('GRAYLANE_ERR_LOOP');
  });

  it('streams request bodies to the upstream', async () => {
    const payload = 'x'.repeat(256 * 1024);
    const res = await fetch(`${proxy.url('gateway')}/api/upload`, {
      method: 'POST',
      body: payload,
    });
    const body = (await res.json()) as { body: string; method: string };
    expect(body.method).toBe('POST');
    expect(body.body.length).toBe(payload.length);
  });

  it('forwards a request body intact however the reads split it from its head', async () => {
    const port = Number(new URL(proxy.url('gateway')).port);
    const post = (body: string, framing: 'length' | 'chunked' = 'length') =>
      `POST /api/upload HTTP/1.1\r\nHost: a\r\n${framing === 'length' ? `Content-Length: ${body.length}` : 'Transfer-Encoding: chunked'}\r\n\r\n`;
    const chunk = (body: string) => `${body.length.toString(16)}\r\n${body}\r\n`;
    const one = 'a'.repeat(1000);
    const two = 'b'.repeat(700);
    // Each case: what is written, in writes 30 ms apart; the bodies the upstream must have got.
    const cases: Array<[string, string[], string[]]> = [
      ['whole with its head', [post(one) + one], [one]],
      [
        'head and part of it, then the rest',
        [post(one) + one.slice(0, 300), one.slice(300)],
        [one],
      ],
      ['head, then the body', [post(one), one], [one]],
      ['two requests in one write', [post(one) + one + post(two) + two], [one, two]],
      ['chunked, the last chunk later', [post('', 'chunked') + chunk(one), '0\r\n\r\n'], [one]],
      ['chunked, whole with its head', [`${post('', 'chunked')}${chunk(two)}0\r\n\r\n`], [two]],
    ];
    for (const [name, writes, bodies] of cases) {
      const socket = await rawConnect(port);
      let text = '';
      const echoed = () => [...text.matchAll(/"body":"([ab]*)"/g)].map((m) => m[1]);
      const answered = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2_000);
        socket.on('data', (data: Buffer) => {
          text += data.toString('latin1');
          if (echoed().length < bodies.length) return;
          clearTimeout(timer);
          resolve();
        });
      });
      for (const [i, bytes] of writes.entries()) {
        if (i > 0) await new Promise((resolve) => setTimeout(resolve, 30));
        socket.write(bytes);
      }
      await answered;
      socket.destroy();
      expect(echoed(), name).toEqual(bodies);
    }
  });
});
