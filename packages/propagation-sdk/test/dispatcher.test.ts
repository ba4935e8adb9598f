import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { close, echo, getJson, listen } from './helpers.js';

/**
 * An app that sets undici's global dispatcher itself, run with the register hook (needs the built
 * dist, `pnpm build`): fetch and undici keep their tag, and a call through an Agent of the app's own
 * is named in a warning with the fix.
 */

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
let upstream: http.Server;
let app: { child: ChildProcess; url: string; stderr: () => string };

beforeAll(async () => {
  upstream = http.createServer(echo);
  const upstreamUrl = await listen(upstream);
  const child = spawn(
    process.execPath,
    ['--import', '@graylane/sdk/register', 'test/fixtures/dispatcher-app.mjs'],
    {
      cwd: packageDir,
      env: { ...process.env, UPSTREAM: upstreamUrl },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.once('data', (d: Buffer) => resolve(JSON.parse(d.toString()).port as number));
    child.once('exit', (code) => reject(new Error(`app exited with ${code}: ${stderr}`)));
  });
  app = { child, url: `http://127.0.0.1:${port}`, stderr: () => stderr };
});
afterAll(async () => {
  app?.child.kill();
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
    const warning = app
      .stderr()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((w) => String(w.msg).includes('laneInterceptor()'));
    expect(warning).toMatchObject({ lane: 'gray', client: 'undici' });
    expect(String(warning?.callSite)).toContain('test/fixtures/dispatcher-app.mjs:');
  });
});
