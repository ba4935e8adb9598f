import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildApp, packageDir, startChildApp } from './child-app.js';
import { close, echo, getJson, listen } from './helpers.js';

/**
 * An app bundled by esbuild with the SDK inside, started with the register hook from node_modules:
 * two copies of the SDK in one process. Needs the built dist (`pnpm build`).
 */

let upstream: http.Server;
let upstreamUrl: string;
let outDir: string;

beforeAll(async () => {
  upstream = http.createServer(echo);
  upstreamUrl = await listen(upstream);
  outDir = await mkdtemp(join(tmpdir(), 'graylane-bundle-'));
});
afterAll(async () => {
  await close(upstream);
  await rm(outDir, { recursive: true, force: true });
});

/**
 * The ESM output needs a `require` for the CommonJS dependencies bundled into it (prom-client): the
 * banner esbuild's documentation gives for that.
 */
const ESM_REQUIRE_BANNER =
  "import { createRequire as __graylaneCreateRequire } from 'node:module'; const require = __graylaneCreateRequire(import.meta.url);";

async function bundle(format: 'cjs' | 'esm'): Promise<string> {
  const outfile = join(outDir, format === 'cjs' ? 'app.cjs' : 'app.mjs');
  await build({
    entryPoints: [join(packageDir, 'test/fixtures/bundle-app.mjs')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format,
    outfile,
    banner: format === 'esm' ? { js: ESM_REQUIRE_BANNER } : undefined,
    logLevel: 'silent',
  });
  return outfile;
}

describe.each(['cjs', 'esm'] as const)('an esbuild %s bundle with the SDK inside', (format) => {
  let app: ChildApp;
  beforeAll(async () => {
    app = await startChildApp(['--import', '@graylane/sdk/register', await bundle(format)], {
      UPSTREAM: upstreamUrl,
    });
  });
  afterAll(() => app?.stop());

  it("shares the register hook's context: getLane() and withLane() in the bundle work", async () => {
    expect(await getJson(app.url, { 'x-lane': 'gray' })).toEqual({
      lane: 'gray',
      inherited: 'gray',
      explicit: 'blue',
    });
    expect(await getJson(app.url)).toEqual({ lane: 'stable', inherited: null, explicit: 'blue' });
  });
});
