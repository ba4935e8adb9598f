import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanup,
  freePort,
  type RunningController,
  releaseDoc,
  runCli,
  startController,
  tempDir,
  yamlOf,
} from './graylane.js';

type ErrorBody = { error: { code: string; message: string; path?: string } };

const service = (name: string, port: number) => ({
  apiVersion: 'graylane.dev/v1alpha1',
  kind: 'Service',
  metadata: { name },
  spec: { stable: { version: 'v1', endpoints: [`http://127.0.0.1:${port}`] } },
});
const entry = {
  apiVersion: 'graylane.dev/v1alpha1',
  kind: 'Entrypoint',
  metadata: { name: 'shop' },
  spec: { service: 'frontend' },
};
const canary = (port: number) => ({ version: 'v2', endpoints: [`http://127.0.0.1:${port}`] });
const release = (name: string, spec: Record<string, unknown> = {}) =>
  releaseDoc(name, {
    lane: 'gray',
    entrypoint: 'shop',
    services: [
      { name: 'backend', canary: canary(9102) },
      { name: 'frontend', canary: canary(9101) },
    ],
    steps: [{ pause: {} }],
    ...spec,
  });

describe('the API: tokens, errors with paths, nothing half-applied', () => {
  let ctl: RunningController;
  let dir: string;
  const readToken = 'read-secret-123456';

  beforeAll(async () => {
    dir = tempDir();
    ctl = await startController({ stateDir: dir, args: ['--read-token', readToken] });
    const applied = await ctl.api(
      'POST',
      '/v1/apply',
      yamlOf([service('backend', 9002), service('frontend', 9001), entry]),
    );
    expect(applied.status).toBe(200);
  });

  afterAll(async () => {
    expect(await ctl.stop()).toBe(0);
    cleanup(dir);
  });

  it('prints the write token once, on first start, and keeps it 0600 in a 0700 directory', () => {
    const token = readFileSync(join(dir, 'token'), 'utf8').trim();
    expect(ctl.output()).toContain(token);
    expect(statSync(join(dir, 'token')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'state.json')).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('refuses writes without a token or with a wrong one (401), and route-table reads without the read token', async () => {
    const none = await ctl.api<ErrorBody>('POST', '/v1/apply', yamlOf([service('x', 9009)]), null);
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe('GRAYLANE_ERR_UNAUTHORIZED');
    const wrong = await ctl.api<ErrorBody>(
      'POST',
      '/v1/releases/x/approve',
      undefined,
      'not-the-token',
    );
    expect(wrong.status).toBe(401);
    expect((await ctl.api('DELETE', '/v1/services/backend', undefined, 'nope')).status).toBe(401);
    expect((await ctl.api('GET', '/v1/routetable', undefined, null)).status).toBe(401);
    const table = await ctl.api<{ revision: number }>(
      'GET',
      '/v1/routetable',
      undefined,
      readToken,
    );
    expect(table.status).toBe(200);
    expect(table.body.revision).toBeGreaterThan(0);
    // The read token does not write.
    expect(
      (await ctl.api('POST', '/v1/apply', yamlOf([service('x', 9009)]), readToken)).status,
    ).toBe(401);
    expect((await ctl.api<{ items: unknown[] }>('GET', '/v1/services')).body.items).toHaveLength(2);
  });

  const refusals: Array<[string, unknown, number, string, string]> = [
    [
      'unknown service',
      release('r1', { services: [{ name: 'payments', canary: canary(9103) }] }),
      422,
      'spec.services[0].name',
      'unknown service "payments"',
    ],
    [
      'unknown entrypoint',
      release('r1', { entrypoint: 'nope' }),
      422,
      'spec.entrypoint',
      'unknown entrypoint',
    ],
    [
      'a lane that is not a DNS label',
      release('r1', { lane: 'Gray_1' }),
      422,
      'spec.lane',
      'DNS label',
    ],
    ['the stable lane', release('r1', { lane: 'stable' }), 422, 'spec.lane', 'default lane'],
    [
      'a weight out of range',
      release('r1', { steps: [{ weight: 150 }] }),
      422,
      'spec.steps[0].weight',
      'between 0 and 100',
    ],
    ['no steps', release('r1', { steps: [] }), 422, 'spec.steps', 'at least one step'],
    ['a step that is neither', release('r1', { steps: [{ wait: 3 }] }), 422, 'spec.steps[0]', ''],
    [
      'a bad duration',
      release('r1', { steps: [{ pause: { duration: 'forever' } }] }),
      422,
      'spec.steps[0].pause.duration',
      'positive duration',
    ],
    [
      'a dependency cycle',
      release('r1', {
        services: [
          { name: 'backend', canary: canary(9102), dependsOn: ['frontend'] },
          { name: 'frontend', canary: canary(9101), dependsOn: ['backend'] },
        ],
      }),
      422,
      'spec.services[0].dependsOn',
      'dependency cycle backend -> frontend -> backend',
    ],
    [
      'a service listed twice',
      release('r1', {
        services: [
          { name: 'backend', canary: canary(9102) },
          { name: 'backend', canary: canary(9103) },
        ],
      }),
      422,
      'spec.services[1].name',
      'listed twice',
    ],
    [
      'a canary on a stable endpoint',
      release('r1', { services: [{ name: 'backend', canary: canary(9002) }] }),
      422,
      'spec.services[0].canary.endpoints',
      'also a stable endpoint',
    ],
    ['an unknown field', release('r1', { colour: 'blue' }), 422, 'spec', 'colour'],
    [
      'an image in local mode',
      release('r1', {
        services: [{ name: 'backend', canary: { version: 'v2', image: 'backend:2' } }],
      }),
      422,
      'spec.services[0].canary.image',
      'for Kubernetes mode',
    ],
    [
      'both endpoints and run',
      release('r1', {
        services: [
          {
            name: 'backend',
            canary: { version: 'v2', endpoints: ['http://127.0.0.1:1'], run: { command: 'x' } },
          },
        ],
      }),
      422,
      'spec.services[0].canary',
      'exactly one of endpoints, run, or image/patch',
    ],
  ];

  it.each(refusals)(
    'refuses %s with a path-named error and stores nothing',
    async (_what, doc, status, path, text) => {
      const before = (await ctl.api<{ items: unknown[] }>('GET', '/v1/releases')).body.items.length;
      const res = await ctl.api<ErrorBody>('POST', '/v1/apply', yamlOf([doc]));
      expect(res.status).toBe(status);
      expect(res.body.error.code).toBe('GRAYLANE_ERR_INVALID_DOCUMENT');
      expect(res.body.error.path).toBe(path);
      expect(res.body.error.message).toContain(text);
      expect((await ctl.api<{ items: unknown[] }>('GET', '/v1/releases')).body.items.length).toBe(
        before,
      );
    },
  );

  it('refuses a second release of the same lane (409 naming both) and applies several documents all or nothing', async () => {
    expect(
      (
        await ctl.api(
          'POST',
          '/v1/apply',
          yamlOf([release('first', { services: [{ name: 'backend', canary: canary(9102) }] })]),
        )
      ).status,
    ).toBe(200);
    const clash = await ctl.api<ErrorBody>(
      'POST',
      '/v1/apply',
      yamlOf([release('second', { services: [{ name: 'frontend', canary: canary(9101) }] })]),
    );
    expect(clash.status).toBe(409);
    expect(clash.body.error.code).toBe('GRAYLANE_ERR_CONFLICT');
    expect(clash.body.error.message).toContain('lane gray is already used by release first');
    // One bad document in three: none is applied.
    const mixed = await ctl.api<ErrorBody>(
      'POST',
      '/v1/apply',
      yamlOf([
        service('extra', 9010),
        release('third', { lane: 'blue', services: [{ name: 'ghost', canary: canary(9104) }] }),
      ]),
    );
    expect(mixed.status).toBe(422);
    expect((await ctl.api('GET', '/v1/services/extra')).status).toBe(404);
    // A service in an active release cannot change under it; deleting the release while active is refused.
    const changed = await ctl.api<ErrorBody>(
      'POST',
      '/v1/apply',
      yamlOf([service('backend', 9020)]),
    );
    expect(changed.status).toBe(409);
    expect((await ctl.api<ErrorBody>('DELETE', '/v1/releases/first')).status).toBe(409);
    expect((await ctl.api('POST', '/v1/releases/first/rollback')).status).toBe(200);
    await ctl.waitForPhase('first', 'RolledBack');
    expect((await ctl.api('DELETE', '/v1/releases/first')).status).toBe(204);
  });

  it('answers unknown routes and actions with 404 and malformed bodies with 4xx, as JSON', async () => {
    const missing = await ctl.api<ErrorBody>('GET', '/v1/releases/nope');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('GRAYLANE_ERR_NOT_FOUND');
    expect((await ctl.api<ErrorBody>('POST', '/v1/releases/nope/dance')).status).toBe(404);
    const garbage = await ctl.api<ErrorBody>('POST', '/v1/apply', 'kind: [unclosed');
    expect(garbage.status).toBe(422);
    expect(garbage.body.error.code).toBe('GRAYLANE_ERR_INVALID_DOCUMENT');
  });
});

/** `graylane controller` on a free API port over `dir`, run to its end. */
async function runControllerCli(dir: string, ...args: string[]) {
  return runCli([
    '--state-dir',
    dir,
    'controller',
    '--listen',
    `127.0.0.1:${await freePort()}`,
    ...args,
  ]);
}

describe('the state directory', () => {
  it('refuses a second controller on the same directory with one line and exit 2', async () => {
    const dir = tempDir();
    const first = await startController({ stateDir: dir });
    try {
      const second = await runControllerCli(dir);
      expect(second.code).toBe(2);
      expect(second.stderr.trim()).toBe(
        `graylane: another controller (pid ${first.child.pid}) uses the state directory ${dir}; stop it first or pick another --state-dir`,
      );
    } finally {
      await first.stop();
      cleanup(dir);
    }
  });

  it.each([
    ['damaged', '{"format": 1, "revision": 3, "servi'],
    ['not a state file', '{"hello": "world"}'],
  ])(
    'refuses to start over a %s state file, names it, and leaves it as it was',
    async (_what, text) => {
      const dir = tempDir();
      const first = await startController({ stateDir: dir });
      await first.stop();
      writeFileSync(join(dir, 'state.json'), text);
      const res = await runControllerCli(dir);
      expect(res.code).toBe(2);
      expect(res.stderr).toContain(join(dir, 'state.json'));
      expect(res.stderr).toContain('will not start over it');
      expect(res.stderr.trim().split('\n')).toHaveLength(1);
      expect(readFileSync(join(dir, 'state.json'), 'utf8')).toBe(text);
      cleanup(dir);
    },
  );

  it('exits 2 naming the port when the --gateway port is taken', async () => {
    const dir = tempDir();
    const taken = createServer((_req, res) => res.end('someone else'));
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const gateway = `127.0.0.1:${(taken.address() as AddressInfo).port}`;
    try {
      const res = await runControllerCli(dir, '--gateway', gateway);
      expect(res.code, res.stderr).toBe(2);
      expect(res.stderr).toContain(
        `the proxy for --gateway ${gateway} did not start: graylane-proxy: cannot listen on gateway ${gateway}: EADDRINUSE`,
      );
    } finally {
      taken.close();
      cleanup(dir);
    }
  });

  it('reports a bad flag value with one line and exit 2', async () => {
    const res = await runCli(['--state-dir', tempDir(), 'controller', '--listen', 'nonsense:port']);
    expect(res.code).toBe(2);
    expect(res.stderr.trim()).toBe('graylane: not HOST:PORT: nonsense:port');
  });
});
