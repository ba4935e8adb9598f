import http from 'node:http';
import { context, propagation, ROOT_CONTEXT } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator } from '@opentelemetry/core';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentContext, getLane, withLane } from '../src/context.js';
import { laneHandler } from '../src/inbound/http.js';
import { GraylanePropagator } from '../src/otel/propagator.js';
import { wrapFetch } from '../src/outbound/fetch.js';
import { close, echo, getJson, listen } from './helpers.js';

/** Interop with a real OpenTelemetry Node SDK: W3C baggage plus the graylane propagator. */

let sdk: NodeSDK;
const servers: http.Server[] = [];
let upstream: string;
const laneFetch = wrapFetch(globalThis.fetch);

beforeAll(async () => {
  // No exporters: nothing leaves the machine.
  process.env.OTEL_TRACES_EXPORTER = 'none';
  process.env.OTEL_METRICS_EXPORTER = 'none';
  process.env.OTEL_LOGS_EXPORTER = 'none';
  process.env.OTEL_SDK_DISABLED = 'false';
  sdk = new NodeSDK({
    contextManager: new AsyncLocalStorageContextManager(),
    textMapPropagator: new CompositePropagator({
      propagators: [new W3CBaggagePropagator(), new GraylanePropagator()],
    }),
    instrumentations: [],
  });
  sdk.start();
  const up = http.createServer(echo);
  servers.push(up);
  upstream = await listen(up);
});

afterAll(async () => {
  await Promise.all(servers.map(close));
  await sdk.shutdown();
});

describe('OpenTelemetry interop', () => {
  it('graylane → OTel: withLane puts the lane in the active OTel baggage', () => {
    // The checks run inside callbacks: a callback that never ran must fail the test.
    expect.assertions(3);
    withLane('gray', () => {
      expect(propagation.getBaggage(context.active())?.getEntry('lane')?.value).toBe('gray');
      const carrier: Record<string, string> = {};
      propagation.inject(context.active(), carrier);
      expect(carrier['x-lane']).toBe('gray');
      expect(carrier.baggage).toContain('lane=gray');
    });
  });

  it('graylane → OTel: an inbound request lane is OTel baggage in the handler, other entries kept', async () => {
    // The checks run inside callbacks: a callback that never ran must fail the test.
    expect.assertions(3);
    const server = http.createServer(
      laneHandler((_req, res) => {
        const baggage = propagation.getBaggage(context.active());
        res.end(JSON.stringify({ lane: baggage?.getEntry('lane')?.value ?? null }));
      }),
    );
    servers.push(server);
    const url = await listen(server);
    expect(await getJson(url, { 'x-lane': 'feature-x' })).toEqual({ lane: 'feature-x' });
    const outer = propagation.setBaggage(
      ROOT_CONTEXT,
      propagation.createBaggage({ user: { value: '7' } }),
    );
    context.with(outer, () =>
      withLane('gray', () => {
        const baggage = propagation.getBaggage(context.active());
        expect(baggage?.getEntry('user')?.value).toBe('7');
        expect(baggage?.getEntry('lane')?.value).toBe('gray');
      }),
    );
  });

  it('OTel → graylane: a lane extracted by OTel (W3C baggage) is seen and forwarded', async () => {
    // The checks run inside callbacks: a callback that never ran must fail the test.
    expect.assertions(3);
    const extracted = propagation.extract(ROOT_CONTEXT, { baggage: 'user=7,lane=blue' });
    const seen = await context.with(extracted, async () => {
      expect(getLane()).toBe('blue');
      expect(currentContext()?.source).toBe('otel');
      return (await laneFetch(upstream, { headers: { baggage: 'user=7' } })).json();
    });
    expect(seen).toMatchObject({ lane: 'blue', baggage: 'user=7,lane=blue' });
  });

  it('OTel → graylane: the graylane propagator reads x-lane (header wins over baggage)', () => {
    // The checks run inside callbacks: a callback that never ran must fail the test.
    expect.assertions(4);
    const ctx = propagation.extract(ROOT_CONTEXT, { 'x-lane': 'gray', baggage: 'lane=blue,a=1' });
    expect(propagation.getBaggage(ctx)?.getEntry('lane')?.value).toBe('gray');
    expect(propagation.getBaggage(ctx)?.getEntry('a')?.value).toBe('1');
    context.with(ctx, () => expect(getLane()).toBe('gray'));
    const invalid = propagation.extract(ROOT_CONTEXT, {
      'x-lane': 'Bad!',
      baggage: 'lane=No_Good',
    });
    expect(propagation.getBaggage(invalid)?.getEntry('lane')).toBeUndefined();
  });
});
