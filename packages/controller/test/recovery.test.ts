import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Release } from '../src/release/status.js';
import {
  cleanup,
  freePorts,
  hit,
  managedPids,
  type RunningController,
  runningApps,
  runSpec,
  shopRelease,
  startController,
  startShop,
  tempDir,
  until,
  yamlOf,
} from './graylane.js';

/**
 * `kill -9` of the controller in each phase of a release, then a restart on the same state
 * directory: the release resumes where it was, managed processes are adopted (same pids, never a
 * second copy), and the route-table revision never goes down.
 */
describe('kill -9 in every phase, then restart', { timeout: 120_000 }, () => {
  let dir: string;
  let ports: { port: number; gatewayPort: number; outboundPort: number };
  let ctl: RunningController;
  const results: string[] = [];

  const start = () => startController({ stateDir: dir, ...ports, args: ['--drain', '2s'] });
  const revisionOnDisk = () =>
    (JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { revision: number }).revision;
  const appKeys = () =>
    runningApps()
      .map((a) => `${a.name} ${a.version} ${a.pid}`)
      .sort();

  beforeAll(async () => {
    dir = tempDir();
    ports = {
      ...(await freePorts(3).then(([port, gatewayPort, outboundPort]) => ({
        port,
        gatewayPort,
        outboundPort,
      }))),
    };
    ctl = await startShop({ stateDir: dir, ...ports, args: ['--drain', '2s'] });
  });

  afterAll(async () => {
    await ctl.stop();
    cleanup(dir);
    // The figures for the closing note.
    process.stdout.write(`kill -9 results:\n${results.join('\n')}\n`);
  });

  /** Kills the controller once `inPhase` holds, restarts it, and checks what must survive. */
  async function killAndRestart(
    name: string,
    inPhase: (r: Release) => boolean,
    proxyFrozen = false,
  ): Promise<Release> {
    const before = await until(() => ctl.release(name), inPhase, 20_000);
    const revision = revisionOnDisk();
    ctl.child.kill('SIGKILL');
    await ctl.stop('SIGKILL').catch(() => null);
    // What the state on disk records at the kill: those must be adopted. A process spawned in the
    // instant before its pid was written is an orphan: stopped and started again, never doubled.
    const recorded = new Set(managedPids(dir));
    const apps = appKeys().filter((key) => recorded.has(Number(key.split(' ').at(-1))));
    // Traffic keeps flowing through the proxy while the controller is gone.
    if (!proxyFrozen) expect((await hit(ctl.gateway!)).status).toBe(200);
    ctl = await start();
    const after = await ctl.release(name);
    const table = (await ctl.api<{ revision: number }>('GET', '/v1/routetable')).body;
    expect(table.revision).toBeGreaterThanOrEqual(revision);
    // Every process that ran is adopted as it was: the same pids, nothing started twice.
    // The managed proxy reconnects and serves the controller's revision; it never went below it.
    const proxyAdmin = (
      await ctl.api<{ processes: Array<{ id: string; port: number }> }>('GET', '/v1/status')
    ).body.processes.find((p) => p.id.startsWith('graylane-proxy'))!.port;
    if (!proxyFrozen) {
      const ready = await until(
        () =>
          request(`http://127.0.0.1:${proxyAdmin}/readyz`).then(
            (r) => r.body.json() as Promise<{ revision?: number }>,
          ),
        (r) => r.revision !== undefined && r.revision >= table.revision,
      );
      expect(ready.revision).toBeGreaterThanOrEqual(revision);
    }
    const now = appKeys();
    for (const app of apps)
      if (!before.status.phase.startsWith('Final')) expect(now).toContain(app);
    // One reading of the process list: a canary that starts between two readings is not a double.
    const running = runningApps().map((a) => `${a.name} ${a.version}`);
    expect(new Set(running).size).toBe(running.length);
    results.push(
      `${before.status.phase} -> restarted in ${after.status.phase} (revision ${revision} -> ${table.revision}, ${apps.length} processes adopted)`,
    );
    return after;
  }

  it('Deploying', async () => {
    const release = shopRelease('r-deploying', [
      { weight: 20 },
      { pause: {} },
      { pause: { duration: '10m' } },
    ]);
    (release.spec as { services: Array<{ canary: { run: unknown } }> }).services[1]!.canary.run =
      runSpec('frontend', 'v2', { CALLS: 'backend', READY_DELAY_MS: '2500' });
    expect((await ctl.api('POST', '/v1/apply', yamlOf([release]))).status).toBe(200);
    await killAndRestart(
      'r-deploying',
      (r) => r.status.phase === 'Deploying' && r.status.services.frontend?.canary === 'deploying',
    );
    await ctl.waitForPhase('r-deploying', 'Paused');
    expect((await hit(ctl.gateway!, { 'x-lane': 'gray' })).served).toBe(
      'frontend=gray, backend=gray',
    );
  });

  it('Paused (waiting for approval), then Progressing', async () => {
    await killAndRestart('r-deploying', (r) => r.status.phase === 'Paused');
    expect((await ctl.release('r-deploying')).status.awaitingApproval).toBe(true);
    expect((await ctl.cli('approve', 'r-deploying')).code).toBe(0);
  });

  it('RollingBack', async () => {
    expect((await ctl.cli('rollback', 'r-deploying')).code).toBe(0);
    await killAndRestart('r-deploying', (r) => r.status.phase === 'RollingBack');
    await ctl.waitForPhase('r-deploying', 'RolledBack');
    expect(runningApps().filter((a) => a.version === 'v2')).toEqual([]);
  });

  it('Progressing (a timed pause), then Finalising', async () => {
    expect(
      (
        await ctl.api(
          'POST',
          '/v1/apply',
          yamlOf([shopRelease('r-final', [{ weight: 10 }, { pause: { duration: '10m' } }])]),
        )
      ).status,
    ).toBe(200);
    const after = await killAndRestart(
      'r-final',
      (r) => r.status.phase === 'Progressing' && r.status.step === 1,
    );
    expect(after.status.step).toBe(1);
    // A frozen old frontend holds Finalising open: its SIGTERM waits, SIGKILL comes after the grace.
    const oldFrontend = runningApps().find((a) => a.name === 'frontend' && a.version === 'v1')!;
    process.kill(oldFrontend.pid, 'SIGSTOP');
    expect((await ctl.api('POST', '/v1/releases/r-final/promote')).status).toBe(200);
    await killAndRestart('r-final', (r) => r.status.phase === 'Finalising');
    await ctl.waitForPhase('r-final', 'Succeeded');
    expect((await hit(ctl.gateway!)).body).toBe('frontend v2 -> backend v2');
    expect(
      runningApps()
        .map((a) => `${a.name} ${a.version}`)
        .sort(),
    ).toEqual(['backend v2', 'frontend v2']);
  });

  it('Promoting (a proxy has not applied the promotion yet)', async () => {
    const release = shopRelease('r-promoting', [{ pause: {} }]);
    const spec = release.spec as { services: Array<{ canary: { version: string; run: unknown } }> };
    spec.services[0]!.canary = { version: 'v3', run: runSpec('backend', 'v3') };
    spec.services[1]!.canary = {
      version: 'v3',
      run: runSpec('frontend', 'v3', { CALLS: 'backend' }),
    };
    expect((await ctl.api('POST', '/v1/apply', yamlOf([release]))).status).toBe(200);
    await ctl.waitForPhase('r-promoting', 'Paused');
    // A frozen proxy never acknowledges the promotion, so the release waits in Promoting.
    const proxyPid = (
      await ctl.api<{ processes: Array<{ id: string; pid: number }> }>('GET', '/v1/status')
    ).body.processes.find((p) => p.id.startsWith('graylane-proxy'))!.pid;
    process.kill(proxyPid, 'SIGSTOP');
    try {
      expect((await ctl.cli('promote', 'r-promoting')).code).toBe(0);
      await killAndRestart('r-promoting', (r) => r.status.phase === 'Promoting', true);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect((await ctl.release('r-promoting')).status.phase).toBe('Promoting');
    } finally {
      process.kill(proxyPid, 'SIGCONT');
    }
    await ctl.waitForPhase('r-promoting', 'Succeeded', 30_000);
    expect((await hit(ctl.gateway!)).body).toBe('frontend v3 -> backend v3');
  });
});
