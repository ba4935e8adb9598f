import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBin, startUpstream, tempDir, type Upstream } from './helpers.js';
import { rawExchange } from './raw-socket.js';

const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

/** Runs the bin to its end, for the cases where it must refuse to start. */
async function runToExit(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const [code] = await once(child, 'exit');
  return { code: code as number, stdout, stderr };
}

describe('graylane-proxy bin', () => {
  const dir = tempDir();
  const tableFile = join(dir.path, 'routes.json');
  let web: Upstream;
  let slow: Upstream;

  beforeAll(async () => {
    web = await startUpstream('web');
    slow = await startUpstream('slow', (_req, res) => {
      setTimeout(() => res.end('slow done'), 600);
    });
    writeFileSync(
      tableFile,
      JSON.stringify({
        apiVersion: 'graylane/v1',
        revision: 4,
        services: {
          web: { stable: { endpoints: [web.url] } },
          slow: { stable: { endpoints: [slow.url] } },
        },
        entrypoints: [
          { name: 'slow', match: { pathPrefix: '/slow' }, service: 'slow' },
          { name: 'web', service: 'web' },
        ],
      }),
    );
  });

  afterAll(async () => {
    await Promise.all([web.close(), slow.close()]);
    dir.cleanup();
  });

  it('prints its usage with --help', async () => {
    const { code, stdout } = await runToExit(['--help']);
    expect(code).toBe(0);
    for (const flag of [
      '--route-table',
      '--gateway',
      '--outbound',
      '--inbound',
      '--inbound-target',
      '--service',
      '--admin',
      '--config',
      '--log-level',
    ]) {
      expect(stdout).toContain(flag);
    }
  });

  it('refuses a bad flag with a one-line reason', async () => {
    const { code, stderr } = await runToExit(['--route-table', tableFile, '--gatway', ':0']);
    expect(code).not.toBe(0);
    expect(stderr.split('\n')[0]).toMatch(/^graylane-proxy: .*--gatway/);
  });

  it('refuses an invalid route table at start, naming the path', async () => {
    const bad = join(dir.path, 'bad.yaml');
    writeFileSync(
      bad,
      'apiVersion: graylane/v1\nrevision: 1\nservices:\n  web:\n    lanes:\n      Gray: { endpoints: [] }\n',
    );
    const { code, stderr } = await runToExit(['--route-table', bad, '--gateway', '127.0.0.1:0']);
    expect(code).not.toBe(0);
    expect(stderr).toContain(bad);
    expect(stderr).toMatch(/services\.web\.stable/);
  });

  it('refuses a port in use with one line naming the listener and the address', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(taken.address() as AddressInfo).port}`;
    try {
      const { code, stderr } = await runToExit([
        '--route-table',
        tableFile,
        '--admin',
        '127.0.0.1:0',
        '--gateway',
        address,
      ]);
      expect(code).toBe(2);
      expect(stderr.trim()).toBe(`graylane-proxy: cannot listen on gateway ${address}: EADDRINUSE`);
    } finally {
      taken.close();
    }
  });

  it('refuses a missing route table, naming the file', async () => {
    const missing = join(dir.path, 'nope.yaml');
    const { code, stderr } = await runToExit([
      '--route-table',
      missing,
      '--gateway',
      '127.0.0.1:0',
    ]);
    expect(code).not.toBe(0);
    expect(stderr).toContain(`${missing}: ENOENT`);
  });

  it('serves with the documented flags, reads GRAYLANE_* env, and drains on SIGTERM', async () => {
    const run = await runBin(
      ['--route-table', tableFile, '--gateway', '127.0.0.1:0', '--admin', '127.0.0.1:0'],
      { GRAYLANE_OUTBOUND: '127.0.0.1:0', GRAYLANE_LOG_LEVEL: 'info' },
      3,
    );
    const { gateway, admin, outbound } = run.listeners;
    expect(outbound).toBeDefined();
    const ready = await request(`${admin}/readyz`);
    expect(await ready.body.json()).toEqual({ status: 'ready', revision: 4 });
    const served = await request(`${gateway}/`);
    expect(served.statusCode).toBe(200);
    await served.body.dump();

    const inFlight = request(`${gateway}/slow`);
    await new Promise((resolve) => setTimeout(resolve, 150));
    run.child.kill('SIGTERM');
    const res = await inFlight;
    expect(await res.body.text()).toBe('slow done');
    const { code } = await run.exit;
    expect(code).toBe(0);
    await expect(request(`${gateway}/`)).rejects.toThrow();
  });

  it('parses strictly under node --insecure-http-parser: what the guard no longer scans is refused', async () => {
    const run = await runBin(
      ['--route-table', tableFile, '--gateway', '127.0.0.1:0'],
      { NODE_OPTIONS: '--insecure-http-parser' },
      1,
    );
    try {
      const port = Number(new URL(run.listeners.gateway!).port);
      const heads = [
        'GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\x00b\r\n\r\n',
        'GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\x7fb\r\n\r\n',
        'GET / HTTP/1.1\r\nHost: a\r\nX(bad): b\r\n\r\n',
        'GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n',
      ];
      for (const head of heads) {
        const reply = await rawExchange(port, head);
        expect(reply.status, JSON.stringify(head)).toBe(400);
        expect(reply.headers['x-graylane-error']).toBe('GRAYLANE_ERR_MALFORMED_REQUEST');
      }
      const fine = await rawExchange(
        port,
        'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Ok: a\tb\xe9\r\n\r\n',
      );
      expect(fine.status).toBe(200);
    } finally {
      run.child.kill('SIGTERM');
      await run.exit;
    }
  });
});
