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
