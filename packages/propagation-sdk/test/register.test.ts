import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildApp, startChildApp } from './child-app.js';
import { close, getJson, listen } from './helpers.js';

/**
 * Zero-code setup in a child process: the fixture apps contain no graylane code. Needs the built
 * dist (`pnpm build`), as a deployed service would.
 */

let upstream: http.Server;
let upstreamUrl: string;

beforeAll(async () => {
  // Echoes every tag-related header it received.
  upstream = http.createServer((req, res) => {
    const pick = (name: string) => req.headers[name] ?? null;
    // As a sidecar in front of it would answer: its provenance hop.
    res.setHeader('x-lane-served', `up=${req.headers['x-lane'] ?? 'stable'}`);
    res.end(
      JSON.stringify({
        lane: pick('x-lane'),
        swimlane: pick('x-swimlane'),
        baggage: pick('baggage'),
      }),
    );
  });
  upstreamUrl = await listen(upstream);
});
afterAll(() => close(upstream));

function startApp(args: string[], env: Record<string, string> = {}): Promise<ChildApp> {
  return startChildApp(args, { ...env, UPSTREAM: upstreamUrl });
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill();
  });
}

const cases = [
  ['ESM, --import', ['--import', '@graylane/sdk/register', 'test/fixtures/app.mjs']],
  ['CommonJS, -r', ['-r', '@graylane/sdk/register', 'test/fixtures/app.cjs']],
] as const;

describe.each(cases)('zero-code setup (%s)', (_, args) => {
  let app: ChildApp;
  beforeAll(async () => {
    app = await startApp([...args]);
  });
  afterAll(() => stop(app.child));

  it.each(['fetch', 'undici', 'http'])('carries the lane through %s', async (client) => {
    const seen = await getJson(`${app.url}/?client=${client}`, { 'x-lane': 'gray' });
    expect(seen).toMatchObject({ lane: 'gray', baggage: 'lane=gray' });
    const untagged = await getJson(`${app.url}/?client=${client}`);
    expect(untagged).toMatchObject({ lane: null, baggage: null });
  });

  it.each(['fetch', 'undici', 'http'])('relays the provenance hop through %s', async (client) => {
    expect(await servedHeader(`${app.url}/?client=${client}`, { 'x-lane': 'gray' })).toBe(
      'up=gray',
    );
    expect(await servedHeader(`${app.url}/?client=${client}`)).toBe('up=stable');
  });
});

/** The `x-lane-served` header of a GET, body drained. */
function servedHeader(url: string, headers: Record<string, string> = {}): Promise<unknown> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.headers['x-lane-served']));
      })
      .on('error', reject);
  });
}

describe('zero-code setup configured by env', () => {
  it('uses GRAYLANE_LANE_HEADER and GRAYLANE_BAGGAGE_KEY', async () => {
    const app = await startApp(['--import', '@graylane/sdk/register', 'test/fixtures/app.mjs'], {
      GRAYLANE_LANE_HEADER: 'x-swimlane',
      GRAYLANE_BAGGAGE_KEY: 'sl',
    });
    try {
      const seen = await getJson(`${app.url}/?client=fetch`, { 'x-swimlane': 'blue' });
      expect(seen).toEqual({ lane: null, swimlane: 'blue', baggage: 'sl=blue' });
    } finally {
      await stop(app.child);
    }
  });

  it('keeps the defaults, and says so, when a variable is invalid', async () => {
    const app = await startApp(['--import', '@graylane/sdk/register', 'test/fixtures/app.mjs'], {
      GRAYLANE_LANE_HEADER: 'not a header',
    });
    try {
      const seen = await getJson(`${app.url}/?client=http`, { 'x-lane': 'gray' });
      expect(seen).toMatchObject({ lane: 'gray', baggage: 'lane=gray' });
      expect(app.stderr()).toContain('"variable":"GRAYLANE_LANE_HEADER"');
    } finally {
      await stop(app.child);
    }
  });

  it('refuses only the bad variable: a valid lane header still applies, the refused one is named', async () => {
    const app = await startApp(['--import', '@graylane/sdk/register', 'test/fixtures/app.mjs'], {
      GRAYLANE_LANE_HEADER: 'x-swimlane',
      GRAYLANE_SERVED_HEADER: 'bad header',
    });
    try {
      const seen = await getJson(`${app.url}/?client=http`, { 'x-swimlane': 'gray' });
      expect(seen).toEqual({ lane: null, swimlane: 'gray', baggage: 'lane=gray' });
      expect(await servedHeader(`${app.url}/?client=http`)).toBe('up=stable');
      expect(app.stderr()).toContain('"variable":"GRAYLANE_SERVED_HEADER"');
      expect(app.stderr()).not.toContain('GRAYLANE_LANE_HEADER');
    } finally {
      await stop(app.child);
    }
  });
});
