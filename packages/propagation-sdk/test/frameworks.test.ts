import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildApp, startChildApp } from './child-app.js';
import { close, listen } from './helpers.js';

/**
 * Inbound frameworks as users run them: the real package (pinned in the SDK's devDependencies) in a
 * child process started with `--import @graylane/sdk/register`, no graylane code in the app. Each
 * request's body is parsed by the framework before the handler calls out. Needs the built dist.
 */

const FRAMEWORKS = ['fastify', 'koa', 'hapi', 'nest-express', 'nest-fastify'] as const;
const LANES = ['gray', 'blue', 'green', 'stable'] as const;

/** The lane header each upstream call carried, by the id it was made for. */
const seen = new Map<string, string | null>();
let upstream: http.Server;
let upstreamUrl: string;

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    const id = new URL(req.url ?? '/', 'http://x').searchParams.get('id') ?? '';
    const lane = req.headers['x-lane'];
    seen.set(id, Array.isArray(lane) ? lane.join('|') : (lane ?? null));
    // As a sidecar would answer: its provenance hop, which the app relays on its own response.
    res.setHeader('x-lane-served', `up=${lane ?? 'stable'}`);
    res.end('{}');
  });
  upstreamUrl = await listen(upstream);
});
afterAll(() => close(upstream));

async function post(app: ChildApp, id: string, lane: string) {
  const res = await fetch(`${app.url}/call`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(lane === 'stable' ? {} : { 'x-lane': lane }),
    },
    body: JSON.stringify({ id }),
  });
  return { body: (await res.json()) as unknown, served: res.headers.get('x-lane-served') };
}

describe.each(FRAMEWORKS)('%s inbound, with the register hook only', (framework) => {
  let app: ChildApp;
  beforeAll(async () => {
    app = await startChildApp(
      ['--import', '@graylane/sdk/register', 'test/fixtures/frameworks-app.mjs'],
      {
        FRAMEWORK: framework,
        UPSTREAM: upstreamUrl,
      },
    );
  });
  afterAll(() => app.stop());

  it('200 requests over four lanes, 100 at a time: each call carries its own lane', async () => {
    const runs = Array.from({ length: 200 }, (_, i) => ({
      id: `${framework}-${i}`,
      lane: LANES[i % LANES.length] as string,
    }));
    for (let i = 0; i < runs.length; i += 100) {
      const batch = runs.slice(i, i + 100);
      const answers = await Promise.all(batch.map(({ id, lane }) => post(app, id, lane)));
      answers.forEach(({ body, served }, j) => {
        const lane = batch[j]?.lane as string;
        expect(body).toEqual({ outcome: 'ok' });
        // The hop of the app's own call, relayed on its response.
        expect(served).toBe(`up=${lane}`);
      });
    }
    const wrong = runs.filter(({ id, lane }) => (seen.get(id) ?? 'stable') !== lane);
    expect(wrong).toEqual([]);
    expect(runs.every(({ id }) => seen.has(id))).toBe(true);
    expect(app.warnings()).toEqual([]);
  });
});
