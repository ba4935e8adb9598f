import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraylaneProxy } from '../src/index.js';
import { createLogger } from '../src/logger.js';
import { defaultRuntimeOptions } from '../src/runtime.js';
import { startProxy, startUpstream, table, type Upstream } from './helpers.js';

describe('admin listener', () => {
  let proxy: GraylaneProxy;
  let web: Upstream;

  beforeAll(async () => {
    web = await startUpstream('web');
    proxy = await startProxy({
      initialTable: table({
        revision: 12,
        services: { web: { stable: { version: 'v1', endpoints: [web.url] } } },
        entrypoints: [{ name: 'web', service: 'web' }],
      }),
    });
  });

  afterAll(async () => {
    await proxy.close();
    await web.close();
  });

  const admin = async (path: string, method = 'GET') => {
    const res = await request(`${proxy.url('admin')}${path}`, { method: method as 'GET' });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  };

  it('reports liveness and readiness with the revision served', async () => {
    expect((await admin('/healthz')).status).toBe(200);
    const ready = await admin('/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text)).toEqual({ status: 'ready', revision: 12 });
  });

  it('serves the current route table with its revision and source', async () => {
    const { status, text } = await admin('/routetable');
    expect(status).toBe(200);
    const body = JSON.parse(text) as {
      revision: number;
      source: string;
      table: { services: object };
    };
    expect(body.revision).toBe(12);
    expect(body.source).toBe('inline');
    expect(Object.keys(body.table.services)).toEqual(['web']);
  });

  it('exposes the contract metrics and the process metrics in Prometheus text', async () => {
    const served = await request(`${proxy.url('gateway')}/`);
    await served.body.dump();
    const { status, headers, text } = await admin('/metrics');
    expect(status).toBe(200);
    expect(String(headers['content-type'])).toMatch(/^text\/plain/);
    for (const name of [
      'graylane_requests_total',
      'graylane_request_duration_seconds_bucket',
      'graylane_lane_assignments_total',
      'graylane_routetable_revision 12',
      'process_cpu_user_seconds_total',
    ]) {
      expect(text).toContain(name);
    }
    expect(text).toMatch(
      /graylane_requests_total\{listener="gateway",service="web",lane="stable",version="v1",code="200"\} 1/,
    );
  });

  it('is read-only and names unknown paths', async () => {
    expect((await admin('/routetable', 'POST')).status).toBe(405);
    const missing = await admin('/nope');
    expect(missing.status).toBe(404);
    expect(missing.text).toContain('/nope');
  });

  it('reports draining while it stops, and lets the request in flight finish', async () => {
    const slow = await startUpstream('slow', (_req, res) => {
      setTimeout(() => res.end('done'), 400);
    });
    const stopping = await startProxy({
      initialTable: table({
        revision: 1,
        services: { slow: { stable: { endpoints: [slow.url] } } },
        entrypoints: [{ name: 'slow', service: 'slow' }],
      }),
    });
    try {
      const inFlight = request(`${stopping.url('gateway')}/`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const adminUrl = stopping.url('admin');
      const closed = stopping.close();
      const ready = await request(`${adminUrl}/readyz`);
      expect(ready.statusCode).toBe(503);
      expect(await ready.body.json()).toEqual({ status: 'draining' });
      expect(await (await inFlight).body.text()).toBe('done');
      await closed;
    } finally {
      await slow.close();
    }
  });

  it('is not ready before a table is loaded', async () => {
    const bare = new GraylaneProxy({
      admin: { host: '127.0.0.1', port: 0 },
      gateway: { host: '127.0.0.1', port: 0 },
      drainTimeoutMs: 300,
      server: { headersTimeoutMs: 5000, keepAliveTimeoutMs: 5000 },
      runtime: defaultRuntimeOptions(),
      logger: createLogger('silent'),
    });
    await bare.start();
    try {
      const res = await request(`${bare.url('admin')}/readyz`);
      expect(res.statusCode).toBe(503);
      expect(await res.body.json()).toEqual({ status: 'no route table loaded' });
      const gateway = await request(`${bare.url('gateway')}/`);
      expect(gateway.statusCode).toBe(503);
      expect(gateway.headers['x-graylane-error']).toBe('GRAYLANE_ERR_NOT_READY');
      await gateway.body.dump();
    } finally {
      await bare.close();
    }
  });
});
