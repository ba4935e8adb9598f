import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GraylaneProxy } from '../../src/index.js';
import { send, startProxy, startUpstream, table, type Upstream } from '../helpers.js';
import { rawExchange } from '../raw-socket.js';

/**
 * Issue 15 item 4: a host names a service only in the forms a cluster gives it (or the table and the
 * config add); `api.github.com` is not service `api`. With `unknownHosts: refuse`, a host outside
 * the mesh is answered 502 GRAYLANE_ERR_UNKNOWN_HOST without DNS, so the test needs no network.
 */
describe('outbound: which hosts name a service', () => {
  let proxy: GraylaneProxy;
  let api: Upstream;
  let outbound: number;

  beforeAll(async () => {
    api = await startUpstream('api');
    proxy = await startProxy({
      initialTable: table({
        revision: 1,
        services: { api: { stable: { endpoints: [api.url] }, hosts: ['api.example.org'] } },
      }),
      runtime: { unknownHosts: 'refuse', serviceDomains: ['.corp.internal'] },
    });
    outbound = proxy.address('outbound')!.port;
  });

  afterAll(async () => {
    await proxy.close();
    await api.close();
  });

  const SERVICE_HOSTS = [
    'api',
    'api:8080',
    'API.default',
    'api.default.svc',
    'api.default.svc.cluster.local:80',
    'api.corp.internal',
    'api.example.org',
  ];
  const EXTERNAL_HOSTS = [
    'api.github.com',
    'api.github.com:443',
    'api.svc.example.com',
    'api.corp.internal.evil.com',
    'api.example.org.evil.com',
  ];

  it('absolute-form: a service host reaches the service, an external one does not', async () => {
    for (const host of SERVICE_HOSTS) {
      const sent = await send(`${proxy.url('outbound')}/user`, { headers: { host } });
      expect(sent.headers['x-upstream'], host).toBe('api');
      const absolute = await rawExchange(
        outbound,
        `GET http://${host}/user HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      );
      expect(absolute.headers['x-upstream'], `absolute ${host}`).toBe('api');
    }
    const before = api.requests.length;
    for (const host of EXTERNAL_HOSTS) {
      const absolute = await rawExchange(
        outbound,
        `GET http://${host}/user HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer t\r\nConnection: close\r\n\r\n`,
      );
      expect(absolute.status, `absolute ${host}`).toBe(502);
      expect(absolute.headers['x-graylane-error']).toBe('GRAYLANE_ERR_UNKNOWN_HOST');
    }
    expect(api.requests.length).toBe(before);
  });

  it('Host-addressed: an external host is not a service', async () => {
    const before = api.requests.length;
    for (const host of EXTERNAL_HOSTS) {
      const sent = await send(`${proxy.url('outbound')}/user`, {
        headers: { host, authorization: 'Bearer t' },
      });
      expect(sent.status, host).toBe(502);
      expect(sent.headers['x-graylane-error']).toBe('GRAYLANE_ERR_UNKNOWN_HOST');
    }
    expect(api.requests.length).toBe(before);
  });

  it('CONNECT: an external host is not looped back into the proxy', async () => {
    for (const host of ['api.github.com', 'api.svc.example.com']) {
      const reply = await rawExchange(
        outbound,
        `CONNECT ${host}:443 HTTP/1.1\r\nHost: ${host}:443\r\n\r\n`,
      );
      expect(reply.status, host).toBe(502);
      expect(reply.headers['x-graylane-error']).toBe('GRAYLANE_ERR_UNKNOWN_HOST');
    }
    const joined = await rawExchange(
      outbound,
      'CONNECT api.default.svc:80 HTTP/1.1\r\nHost: api.default.svc:80\r\n\r\nGET /x HTTP/1.1\r\nHost: api.default.svc\r\nConnection: close\r\n\r\n',
    );
    expect(joined.text).toMatch(/^HTTP\/1\.1 200/);
    expect(joined.text).toMatch(/\r\nx-upstream: api\r\n/i);
  });
});
