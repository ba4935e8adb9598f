import { randomBytes } from 'node:crypto';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GraylaneProxy } from '../../src/index.js';
import { serviceTable, startProxy, startUpstream, type Upstream } from '../helpers.js';

const LANES = 5_000;

/** Series of the metrics whose labels carry a lane. */
async function laneSeries(proxy: GraylaneProxy): Promise<string[]> {
  const text = await proxy.metrics.registry.metrics();
  return text
    .split('\n')
    .filter((line) =>
      /^graylane_(requests_total|fallbacks_total|lane_assignments_total|request_duration_seconds_count)\{/.test(
        line,
      ),
    );
}

/** Issue 15 item 3: a lane label taken from a request is a lane of the table, or `_other`. */
describe('metrics: lane labels stay bounded whatever lanes clients send', () => {
  let proxy: GraylaneProxy;
  let backend: Upstream;
  let gray: Upstream;
  const dispatcher = new Agent({ connections: 16 });

  beforeAll(async () => {
    backend = await startUpstream('backend');
    gray = await startUpstream('backend-gray');
    proxy = await startProxy({
      initialTable: serviceTable('backend', backend.url, {
        lanes: { gray: gray.url },
        entrypoint: { clientLanes: 'any' },
      }),
    });
  });

  afterAll(async () => {
    await dispatcher.close();
    await proxy.close();
    await backend.close();
    await gray.close();
  });

  async function sendLanes(url: string, headers: Record<string, string>) {
    const lanes = Array.from({ length: LANES }, () => `l-${randomBytes(6).toString('hex')}`);
    for (let i = 0; i < lanes.length; i += 50) {
      await Promise.all(
        lanes.slice(i, i + 50).map(async (lane) => {
          const res = await request(`${url}/`, {
            dispatcher,
            headers: { ...headers, 'x-lane': lane },
          });
          await res.body.dump();
          expect(res.statusCode).toBe(200);
        }),
      );
    }
  }

  it('gateway with clientLanes: any', async () => {
    await sendLanes(proxy.url('gateway'), {});
    const series = await laneSeries(proxy);
    expect(series.length).toBeLessThan(20);
    expect(series.some((line) => line.includes('lane="_other"'))).toBe(true);
    expect(series.some((line) => line.includes('from_lane="_other"'))).toBe(true);
  }, 60_000);

  it('outbound', async () => {
    await sendLanes(proxy.url('outbound'), { host: 'backend' });
    const series = await laneSeries(proxy);
    expect(series.length).toBeLessThan(30);
  }, 60_000);

  it('keeps the name of a lane the table defines', async () => {
    const res = await request(`${proxy.url('gateway')}/`, { headers: { 'x-lane': 'gray' } });
    await res.body.dump();
    const series = await laneSeries(proxy);
    expect(
      series.some(
        (line) =>
          line.startsWith('graylane_lane_assignments_total') && line.includes('lane="gray"'),
      ),
    ).toBe(true);
  });
});
