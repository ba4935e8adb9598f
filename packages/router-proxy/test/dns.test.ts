import type { LookupAddress } from 'node:dns';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { defaultRuntimeOptions, type GraylaneProxy } from '../src/index.js';
import type { ResolveHost } from '../src/upstream/dns.js';
import { serviceTable, startProxy } from './helpers.js';

/**
 * The DNS stands in for the system resolver (the one external system here): names to addresses
 * that a test changes, and a count of the lookups the proxy made.
 */
function fakeDns(records: Record<string, string>) {
  const dns = {
    records,
    lookups: 0,
    resolve: ((hostname, _options, callback) => {
      dns.lookups++;
      const address = dns.records[hostname];
      setImmediate(() => {
        if (address) return callback(null, [{ address, family: 4 } satisfies LookupAddress]);
        callback(Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);
      });
    }) as ResolveHost,
  };
  return dns;
}

/**
 * An upstream that closes every connection after its answer, so each request through the proxy
 * opens a new one: without a cache, each would look the name up.
 */
async function closingUpstream(name: string, host: string, port: number) {
  const server = createServer((_req, res) => {
    res.shouldKeepAlive = false;
    res.writeHead(200, { 'x-upstream': name }).end(name);
  });
  server.listen(port, host);
  await once(server, 'listening');
  return server;
}

const servers: Server[] = [];
let proxy: GraylaneProxy | undefined;

afterEach(async () => {
  await proxy?.close(0);
  proxy = undefined;
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    server.close();
  }
});

async function setUp(dnsTtlMs: number) {
  const a = await closingUpstream('a', '127.0.0.1', 0);
  const { port } = a.address() as AddressInfo;
  const b = await closingUpstream('b', '127.0.0.2', port);
  servers.push(a, b);
  const dns = fakeDns({ 'svc.test': '127.0.0.1' });
  const defaults = defaultRuntimeOptions();
  proxy = await startProxy({
    initialTable: serviceTable('svc', `http://svc.test:${port}`),
    runtime: { resolveHost: dns.resolve, upstream: { ...defaults.upstream, dnsTtlMs } },
  });
  const gateway = proxy.url('gateway');
  const served = async () => {
    const res = await fetch(`${gateway}/`);
    expect(res.status).toBe(200);
    return res.text();
  };
  return { dns, served };
}

describe('host-name endpoints', () => {
  it('are looked up once for the table, not per request or per connection', async () => {
    const { dns, served } = await setUp(60_000);
    for (let i = 0; i < 30; i++) expect(await served()).toBe('a');
    expect(dns.lookups).toBe(1);
  });

  it('follow a changed address once the TTL has passed, refreshed in the background', async () => {
    const { dns, served } = await setUp(200);
    expect(await served()).toBe('a');
    dns.records['svc.test'] = '127.0.0.2';
    // Every request is answered meanwhile, by the old address until the refresh.
    await vi.waitFor(async () => expect(await served()).toBe('b'), {
      timeout: 15_000,
      interval: 20,
    });
  });

  it('keep their last good addresses when a refresh fails', async () => {
    const { dns, served } = await setUp(100);
    expect(await served()).toBe('a');
    delete dns.records['svc.test'];
    const before = dns.lookups;
    await vi.waitFor(() => expect(dns.lookups).toBeGreaterThanOrEqual(before + 2), {
      timeout: 15_000,
      interval: 20,
    });
    expect(await served()).toBe('a');
  });
});
