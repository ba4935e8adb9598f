import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BIN,
  cleanup,
  freePorts,
  hit,
  type RunningController,
  runningApps,
  shopDocuments,
  shopRelease,
  startController,
  tempDir,
  until,
  yamlOf,
} from './graylane.js';

/** Counts of response bodies over `n` gateway requests. */
async function sample(gateway: string, n: number, headers: Record<string, string> = {}) {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const { body } = await hit(gateway, headers);
    counts[body] = (counts[body] ?? 0) + 1;
  }
  return counts;
}

describe('a two-service release through the CLI, with real proxies and processes', {
  timeout: 90_000,
}, () => {
  let ctl: RunningController;
  let dir: string;

  beforeAll(async () => {
    dir = tempDir();
    ctl = await startController({
      stateDir: dir,
      ...(await freePorts(3).then(([port, gatewayPort, outboundPort]) => ({
        port,
        gatewayPort,
        outboundPort,
      }))),
    });
    writeFileSync(join(dir, 'shop.yaml'), yamlOf(shopDocuments()));
    const applied = await ctl.cli('apply', '-f', join(dir, 'shop.yaml'));
    expect(applied.stderr).toBe('');
    expect(applied.stdout).toBe(
      'service/backend created\nservice/frontend created\nentrypoint/shop created\n',
    );
    await until(
      () => hit(ctl.gateway!),
      (r) => r.body === 'frontend v1 -> backend v1',
    );
  });

  afterAll(async () => {
    const code = await ctl.stop();
    expect(code).toBe(0);
    // A clean stop stops what the controller ran.
    expect(runningApps()).toEqual([]);
    cleanup(dir);
  });

  it('deploys bottom-up, splits, waits for approval, promotes and tears down top-down', async () => {
    const release = shopRelease('checkout-v2', [{ weight: 30 }, { pause: {} }, { weight: 100 }]);
    writeFileSync(join(dir, 'release.yaml'), yamlOf([release]));
    expect((await ctl.cli('apply', '-f', join(dir, 'release.yaml'))).stdout).toBe(
      'release/checkout-v2 created\n',
    );

    const paused = await ctl.waitForPhase('checkout-v2', 'Paused');
    expect(paused.status.awaitingApproval).toBe(true);
    expect(paused.status.weight).toBe(30);
    const reasons = paused.status.events.map(
      (e) => `${e.reason}:${e.message.split(' ').slice(0, 3).join(' ')}`,
    );
    // Bottom-up: the backend canary is ready and routed before the frontend canary starts.
    expect(reasons.indexOf('CanaryReady:canary backend is')).toBeLessThan(
      reasons.indexOf('CanaryDeploying:deploying canary frontend'),
    );

    // Tagged and matched traffic go canary to canary; untagged is split about 30 %.
    expect((await hit(ctl.gateway!, { 'x-lane': 'gray' })).served).toBe(
      'frontend=gray, backend=gray',
    );
    expect((await hit(ctl.gateway!, { 'user-agent': 'foo' })).body).toBe(
      'frontend v2 -> backend v2',
    );
    const split = await sample(ctl.gateway!, 60);
    expect(Object.keys(split).sort()).toEqual([
      'frontend v1 -> backend v1',
      'frontend v2 -> backend v2',
    ]);
    expect(split['frontend v2 -> backend v2']).toBeGreaterThan(5);
    expect(split['frontend v2 -> backend v2']).toBeLessThan(35);

    const status = await ctl.cli('status', 'checkout-v2');
    expect(status.stdout).toMatch(/Phase:\s+Paused \(waiting for approval/);
    expect(status.stdout).toMatch(/backend\s+v2\s+routed\s+ready/);

    // Without a terminal, --watch prints a line per change and ends with the release.
    const watch = spawn(process.execPath, [
      BIN,
      '--state-dir',
      dir,
      '--server',
      ctl.url,
      'status',
      'checkout-v2',
      '--watch',
      '--interval',
      '100ms',
    ]);
    let watched = '';
    watch.stdout.on('data', (chunk: Buffer) => (watched += chunk.toString()));
    const watchEnded = once(watch, 'exit');
    await until(
      async () => watched,
      (text) => text.includes('\n'),
    );
    expect((await ctl.cli('approve', 'checkout-v2')).code).toBe(0);
    const done = await ctl.waitForPhase('checkout-v2', 'Succeeded');
    const [code] = await watchEnded;
    expect(code).toBe(0);
    const lines = watched.trim().split('\n');
    expect(lines[0]).toMatch(
      /Paused\s+step 2\/3\s+weight 30%\s+backend=routed\/ready frontend=routed\/ready$/,
    );
    expect(lines.at(-1)).toMatch(
      /Succeeded\s+step 3\/3\s+weight 0%\s+backend=retired\/absent frontend=retired\/absent$/,
    );
    const order = done.status.events
      .filter((e) => e.reason === 'Retiring')
      .map((e) => e.message.split(':')[0]);
    expect(order).toEqual(['frontend', 'backend']);
    expect(await sample(ctl.gateway!, 5)).toEqual({ 'frontend v2 -> backend v2': 5 });
    expect(
      runningApps()
        .map((a) => `${a.name} ${a.version}`)
        .sort(),
    ).toEqual(['backend v2', 'frontend v2']);

    const services = await ctl.cli('get', 'services');
    expect(services.stdout).toMatch(/backend\s+v2/);
    const events = await ctl.cli('events', 'checkout-v2');
    expect(events.stdout).toContain('Finalising -> Succeeded');
  });

  it('approve when nothing waits is refused with the code and exit 1; a bad kind is exit 2', async () => {
    const approve = await ctl.cli('approve', 'checkout-v2');
    expect(approve.code).toBe(1);
    expect(approve.stderr).toContain('GRAYLANE_ERR_INVALID_ACTION');
    const bad = await ctl.cli('get', 'widgets');
    expect(bad.code).toBe(2);
    const usage = await ctl.cli('frobnicate');
    expect(usage.code).toBe(2);
  });
});
