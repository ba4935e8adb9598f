import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { close, echo, getJson, listen } from './helpers.js';

/**
 * The SDK installed as a user installs it: `pnpm pack` of the SDK and lane-core (what `pnpm
 * publish` uploads), `npm install` of the tarballs into an empty directory outside the workspace,
 * with Express from the registry, and the README's quick start run as written. Needs the built dist
 * (`pnpm build`) and the npm registry.
 */

const run = promisify(execFile);
const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const packagesDir = join(packageDir, '..');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'graylane-install-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The first ```js block of the README's quick start. */
async function quickStartApp(): Promise<string> {
  const readme = await readFile(join(packageDir, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Quick start'));
  const block = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  if (block === undefined) throw new Error('no js block in the quick start');
  return block;
}

async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitForListening(port: number, exited: () => string | undefined): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const failure = exited();
    if (failure !== undefined) throw new Error(failure);
    const up = await new Promise<boolean>((resolve) => {
      http
        .get(`http://127.0.0.1:${port}/healthz-probe`, (res) => {
          res.resume();
          resolve(true);
        })
        .on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the quick-start app did not listen');
}

describe.each([
  ['lane-core', ['dist/index.js', 'dist/index.d.ts', 'README.md', 'CHANGELOG.md']],
  ['propagation-sdk', ['dist/index.js', 'dist/register.js', 'register.cjs', 'CHANGELOG.md']],
  ['router-proxy', ['dist/index.js', 'dist/main.js', 'README.md', 'CHANGELOG.md']],
] as const)('%s is publishable', (name, expected) => {
  it('npm pack --dry-run is clean: what users need, no tests', async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--loglevel=error'], {
      cwd: join(packagesDir, name),
    });
    const [pack] = JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>;
    const files = pack?.files.map((f) => f.path) ?? [];
    expect(files).toEqual(expect.arrayContaining([...expected, 'package.json']));
    expect(files.filter((f) => f.startsWith('test/') || f.includes('.test.'))).toEqual([]);
  });
});

it.each(['propagation-sdk', 'router-proxy'])(
  'npm pack of %s, which would ship workspace: as is, stops with a message naming pnpm',
  async (name) => {
    const failed = await run('npm', ['pack', '--pack-destination', dir], {
      cwd: join(packagesDir, name),
    }).then(
      () => undefined,
      (err: { stderr: string }) => err.stderr,
    );
    expect(failed).toContain('pack or publish with pnpm');
  },
);

describe('installed from packed tarballs with npm, no workspace', () => {
  it('packs with the lane-core dependency as a version, not workspace:', async () => {
    for (const name of ['lane-core', 'propagation-sdk']) {
      await run('pnpm', ['pack', '--pack-destination', dir], { cwd: join(packagesDir, name) });
    }
    const tarballs = (await readdir(dir)).filter((f) => f.endsWith('.tgz')).sort();
    expect(tarballs).toEqual(['graylane-lane-core-0.1.0.tgz', 'graylane-sdk-0.1.0.tgz']);
    await writeFile(
      join(dir, 'package.json'),
      JSON.stringify({ name: 'quick-start', private: true }),
    );
    await run(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
        './graylane-lane-core-0.1.0.tgz',
        './graylane-sdk-0.1.0.tgz',
        'express@5',
      ],
      { cwd: dir },
    );
    const installed = JSON.parse(
      await readFile(join(dir, 'node_modules/@graylane/sdk/package.json'), 'utf8'),
    ) as { dependencies: Record<string, string> };
    expect(installed.dependencies['@graylane/lane-core']).toBe('^0.1.0');
  }, 180_000);

  it("runs the README's quick start as written: the lane reaches the backend", async () => {
    const backend = http.createServer(echo);
    const backendUrl = await listen(backend);
    await writeFile(join(dir, 'app.mjs'), await quickStartApp());
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', '@graylane/sdk/register', 'app.mjs'], {
      cwd: dir,
      env: { ...process.env, BACKEND: backendUrl, PORT: String(port) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    try {
      await waitForListening(port, () =>
        child.exitCode === null ? undefined : `app exited with ${child.exitCode}: ${stderr}`,
      );
      const app = `http://127.0.0.1:${port}/`;
      expect(await getJson(app, { 'x-lane': 'gray' })).toMatchObject({
        lane: 'gray',
        baggage: 'lane=gray',
      });
      expect(await getJson(app)).toMatchObject({ lane: null, baggage: null });
    } finally {
      child.kill();
      await close(backend);
    }
  });
});
