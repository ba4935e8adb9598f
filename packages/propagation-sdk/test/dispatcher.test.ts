import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildApp, startChildApp } from './child-app.js';
import { close, echo, getJson, listen } from './helpers.js';

/**
 * An app that sets undici's global dispatcher itself, run with the register hook (needs the built
 * dist, `pnpm build`): fetch and undici keep their tag, and a call through an Agent of the app's own
 * is named in a warning with the fix.
 */

let upstream: http.Server;
let app: ChildApp;

beforeAll(async () => {
  upstream = http.createServer(echo);
  const upstreamUrl = await listen(upstream);
  app = await startChildApp(
    ['--import', '@graylane/sdk/register', 'test/fixtures/dispatcher-app.mjs'],
    { UPSTREAM: upstreamUrl },
  );
});
afterAll(async () => {
  await app?.stop();
  await close(upstream);
});

describe('an app that sets its own undici global dispatcher', () => {
  it.each(['fetch', 'undici'])('%s calls are still tagged', async (client) => {
    expect(await getJson(`${app.url}/?client=${client}`, { 'x-lane': 'gray' })).toMatchObject({
      lane: 'gray',
      baggage: 'lane=gray',
    });
    expect(await getJson(`${app.url}/?client=${client}`)).toMatchObject({ lane: null });
  });

  it('replaced again while serving, calls are still tagged', async () => {
    await getJson(`${app.url}/replace`);
    for (const client of ['fetch', 'undici']) {
      expect(await getJson(`${app.url}/?client=${client}`, { 'x-lane': 'blue' })).toMatchObject({
        lane: 'blue',
      });
    }
  });

  it('a call through an Agent of its own is untagged, and a warning names the call site and the fix', async () => {
    expect(await getJson(`${app.url}/?client=own`, { 'x-lane': 'gray' })).toMatchObject({
      lane: null,
    });
    const warning = app.warnings().find((w) => String(w.msg).includes('laneInterceptor()'));
    expect(warning).toMatchObject({ lane: 'gray', client: 'undici' });
    expect(String(warning?.callSite)).toContain('test/fixtures/dispatcher-app.mjs:');
  });
});

describe('a global dispatcher that queues: one connection, calls from many requests at once', () => {
  let held: http.Server;
  let queued: ChildApp;
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let seenAtOnce = 0;
  let open = 0;

  beforeAll(async () => {
    // The first call is held until every request has reached the app, so the others queue in
    // undici's pool behind it and are created later, each in whatever context is then current.
    held = http.createServer(async (req, res) => {
      open++;
      seenAtOnce = Math.max(seenAtOnce, open);
      await gate;
      open--;
      echo(req, res);
    });
    const heldUrl = await listen(held);
    queued = await startChildApp(
      ['--import', '@graylane/sdk/register', 'test/fixtures/dispatcher-app.mjs'],
      { UPSTREAM: heldUrl, CONNECTIONS: '1' },
    );
  });
  afterAll(async () => {
    release();
    await queued?.stop();
    await close(held);
  });

  it('every queued call goes out in the lane of the request that made it, and none is warned about', async () => {
    const lanes = ['gray', 'blue', 'green', 'stable'];
    const count = 100;
    const answers = Array.from({ length: count }, (_, i) => {
      const lane = lanes[i % lanes.length]!;
      const client = i % 2 === 0 ? 'undici' : 'fetch';
      const headers: Record<string, string> = lane === 'stable' ? {} : { 'x-lane': lane };
      return getJson<{ lane: string | null }>(`${queued.url}/?client=${client}`, headers).then(
        (seen) => ({ lane, client, seen: seen.lane }),
      );
    });
    while ((await getJson<{ inFlight: number }>(`${queued.url}/in-flight`)).inFlight < count) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    release();
    const seen = await Promise.all(answers);
    expect(seenAtOnce).toBe(1);
    const wrong = seen.filter((s) => s.seen !== (s.lane === 'stable' ? null : s.lane));
    expect(wrong).toEqual([]);
    expect(queued.warnings()).toEqual([]);
  });
});
