import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanup,
  hit,
  type RunningController,
  runningApps,
  runSpec,
  shopRelease,
  startShop,
  tempDir,
  until,
  yamlOf,
} from './graylane.js';

const canaries = () => runningApps().filter((a) => a.version !== 'v1');

describe('rollback from each phase, a crashing canary, a canary that never gets ready', {
  timeout: 90_000,
}, () => {
  let ctl: RunningController;
  let dir: string;

  beforeAll(async () => {
    dir = tempDir();
    ctl = await startShop({ stateDir: dir });
  });

  afterAll(async () => {
    expect(await ctl.stop()).toBe(0);
    cleanup(dir);
  });

  async function apply(doc: unknown) {
    const res = await ctl.api('POST', '/v1/apply', yamlOf([doc]));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  }

  async function rollBackAndCheck(name: string, entryWasRouted = true) {
    const cli = await ctl.cli('rollback', name);
    expect(cli.stdout).toBe(`release/${name} rollback: RollingBack\n`);
    const done = await ctl.waitForPhase(name, 'RolledBack');
    const reasons = done.status.events.map((e) => e.reason);
    const closed = reasons.indexOf('EntryClosed');
    if (entryWasRouted) expect(closed).toBeGreaterThan(reasons.indexOf('RollbackRequested'));
    else expect(closed).toBe(-1);
    // Top-down: the frontend leaves before the backend, and only after the entry closed.
    const removing = done.status.events.filter(
      (e) => e.reason === 'CanaryRemoving' || e.reason === 'CanaryUnrouted',
    );
    expect(removing.map((e) => (e.message.includes('frontend') ? 'frontend' : 'backend'))[0]).toBe(
      'frontend',
    );
    expect(canaries()).toEqual([]);
    expect((await hit(ctl.gateway!, { 'x-lane': 'gray' })).body).toBe('frontend v1 -> backend v1');
    expect((await ctl.api('DELETE', `/v1/releases/${name}`)).status).toBe(204);
    return done;
  }

  it('rolls back while deploying (the frontend canary not ready yet)', async () => {
    const release = shopRelease('during-deploy', [{ weight: 50 }]);
    (release.spec as { services: Array<{ canary: { run: unknown } }> }).services[1]!.canary.run =
      runSpec('frontend', 'v2', { CALLS: 'backend', READY_DELAY_MS: '60000' });
    await apply(release);
    await until(
      () => ctl.release('during-deploy'),
      (r) => r.status.services.frontend?.canary === 'deploying',
    );
    expect((await ctl.release('during-deploy')).status.phase).toBe('Deploying');
    await rollBackAndCheck('during-deploy', false);
  });

  it('rolls back while progressing (a timed pause) and while paused for approval', async () => {
    await apply(shopRelease('during-progress', [{ weight: 20 }, { pause: { duration: '10m' } }]));
    const progressing = await until(
      () => ctl.release('during-progress'),
      (r) => r.status.step === 1,
    );
    expect(progressing.status.phase).toBe('Progressing');
    await rollBackAndCheck('during-progress');

    await apply(shopRelease('during-pause', [{ pause: {} }]));
    await ctl.waitForPhase('during-pause', 'Paused');
    const rolled = await rollBackAndCheck('during-pause');
    expect(rolled.status.awaitingApproval).toBe(false);
    // Idempotent: a second rollback of an ended release is fine.
    expect((await ctl.cli('rollback', 'during-pause')).code).toBe(1); // deleted above: not found
  });

  it('pauses when a routed canary crashes; proxies fall back meanwhile; it returns and the release resumes', async () => {
    await apply(shopRelease('crash', [{ weight: 10 }, { pause: { duration: '10m' } }]));
    await until(
      () => ctl.release('crash'),
      (r) => r.status.step === 1,
    );
    const backend = canaries().find((a) => a.name === 'backend')!;
    process.kill(backend.pid, 'SIGKILL');
    const paused = await ctl.waitForPhase('crash', 'Paused');
    expect(paused.status.pausedFor).toContain('backend');
    const warning = paused.status.events.find((e) => e.reason === 'CanaryUnhealthy');
    expect(warning?.message).toContain('proxies fall back');
    // The supervisor restarts the canary (with backoff); until then gray traffic takes backend's stable.
    const back = await until(
      () => ctl.release('crash'),
      (r) => r.status.services.backend?.health === 'ready',
    );
    expect(back.status.events.some((e) => e.reason === 'CanaryHealthy')).toBe(true);
    expect((await hit(ctl.gateway!, { 'x-lane': 'gray' })).served).toBe(
      'frontend=gray, backend=gray',
    );
    expect((await ctl.cli('resume', 'crash')).stdout).toBe('release/crash resume: Progressing\n');
    await rollBackAndCheck('crash');
  });

  it('restarts the managed proxy when it dies, and it picks up the route table again', async () => {
    const status = await ctl.api<{ processes: Array<{ id: string; pid: number }> }>(
      'GET',
      '/v1/status',
    );
    const proxy = status.body.processes.find((p) => p.id.startsWith('graylane-proxy'))!;
    process.kill(proxy.pid, 'SIGKILL');
    const again = await until(
      () =>
        ctl.api<{ processes: Array<{ id: string; pid: number; health: string }> }>(
          'GET',
          '/v1/status',
        ),
      (r) =>
        r.body.processes.some(
          (p) => p.id === proxy.id && p.pid !== proxy.pid && p.health === 'ready',
        ),
    );
    expect(again.body.processes.filter((p) => p.id.startsWith('graylane-proxy'))).toHaveLength(1);
    await until(
      () => hit(ctl.gateway!),
      (r) => r.body === 'frontend v1 -> backend v1',
    );
  });

  it('fails a release whose canary is not ready in time, with its last output, and removes what was deployed', async () => {
    const release = shopRelease('never-ready', [{ weight: 50 }]);
    (release.spec as { services: Array<{ canary: { run: unknown } }> }).services[1]!.canary.run =
      runSpec('frontend', 'v2', { FAIL_START: '1' }, { readyTimeout: '1s' });
    await apply(release);
    const failed = await ctl.waitForPhase('never-ready', 'Failed');
    expect(failed.status.failure).toContain(
      'canary frontend failed to deploy: not ready within 1000 ms',
    );
    expect(failed.status.failure).toContain('boom: cannot reach the database');
    expect(failed.status.services.backend?.canary).toBe('removed');
    expect(canaries()).toEqual([]);
  });

  it('refuses rollback of a promoted release and a second release on the same service', async () => {
    await apply(shopRelease('first', [{ pause: {} }]));
    await ctl.waitForPhase('first', 'Paused');
    const second = shopRelease('second', [{ weight: 10 }], { lane: 'blue' });
    const refused = await ctl.api<{ error: { code: string; message: string } }>(
      'POST',
      '/v1/apply',
      yamlOf([second]),
    );
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('GRAYLANE_ERR_CONFLICT');
    expect(refused.body.error.message).toContain('first');
    expect(refused.body.error.message).toContain('second');
    expect((await ctl.cli('promote', 'first')).code).toBe(0);
    await ctl.waitForPhase('first', 'Succeeded');
    const late = await ctl.cli('rollback', 'first');
    expect(late.code).toBe(1);
    expect(late.stderr).toContain('GRAYLANE_ERR_INVALID_ACTION');
  });
});
