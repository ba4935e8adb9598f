import http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { configure, resetConfig } from '../src/config.js';
import { withLane } from '../src/context.js';
import { laneHandler } from '../src/inbound/http.js';
import { install } from '../src/install.js';
import { taggedRequestsInFlight } from '../src/leak.js';
import { resetWarnings, type SdkLogger } from '../src/log.js';
import { sdkRegistry } from '../src/metrics.js';
import { wrapFetch } from '../src/outbound/fetch.js';
import { close, echo, getJson, listen } from './helpers.js';

/**
 * The classic leak: work queued by a request and drained by a timer created at start-up runs in the
 * timer's (empty) context, so its outbound call goes out untagged while the request is in flight.
 */

const laneFetch = wrapFetch(globalThis.fetch);
const warnings: Array<Record<string, unknown>> = [];
const logger: SdkLogger = { warn: (fields) => warnings.push(fields) };
const servers: http.Server[] = [];
let upstream: string;
let service: string;
const queue: Array<() => void> = [];
let drain: NodeJS.Timeout;
/** While set, the service holds each response until the test releases it: a request kept in flight. */
let hold: { entered: () => void; released: Promise<void> } | undefined;

function leakyCall(): Promise<void> {
  return laneFetch(upstream).then((r) => r.text().then(() => undefined));
}

beforeAll(async () => {
  // Created outside any request: callbacks it runs have no lane context.
  drain = setInterval(() => {
    for (const job of queue.splice(0)) job();
  }, 5);
  const up = http.createServer(echo);
  servers.push(up);
  upstream = await listen(up);
  const svc = http.createServer(
    laneHandler(async (_req, res) => {
      const result = await new Promise<string>((resolve) => {
        queue.push(() => {
          leakyCall().then(
            () => resolve('sent'),
            (err: { code?: string }) => resolve(err.code ?? 'error'),
          );
        });
      });
      if (hold) {
        hold.entered();
        await hold.released;
      }
      res.end(JSON.stringify({ result }));
    }),
  );
  servers.push(svc);
  service = await listen(svc);
});

afterAll(async () => {
  clearInterval(drain);
  await Promise.all(servers.map(close));
});

afterEach(() => {
  resetConfig();
  resetWarnings();
  warnings.length = 0;
});

async function untagged(client = 'fetch'): Promise<number> {
  const metric = await sdkRegistry.getSingleMetric('graylane_sdk_untagged_outbound_total')?.get();
  return metric?.values.find((v) => v.labels.client === client)?.value ?? 0;
}

describe('lane-leak detection', () => {
  it('counts a call that lost the context of a tagged request, warning once per call site', async () => {
    configure({ logger });
    const before = await untagged();
    await getJson(service, { 'x-lane': 'gray' });
    await getJson(service, { 'x-lane': 'gray' });
    expect(await untagged()).toBe(before + 2);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ client: 'fetch' });
    expect(String(warnings[0]?.callSite)).toMatch(/leak\.test\.ts:\d+:\d+/);
    // The response's 'close' on the server may come just after the client has read the body.
    await vi.waitFor(() => expect(taggedRequestsInFlight()).toBe(0));
  });

  it('does not count untagged calls while no tagged request is in flight', async () => {
    configure({ logger });
    const before = await untagged();
    await getJson(service);
    await leakyCall();
    expect(await untagged()).toBe(before);
    expect(warnings).toHaveLength(0);
  });

  it('does not count work marked as intentionally stable, or calls with an explicit tag', async () => {
    configure({ logger });
    const before = await untagged();
    let entered!: () => void;
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      entered = resolve;
    });
    hold = {
      entered,
      released: new Promise<void>((resolve) => {
        release = resolve;
      }),
    };
    const inFlight = getJson(service, { 'x-lane': 'gray' });
    try {
      // The tagged request has made its own (leaking) call and is held open: detection is active.
      await held;
      expect(await untagged()).toBe(before + 1);
      expect(taggedRequestsInFlight()).toBe(1);
      await withLane('stable', leakyCall);
      expect(await untagged()).toBe(before + 1);
      expect(taggedRequestsInFlight()).toBe(1);
      await (await laneFetch(upstream, { headers: { 'x-lane': 'blue' } })).text();
      expect(await untagged()).toBe(before + 1);
      // The same call with no tag while the request is held does count: the checks above could fail.
      await leakyCall();
      expect(await untagged()).toBe(before + 2);
    } finally {
      hold = undefined;
      release();
    }
    await inFlight;
  });

  it('counts a leaking fetch once when both fetch and the undici global dispatcher are hooked', async () => {
    const uninstall = install({ inbound: false, http: false, logger });
    try {
      const [fetches, dispatches] = [await untagged('fetch'), await untagged('undici')];
      await getJson(service, { 'x-lane': 'gray' });
      expect(await untagged('fetch')).toBe(fetches + 1);
      expect(await untagged('undici')).toBe(dispatches);
    } finally {
      uninstall();
    }
  });

  it('in strict mode rejects the leaking call with GRAYLANE_ERR_LANE_LEAK', async () => {
    configure({ strict: true, logger });
    expect(await getJson(service, { 'x-lane': 'gray' })).toEqual({
      result: 'GRAYLANE_ERR_LANE_LEAK',
    });
    expect(await getJson(service)).toEqual({ result: 'sent' });
  });
});
