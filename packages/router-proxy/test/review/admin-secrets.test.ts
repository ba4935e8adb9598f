import { networkInterfaces } from 'node:os';
import { Writable } from 'node:stream';
import { ProxyAgent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addressesItself } from '../../src/forwarding/self-address.js';
import type { GraylaneProxy } from '../../src/index.js';
import { createLogger } from '../../src/logger.js';
import { serviceTable, startProxy, startUpstream, type Upstream } from '../helpers.js';
import { rawExchange } from '../raw-socket.js';

const SECRET = 'hush-hush-0123456789';

/** Issue 15 item 2: no secret on the admin listener, and no way to reach it through the sidecar. */
describe('admin: secrets and self-addressed calls', () => {
  let proxy: GraylaneProxy;
  let web: Upstream;

  beforeAll(async () => {
    web = await startUpstream('web');
    proxy = await startProxy({
      initialTable: serviceTable('web', web.url, {
        entrypoint: {
          clientLanes: 'any',
          clientLanesSecret: { header: 'x-lane-secret', value: SECRET },
        },
      }),
    });
  });

  afterAll(async () => {
    await proxy.close();
    await web.close();
  });

  it('redacts the client-lanes secret in /routetable', async () => {
    const res = await request(`${proxy.url('admin')}/routetable`);
    const text = await res.body.text();
    expect(res.statusCode).toBe(200);
    expect(text).not.toContain(SECRET);
    const body = JSON.parse(text) as {
      table: { entrypoints: Array<{ clientLanesSecret: { header: string; value: string } }> };
    };
    expect(body.table.entrypoints[0]!.clientLanesSecret).toEqual({
      header: 'x-lane-secret',
      value: '<redacted>',
    });
  });

  it('redacts the secret in a log line that carries the table', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = createLogger('info', sink);
    logger.info({ table: proxy.tables.current!.table }, 'table');
    expect(lines.join('')).toContain('<redacted>');
    expect(lines.join('')).not.toContain(SECRET);
  });

  it('refuses an absolute-form call through the sidecar to any of its own listeners', async () => {
    const dispatcher = new ProxyAgent({ uri: proxy.url('outbound'), proxyTunnel: false });
    try {
      for (const kind of ['admin', 'gateway', 'outbound'] as const) {
        const res = await request(`${proxy.url(kind)}/routetable`, { dispatcher });
        const text = await res.body.text();
        expect(res.statusCode, `${kind}: ${text}`).toBe(400);
        expect(res.headers['x-graylane-error']).toBe('GRAYLANE_ERR_BAD_REQUEST');
        expect(text).not.toContain(SECRET);
      }
    } finally {
      await dispatcher.close();
    }
  });

  it('refuses a CONNECT to any of its own listeners', async () => {
    const outbound = proxy.address('outbound')!.port;
    for (const kind of ['admin', 'gateway'] as const) {
      const { port } = proxy.address(kind)!;
      for (const host of ['127.0.0.1', 'localhost']) {
        const reply = await rawExchange(
          outbound,
          `CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`,
        );
        expect(reply.status, `${kind} ${host}: ${reply.text}`).toBe(400);
        expect(reply.headers['x-graylane-error']).toBe('GRAYLANE_ERR_BAD_REQUEST');
      }
    }
  });

  it("knows a listener bound to every address by any of this machine's addresses", () => {
    const own = () => [{ address: '0.0.0.0', family: 'IPv4', port: 15000 }];
    const external = Object.values(networkInterfaces())
      .flat()
      .find((info) => info && info.family === 'IPv4' && !info.internal);
    for (const host of ['127.0.0.1:15000', 'localhost:15000', '0.0.0.0:15000']) {
      expect(addressesItself(host, 80, own), host).toBe(true);
    }
    if (external) expect(addressesItself(`${external.address}:15000`, 80, own)).toBe(true);
    expect(addressesItself('203.0.113.5:15000', 80, own)).toBe(false);
    expect(addressesItself('127.0.0.1:15001', 80, own)).toBe(false);
  });
});
