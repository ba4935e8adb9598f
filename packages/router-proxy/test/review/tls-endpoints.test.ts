import { once } from 'node:events';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { selfSignedCert } from '../../../../test/support/tls.js';
import type { GraylaneProxy } from '../../src/index.js';
import type { RuntimeOptions } from '../../src/runtime.js';
import {
  metricValue,
  serviceTable,
  startProxy,
  startUpstream,
  table,
  type Upstream,
} from '../helpers.js';

async function httpsUpstream(options: Parameters<typeof createHttpsServer>[0]) {
  const checks = { count: 0 };
  const server = createHttpsServer(options, (req, res) => {
    if (req.headers['user-agent'] === 'graylane-health-check') checks.count += 1;
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'x-upstream': 'canary' });
      res.end('canary');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, checks, url: `https://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/**
 * Issue 15 item 6: a TLS handshake or certificate failure is a connect failure (retried whatever the
 * method, counted for ejection, `fallback=tls_error`); `upstreamTls` gives an https endpoint its CA,
 * server name and client certificate.
 */
describe('https endpoints: TLS failures and settings', () => {
  let stable: Upstream;
  const servers: Server[] = [];
  const proxies: GraylaneProxy[] = [];
  const serverCert = selfSignedCert('DNS:canary.internal,IP:127.0.0.1');
  const namedOnly = selfSignedCert('DNS:canary.internal');
  const clientCert = selfSignedCert('DNS:graylane-proxy');

  beforeAll(async () => {
    stable = await startUpstream('stable');
  });

  afterAll(async () => {
    for (const proxy of proxies) await proxy.close();
    for (const server of servers) server.close();
    await stable.close();
  });

  async function setup(
    canary: { server: Server; url: string },
    upstreamTls: RuntimeOptions['upstreamTls'],
  ) {
    servers.push(canary.server);
    const proxy = await startProxy({
      initialTable: serviceTable('web', stable.url, {
        lanes: { gray: canary.url },
        entrypoint: { clientLanes: 'any' },
      }),
      runtime: {
        upstreamTls,
        outlier: {
          consecutiveFailures: 2,
          baseEjectionMs: 60_000,
          maxEjectionMs: 60_000,
          maxEjectionPercent: 50,
        },
      },
    });
    proxies.push(proxy);
    return proxy;
  }

  const post = async (proxy: GraylaneProxy) => {
    const res = await request(`${proxy.url('gateway')}/`, {
      method: 'POST',
      headers: { 'x-lane': 'gray' },
      body: 'order',
    });
    await res.body.dump();
    return {
      status: res.statusCode,
      upstream: res.headers['x-upstream'],
      served: String(res.headers['x-lane-served']),
    };
  };

  it('retries a POST past an untrusted certificate, falls back as tls_error, ejects the endpoint', async () => {
    const canary = await httpsUpstream(serverCert);
    const proxy = await setup(canary, {});
    const first = await post(proxy);
    expect(first).toEqual({
      status: 200,
      upstream: 'stable',
      served: 'web=stable;fallback=tls_error',
    });
    await post(proxy);
    const later = await post(proxy);
    expect(later.served).toBe('web=stable;fallback=ejected');
    expect(
      await metricValue(proxy, 'graylane_endpoint_ejected', {
        service: 'web',
        lane: 'gray',
        endpoint: canary.url,
      }),
    ).toBe(1);
    expect(await metricValue(proxy, 'graylane_fallbacks_total', { reason: 'tls_error' })).toBe(2);
  });

  it('reaches the endpoint with its CA, and with a server name its certificate carries', async () => {
    const byIp = await httpsUpstream(serverCert);
    expect(await post(await setup(byIp, { [byIp.url]: { ca: serverCert.cert } }))).toMatchObject({
      upstream: 'canary',
      served: 'web=gray',
    });
    const byName = await httpsUpstream(namedOnly);
    const unnamed = await setup(byName, { '*': { ca: namedOnly.cert } });
    expect((await post(unnamed)).served).toBe('web=stable;fallback=tls_error');
    const named = await setup(byName, {
      '*': { ca: namedOnly.cert, serverName: 'canary.internal' },
    });
    expect((await post(named)).upstream).toBe('canary');
  });

  it('presents a client certificate to an endpoint that requires one (mTLS)', async () => {
    const mtls = await httpsUpstream({
      ...serverCert,
      requestCert: true,
      rejectUnauthorized: true,
      ca: clientCert.cert,
    });
    const without = await setup(mtls, { [mtls.url]: { ca: serverCert.cert } });
    // TLS 1.3: the endpoint's certificate_required alert comes after the request was written, so
    // the proxy sees a reset, not a handshake failure, and a POST is not sent again.
    const refusedWithout = await post(without);
    expect(refusedWithout).toMatchObject({ status: 502, upstream: undefined });
    const withCert = await setup(mtls, {
      [mtls.url]: { ca: serverCert.cert, cert: clientCert.cert, key: clientCert.key },
    });
    expect((await post(withCert)).upstream).toBe('canary');
  });
});

describe('https endpoints: active health checks use the same TLS settings', () => {
  it('keeps an https canary with a private CA healthy', async () => {
    const stable = await startUpstream('stable');
    const pem = selfSignedCert();
    const canary = await httpsUpstream(pem);
    const proxy = await startProxy({
      initialTable: table({
        revision: 1,
        services: {
          web: {
            stable: { endpoints: [stable.url] },
            lanes: { gray: { endpoints: [canary.url] } },
            healthCheck: { path: '/', intervalMs: 100, timeoutMs: 500, unhealthyThreshold: 1 },
          },
        },
        entrypoints: [{ name: 'web', service: 'web', clientLanes: 'any' }],
      }),
      runtime: { upstreamTls: { [canary.url]: { ca: pem.cert } } },
    });
    try {
      // Three checks answered over TLS: past the one failure that would make the lane unhealthy.
      await vi.waitFor(() => expect(canary.checks.count).toBeGreaterThanOrEqual(3));
      const res = await request(`${proxy.url('gateway')}/`, { headers: { 'x-lane': 'gray' } });
      await res.body.dump();
      expect(res.headers['x-lane-served']).toBe('web=gray');
    } finally {
      await proxy.close();
      canary.server.close();
      await stable.close();
    }
  });
});

describe('config file: upstreamTls', () => {
  it('reads the PEM files at start and refuses a missing one with its path', async () => {
    const { writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { parseCli, proxyOptionsFrom } = await import('../../src/config.js');
    const { tempDir } = await import('../helpers.js');
    const dir = tempDir();
    try {
      const pem = selfSignedCert();
      writeFileSync(join(dir.path, 'ca.pem'), pem.cert);
      const write = (tls: object) => {
        const file = join(dir.path, 'proxy.json');
        writeFileSync(file, JSON.stringify({ upstreamTls: tls }));
        return parseCli(
          [
            '--config',
            file,
            '--inbound',
            ':0',
            '--inbound-target',
            'http://127.0.0.1:1',
            '--service',
            'web',
          ],
          {},
        );
      };
      const good = write({
        '*': { caFile: join(dir.path, 'ca.pem'), serverName: 'canary.internal' },
      });
      if (good.help) throw new Error('unexpected help');
      expect(proxyOptionsFrom(good.config).runtime.upstreamTls['*']).toMatchObject({
        ca: pem.cert,
        serverName: 'canary.internal',
      });
      const missing = write({ 'https://10.0.0.5:8443': { caFile: join(dir.path, 'none.pem') } });
      if (missing.help) throw new Error('unexpected help');
      expect(() => proxyOptionsFrom(missing.config)).toThrow(
        /upstreamTls\.https:\/\/10\.0\.0\.5:8443\.caFile: .*ENOENT/,
      );
      expect(() => write({ 'http://10.0.0.5': {} })).toThrow(/an https origin/);
      expect(() => write({ '*': { certFile: 'c.pem' } })).toThrow(
        /certFile and keyFile go together/,
      );
    } finally {
      dir.cleanup();
    }
  });
});
