import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GraylaneProxy } from '../src/index.js';
import {
  getJson,
  metricValue,
  startChainApp,
  startProxy,
  table,
  type Upstream,
} from './helpers.js';

/**
 * The swimlane across three hops: gateway → frontend → sidecar → middle → sidecar → backend. The
 * middle service has no gray version: gray traffic runs on its stable version and is gray again at
 * the backend, because the tag itself is kept.
 */
describe('swimlane across hops', () => {
  let proxy: GraylaneProxy;
  const apps: Upstream[] = [];
  const outbound = () => proxy.url('outbound');
  const app = async (name: string, next?: string) => {
    const started = await startChainApp(name, next, outbound);
    apps.push(started);
    return started.url;
  };

  beforeAll(async () => {
    const [frontendV1, frontendV2, middleV1, backendV1, backendV2] = [
      await app('frontend-v1', 'middle'),
      await app('frontend-v2', 'middle'),
      await app('middle-v1', 'backend'),
      await app('backend-v1'),
      await app('backend-v2'),
    ];
    proxy = await startProxy({
      initialTable: table({
        revision: 1,
        services: {
          frontend: {
            stable: { version: 'v1', endpoints: [frontendV1] },
            lanes: { gray: { version: 'v2', endpoints: [frontendV2] } },
          },
          middle: {
            stable: { version: 'v1', endpoints: [middleV1] },
            lanes: { strict: { endpoints: [], fallback: 'none' } },
          },
          backend: {
            stable: { version: 'v1', endpoints: [backendV1] },
            lanes: { gray: { version: 'v2', endpoints: [backendV2] } },
          },
        },
        entrypoints: [{ name: 'shop', service: 'frontend', clientLanes: 'known' }],
      }),
    });
  });

  afterAll(async () => {
    await proxy.close();
    await Promise.all(apps.map((u) => u.close()));
  });

  it('keeps untagged traffic on stable at every hop', async () => {
    const { res, body } = await getJson(`${proxy.url('gateway')}/`);
    expect(res.status).toBe(200);
    expect(body).toEqual({ path: ['frontend-v1', 'middle-v1', 'backend-v1'], lane: null });
    expect(res.headers.get('x-lane-served')).toBe('frontend=stable, middle=stable, backend=stable');
  });

  it('serves gray where a service has it, stable where it has not, and gray again after', async () => {
    const { res, body } = await getJson(`${proxy.url('gateway')}/`, {
      headers: { 'x-lane': 'gray' },
    });
    expect(body).toEqual({ path: ['frontend-v2', 'middle-v1', 'backend-v2'], lane: 'gray' });
    expect(res.headers.get('x-lane-served')).toBe(
      'frontend=gray, middle=stable;fallback=absent, backend=gray',
    );
  });

  it('counts the fallback where the lane is absent', async () => {
    const labels = { service: 'middle', from_lane: 'gray', to_lane: 'stable', reason: 'absent' };
    const before = await metricValue(proxy, 'graylane_fallbacks_total', labels);
    await getJson(`${proxy.url('gateway')}/`, { headers: { 'x-lane': 'gray' } });
    expect((await metricValue(proxy, 'graylane_fallbacks_total', labels)) - before).toBe(1);
  });

  it('answers 503 naming service and lane when a strict lane has no endpoint', async () => {
    const res = await fetch(`${proxy.url('gateway')}/`, { headers: { 'x-lane': 'strict' } });
    expect(res.status).toBe(503);
    expect(res.headers.get('x-lane-served')).toBe('frontend=stable;fallback=absent, middle=none');
    expect(await res.text()).toMatch(/lane strict of service middle/);
  });

  it('drops an invalid tag, counts it, and serves the request as stable', async () => {
    const before = await metricValue(proxy, 'graylane_invalid_lane_total', { listener: 'gateway' });
    const { res, body } = await getJson(`${proxy.url('gateway')}/`, {
      headers: { 'x-lane': 'Gray,blue' },
    });
    expect(res.status).toBe(200);
    expect(body).toEqual({ path: ['frontend-v1', 'middle-v1', 'backend-v1'], lane: null });
    const after = await metricValue(proxy, 'graylane_invalid_lane_total', { listener: 'gateway' });
    expect(after - before).toBe(1);
  });

  it('counts requests by listener, service, lane and version', async () => {
    const labels = {
      listener: 'outbound',
      service: 'backend',
      lane: 'gray',
      version: 'v2',
      code: '200',
    };
    const before = await metricValue(proxy, 'graylane_requests_total', labels);
    await getJson(`${proxy.url('gateway')}/`, { headers: { 'x-lane': 'gray' } });
    expect((await metricValue(proxy, 'graylane_requests_total', labels)) - before).toBe(1);
  });
});
