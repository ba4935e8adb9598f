import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { judge, parseExpectation, problemsOf } from '../src/cli/check.js';
import {
  cleanup,
  entrypointDoc,
  freePort,
  type RunningController,
  runningApps,
  shopDocuments,
  shopRelease,
  startController,
  tempDir,
  until,
  yamlOf,
} from './graylane.js';

describe('graylane check: the verdict on one path', () => {
  it.each([
    ['frontend=gray, backend=gray', undefined, []],
    // backend has no lane gray: stable is what the lane means there
    ['frontend=gray, backend=stable;fallback=absent', undefined, []],
    [
      'frontend=gray, backend=stable;fallback=connect_error',
      undefined,
      ['backend has lane gray but was served by stable (fallback: connect_error)'],
    ],
    [
      'frontend=gray, backend=none;fallback=unavailable',
      undefined,
      ['backend has lane gray but was served by none (fallback: unavailable)'],
    ],
    ['frontend=stable, backend=gray', undefined, ['frontend got the request without the lane tag']],
    ['', undefined, ['no x-lane-served header: the path cannot be checked']],
    ['frontend=gray, ???', undefined, ['unreadable hop "???"']],
    [
      'frontend=gray, backend=stable;fallback=absent',
      { frontend: 'gray', backend: 'gray' },
      ['backend was served by stable (fallback: absent), expected gray'],
    ],
    ['frontend=gray, backend=stable;fallback=absent', { backend: 'stable' }, []],
    ['frontend=gray', { frontend: 'gray', backend: 'gray' }, ['backend is not on the path']],
  ] as const)('%s expecting %j', (served, expectation, problems) => {
    expect(problemsOf(served, 'gray', expectation)).toEqual(problems);
  });

  it('counts requests per path, judges each path, and fails when any request left the lane', () => {
    const report = judge(
      [
        { status: 200, served: 'a=gray' },
        { status: 502, served: 'a=stable;fallback=connect_error' },
        { status: 200, served: 'a=gray' },
      ],
      { entry: 'http://x/', lane: 'gray' },
    );
    expect(report.paths.map((p) => [p.served, p.count, p.statuses])).toEqual([
      ['a=gray', 2, { 200: 2 }],
      ['a=stable;fallback=connect_error', 1, { 502: 1 }],
    ]);
    expect(report.failed).toBe(1);
    expect(report.ok).toBe(false);
    expect(judge([], { entry: 'http://x/', lane: 'gray' }).ok).toBe(false);
  });

  it('reads SERVICE=LANE lists and names the part it cannot read', () => {
    expect(parseExpectation('frontend=gray, backend=stable')).toEqual({
      frontend: 'gray',
      backend: 'stable',
    });
    expect(parseExpectation('frontend=gray,backend')).toBe(
      '--expect: "backend" is not SERVICE=LANE',
    );
  });
});

describe('graylane check against a real controller, proxies and processes', () => {
  let ctl: RunningController;
  let dir: string;
  let entry: string;

  beforeAll(async () => {
    dir = tempDir();
    ctl = await startController({
      stateDir: dir,
      gatewayPort: await freePort(),
      outboundPort: await freePort(),
    });
    entry = `${ctl.gateway}/`;
    expect((await ctl.api('POST', '/v1/apply', yamlOf(shopDocuments()))).status).toBe(200);
    const release = shopRelease('chk', [{ pause: {} }]);
    expect((await ctl.api('POST', '/v1/apply', yamlOf([release]))).status).toBe(200);
    await ctl.waitForPhase('chk', 'Paused', 60_000);
  }, 90_000);

  afterAll(async () => {
    expect(await ctl.stop()).toBe(0);
    expect(runningApps()).toEqual([]);
    cleanup(dir);
  });

  const check = (...args: string[]) => ctl.cli('check', '--entry', entry, ...args);

  it('passes when every hop that has the lane served it, and prints the paths with counts', async () => {
    const result = await check('--lane', 'gray', '-n', '10');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      [
        `10 requests to ${entry} in lane gray`,
        '  ok   10  frontend=gray, backend=gray  [200]',
        'ok: every request stayed in lane gray wherever a service has it',
        '',
      ].join('\n'),
    );
  });

  it('fails with --expect when a hop differs, and derives the expectation from --release', async () => {
    const differs = await check('--lane', 'gray', '-n', '3', '--expect', 'backend=stable');
    expect(differs.code).toBe(1);
    expect(differs.stdout).toContain('backend was served by gray, expected stable');
    expect(differs.stdout).toContain('FAIL: 3 of 3 requests left lane gray');

    const fromRelease = await check('--lane', 'gray', '-n', '5', '--release', 'chk', '-o', 'json');
    expect(fromRelease.code).toBe(0);
    const report = JSON.parse(fromRelease.stdout);
    expect(report.expect).toEqual({ backend: 'gray', frontend: 'gray' });
    expect(report.paths).toEqual([
      { served: 'frontend=gray, backend=gray', statuses: { 200: 5 }, count: 5, problems: [] },
    ]);
    expect(report.ok).toBe(true);
  });

  it('refuses bad usage with one line and exit 2', async () => {
    const bad = await check('--lane', 'Gray!');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('graylane: --lane: not a lane name (a DNS label): Gray!\n');
    const other = await check('--lane', 'blue', '--release', 'chk');
    expect(other.code).toBe(2);
    expect(other.stderr).toBe('graylane: --release chk is lane gray, not blue\n');
  });

  it('fails when a tagged request lost its tag on the way (the entry strips client lanes)', async () => {
    const strict = {
      ...entrypointDoc('shop', 'frontend'),
      spec: { service: 'frontend', clientLanes: 'off' },
    };
    expect((await ctl.api('POST', '/v1/apply', yamlOf([strict]))).status).toBe(200);
    const lost = await until(
      () => check('--lane', 'gray', '-n', '2'),
      (r) => r.code === 1,
    );
    expect(lost.stdout).toContain('  FAIL 2  frontend=stable, backend=stable  [200]');
    expect(lost.stdout).toContain('frontend got the request without the lane tag');
    const open = entrypointDoc('shop', 'frontend');
    expect((await ctl.api('POST', '/v1/apply', yamlOf([open]))).status).toBe(200);
    await until(
      () => check('--lane', 'gray', '-n', '1'),
      (r) => r.code === 0,
    );
  });

  it('fails when a service that has the lane did not serve it (its canary is unreachable)', async () => {
    expect((await ctl.cli('rollback', 'chk')).code).toBe(0);
    await ctl.waitForPhase('chk', 'RolledBack');
    // A canary run by someone else, at a port where nothing listens: the proxy falls back to stable.
    const broken = shopRelease('broken', [{ pause: {} }]);
    const closed = await freePort();
    (broken.spec.services as Array<{ canary: unknown }>)[0]!.canary = {
      version: 'v2',
      endpoints: [`http://127.0.0.1:${closed}`],
    };
    expect((await ctl.api('POST', '/v1/apply', yamlOf([broken]))).status).toBe(200);
    await ctl.waitForPhase('broken', 'Paused', 60_000);
    const result = await check('--lane', 'gray', '-n', '4', '--release', 'broken');
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /FAIL +4 {2}frontend=gray, backend=stable;fallback=\w+ {2}\[200\]/,
    );
    expect(result.stdout).toMatch(/backend was served by stable \(fallback: \w+\), expected gray/);
    expect((await ctl.cli('rollback', 'broken')).code).toBe(0);
    await ctl.waitForPhase('broken', 'RolledBack');
  }, 90_000);
});
