import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildApp, startChildApp } from './child-app.js';
import { close, listen } from './helpers.js';

/**
 * The SDK beside OpenTelemetry's Node SDK and its http, undici and express instrumentations, as
 * users deploy it: both preloaded with `--import`, in either order, with and without
 * `GraylanePropagator` in OTel's composite propagator. Needs the built dist (`pnpm build`).
 */

/** Every header line of one name, as sent (no joining). */
function lines(req: http.IncomingMessage, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]?.toLowerCase() === name) out.push(req.rawHeaders[i + 1] as string);
  }
  return out;
}

interface Seen {
  lane: string[];
  baggage: string[];
  traceparent: string[];
}

let upstream: http.Server;
let upstreamUrl: string;

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    const seen: Seen = {
      lane: lines(req, 'x-lane'),
      baggage: lines(req, 'baggage'),
      traceparent: lines(req, 'traceparent'),
    };
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(seen));
  });
  upstreamUrl = await listen(upstream);
});
afterAll(() => close(upstream));

function startApp(preload: string[], graylanePropagator: boolean): Promise<ChildApp> {
  return startChildApp([...preload, 'test/fixtures/otel-app.cjs'], {
    UPSTREAM: upstreamUrl,
    OTEL_GRAYLANE: graylanePropagator ? '1' : '0',
    OTEL_TRACES_EXPORTER: 'none',
    OTEL_METRICS_EXPORTER: 'none',
    OTEL_LOGS_EXPORTER: 'none',
  });
}

const OTEL = ['--import', './test/fixtures/otel-setup.mjs'];
const SDK = ['--import', '@graylane/sdk/register'];
const setups = [
  ['OTel first', [...OTEL, ...SDK], false],
  ['OTel first, GraylanePropagator', [...OTEL, ...SDK], true],
  ['SDK first', [...SDK, ...OTEL], false],
  ['SDK first, GraylanePropagator', [...SDK, ...OTEL], true],
] as const;

const CLIENTS = ['fetch', 'undici', 'http'] as const;
const INBOUND = [
  ['x-lane only', { 'x-lane': 'gray' }, []],
  ['baggage only, with another member', { baggage: 'lane=gray,user=7' }, ['user=7']],
] as const;

/** The lane member of a baggage line; the other members, sorted. */
function members(baggage: string): { lane: string | undefined; others: string[] } {
  const all = baggage.split(',').map((m) => m.trim());
  const lane = all.find((m) => m.startsWith('lane='))?.slice('lane='.length);
  return { lane, others: all.filter((m) => !m.startsWith('lane=')).sort() };
}

describe.each(setups)('with OpenTelemetry (%s)', (_, preload, graylanePropagator) => {
  let app: ChildApp;
  beforeAll(async () => {
    app = await startApp([...preload], graylanePropagator);
  });
  afterAll(() => app?.stop());

  async function call(query: string, headers: Record<string, string>) {
    const res = await fetch(`${app.url}/call?${query}`, { headers });
    return (await res.json()) as { otelLane: string | null; seen: Seen };
  }

  it.each(INBOUND)('%s: the lane is OTel baggage in the handler', async (_, headers) => {
    const { otelLane } = await call('client=http', { ...headers });
    expect(otelLane).toBe('gray');
  });

  describe.each(CLIENTS)('%s', (client) => {
    it.each(INBOUND)(
      '%s: one x-lane, one baggage that agrees, trace context kept',
      async (_, headers, others) => {
        const { seen } = await call(`client=${client}`, { ...headers });
        expect(seen.lane).toEqual(['gray']);
        expect(seen.baggage).toHaveLength(1);
        expect(members(seen.baggage[0] as string)).toEqual({ lane: 'gray', others: [...others] });
        expect(seen.traceparent).toHaveLength(1);
      },
    );

    it.each(INBOUND)(
      '%s: an explicit x-lane: blue on the call wins in header and baggage',
      async (_, headers, others) => {
        const { seen } = await call(`client=${client}&set=blue`, { ...headers });
        expect(seen.lane).toEqual(['blue']);
        expect(seen.baggage).toHaveLength(1);
        expect(members(seen.baggage[0] as string)).toEqual({ lane: 'blue', others: [...others] });
      },
    );

    it.each(INBOUND)(
      '%s: an explicit x-lane: stable on the call sends it untagged',
      async (_, headers, others) => {
        const { seen } = await call(`client=${client}&set=stable`, { ...headers });
        expect(seen.lane).toEqual([]);
        expect(seen.baggage).toEqual(others.length === 0 ? [] : [others.join(',')]);
        expect(seen.traceparent).toHaveLength(1);
      },
    );
  });

  it('100 concurrent requests over four lanes: each call carries its own lane, once', async () => {
    const lanes = ['gray', 'blue', 'green', 'stable'];
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => {
        const lane = lanes[i % lanes.length] as string;
        const client = CLIENTS[i % CLIENTS.length] as string;
        const headers: Record<string, string> = lane === 'stable' ? {} : { 'x-lane': lane };
        return call(`client=${client}`, headers).then(({ seen }) => ({ lane, seen }));
      }),
    );
    for (const { lane, seen } of results) {
      expect(seen.lane).toEqual(lane === 'stable' ? [] : [lane]);
      expect(seen.baggage).toEqual(lane === 'stable' ? [] : [`lane=${lane}`]);
    }
  });
});
