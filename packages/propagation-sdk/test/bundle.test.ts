import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { close, echo, getJson, listen } from './helpers.js';

/**
 * An app bundled by esbuild with the SDK inside, started with the register hook from node_modules:
 * two copies of the SDK in one process. Needs the built dist (`pnpm build`).
 */

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
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

async function start(file: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', '@graylane/sdk/register', file], {
    cwd: packageDir,
    env: { ...process.env, UPSTREAM: upstreamUrl },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.once('data', (d: Buffer) => resolve(JSON.parse(d.toString()).port as number));
    child.once('exit', (code) => reject(new Error(`bundle exited with ${code}: ${stderr}`)));
  });
  return { child, url: `http://127.0.0.1:${port}` };
}

describe.each(['cjs', 'esm'] as const)('an esbuild %s bundle with the SDK inside', (format) => {
  let app: { child: ChildProcess; url: string };
  beforeAll(async () => {
    app = await start(await bundle(format));
  });
  afterAll(() => {
    app?.child.kill();
  });

  it("shares the register hook's context: getLane() and withLane() in the bundle work", async () => {
    expect(await getJson(app.url, { 'x-lane': 'gray' })).toEqual({
      lane: 'gray',
      inherited: 'gray',
      explicit: 'blue',
    });
    expect(await getJson(app.url)).toEqual({ lane: 'stable', inherited: null, explicit: 'blue' });
  });
});
