import { once } from 'node:events';
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TrafficView } from '../src/api/traffic-view.js';

/** The status page's numbers from a real /metrics endpoint, on a clock the test moves. */
describe('TrafficView', () => {
  let metrics = '';
  const server = createServer((_req, res) => res.end(metrics));
  let url = '';

  beforeAll(async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/metrics`;
  });
  afterAll(() => server.close());

  const exposition = (connectErrors: number, ejected: number) =>
    [
      '# TYPE graylane_fallbacks_total counter',
      `graylane_fallbacks_total{service="backend",from_lane="gray",to_lane="stable",reason="connect_error"} ${connectErrors}`,
      'graylane_fallbacks_total{service="backend",from_lane="gray",to_lane="stable",reason="absent"} 4',
      `graylane_endpoint_ejected{service="backend",lane="gray",endpoint="http://127.0.0.1:9002"} ${ejected}`,
      'graylane_endpoint_ejected{service="frontend",lane="stable",endpoint="http://127.0.0.1:8001"} 0',
      '',
    ].join('\n');

  it('turns fallback counters into rates against the previous look, and lists ejected endpoints', async () => {
    let now = 10_000;
    const view = new TrafficView(
      () => [url, 'http://127.0.0.1:1/metrics'], // a proxy that does not answer is left out
      () => now,
    );
    metrics = exposition(3, 0);
    expect(await view.look()).toEqual({
      backend: {
        fallbacksPerSecond: { 'gray->stable (connect_error)': 0, 'gray->stable (absent)': 0 },
        ejected: [],
      },
    });
    now += 2_000;
    metrics = exposition(13, 1);
    expect(await view.look()).toEqual({
      backend: {
        fallbacksPerSecond: { 'gray->stable (connect_error)': 5, 'gray->stable (absent)': 0 },
        ejected: [{ lane: 'gray', endpoint: 'http://127.0.0.1:9002' }],
      },
    });
  });
});
