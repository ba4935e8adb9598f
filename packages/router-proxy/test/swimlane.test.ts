import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GraylaneProxy } from '../src/index.js';
import {
  getJson,
  metricValue,
  startProxy,
  startUpstream,
  table,
  type Upstream,
} from './helpers.js';

/**
 * The swimlane across two hops: gateway → frontend (v1|v2) → outbound sidecar → backend (v1|v2).
 * The frontend is a real server that calls the backend through the sidecar, forwarding the lane header
 * as an app with the SDK would, and echoes what it got.
 */
describe('two-hop swimlane', () => {
  let proxy: GraylaneProxy;
  const upstreams: Record<string, Upstream> = {};

  async function frontend(name: string) {
    return startUpstream(name, (req, res) => {
      const lane = req.headers['x-lane'];
      // undici (unlike fetch) may set Host: the app addresses the sidecar by service name.
      request(`${proxy.url('outbound')}/api`, {
        headers: { host: 'backend', ...(typeof lane === 'string' ? { 'x-lane': lane } : {}) },
      })
        .then(async (r) => {
          const backend = (await r.body.json()) as { upstream: string };
          const served = r.headers['x-lane-served'];
          res.writeHead(200, {
            'content-type': 'application/json',
            ...(served ? { 'x-lane-served': served } : {}),
          });
          res.end(
            JSON.stringify({ upstream: name, lane: lane ?? null, backend: backend.upstream }),
          );
        })
        .catch((error: Error) => {
          res.writeHead(500);
          res.end(error.message);
        });
    });
  }

  beforeAll(async () => {
    upstreams.backendV1 = await startUpstream('backend-v1');
    upstreams.backendV2 = await startUpstream('backend-v2');
    upstreams.frontendV1 = await frontend('frontend-v1');
    upstreams.frontendV2 = await frontend('frontend-v2');
    upstreams.onlyV1 = await startUpstream('only-v1');
    proxy = await startProxy({
      initialTable: table({
        revision: 1,
        services: {
          frontend: {
            stable: { version: 'v1', endpoints: [upstreams.frontendV1.url] },
            lanes: { gray: { version: 'v2', endpoints: [upstreams.frontendV2.url] } },
          },
          backend: {
            stable: { version: 'v1', endpoints: [upstreams.backendV1.url] },
            lanes: {
              gray: { version: 'v2', endpoints: [upstreams.backendV2.url] },
              strict: { endpoints: [], fallback: 'none' },
            },
          },
        },
        entrypoints: [{ name: 'shop', service: 'frontend', clientLanes: 'known' }],
      }),
    });
  });

  afterAll(async () => {
    await proxy.close();
    await Promise.all(Object.values(upstreams).map((u) => u.close()));
  });

  it('keeps untagged traffic on stable at every hop', async () => {
    const { res, body } = await getJson(`${proxy.url('gateway')}/`);
    expect(res.status).toBe(200);
    expect(body).toMatchObject({ upstream: 'frontend-v1', lane: null, backend: 'backend-v1' });
    expect(res.headers.get('x-lane-served')).toBe('frontend=stable, backend=stable');
  });

  it('routes a gray request to gray at every hop that has it', async () => {
    const { res, body } = await getJson(`${proxy.url('gateway')}/`, {
      headers: { 'x-lane': 'gray' },
    });
    expect(body).toMatchObject({ upstream: 'frontend-v2', lane: 'gray', backend: 'backend-v2' });
    expect(res.headers.get('x-lane-served')).toBe('frontend=gray, backend=gray');
  });

  it('counts requests by listener, service, lane and version', async () => {
    const before = await metricValue(proxy, 'graylane_requests_total', {
      listener: 'outbound',
      service: 'backend',
      lane: 'gray',
      version: 'v2',
      code: '200',
    });
    await getJson(`${proxy.url('gateway')}/`, { headers: { 'x-lane': 'gray' } });
    const after = await metricValue(proxy, 'graylane_requests_total', {
      listener: 'outbound',
      service: 'backend',
      lane: 'gray',
      version: 'v2',
      code: '200',
    });
    expect(after - before).toBe(1);
  });
});
