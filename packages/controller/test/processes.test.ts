import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type ProcessRecord, ProcessSupervisor } from '../src/platform/processes.js';
import { APP, cleanup, freePort, RUN_ID, runningApps, tempDir, until } from './graylane.js';

describe('ProcessSupervisor', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) cleanup(dir);
  });

  async function spec(dir: string) {
    return {
      command: process.execPath,
      args: [APP],
      env: { NAME: 'svc', VERSION: 'v1', GRAYLANE_TEST_RUN: RUN_ID },
      port: await freePort(),
      readyPath: '/healthz',
      readyTimeoutMs: 10_000,
      logFile: join(dir, 'svc.log'),
    };
  }

  it('starts a process again after a stop that came before it ever started', async () => {
    const dir = tempDir();
    dirs.push(dir);
    let records: ProcessRecord[] = [];
    const supervisor = new ProcessSupervisor(pino({ level: 'silent' }), (r) => (records = r), dir);
    const first = await spec(dir);
    supervisor.ensure('svc.gray.0', first);
    // Stopped before the supervisor's first pass spawned it: nothing to kill, and nothing may stick.
    await supervisor.stop('svc.gray.0');
    expect(supervisor.get('svc.gray.0')).toBeUndefined();
    supervisor.ensure('svc.gray.0', first);
    await until(
      async () => supervisor.get('svc.gray.0')?.health,
      (h) => h === 'ready',
      10_000,
    );
    expect(records.map((r) => r.id)).toEqual(['svc.gray.0']);
    expect(runningApps()).toHaveLength(1);
    await supervisor.close(true);
    expect(runningApps()).toEqual([]);
  });

  it('never shows a failed or exited process without its reason, not even between two turns', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const supervisor = new ProcessSupervisor(pino({ level: 'silent' }), () => {}, dir);
    const seen: string[] = [];
    let watching = true;
    // Every turn of the event loop, as the release machine may read the records at any of them.
    const watch = () => {
      for (const record of supervisor.list()) {
        if (record.health === 'failed' && !record.message) seen.push(`${record.id} failed`);
        if (record.health === 'ready' && record.pid === undefined) seen.push(`${record.id} ready`);
      }
      if (watching) setImmediate(watch);
    };
    watch();
    const never = await spec(dir);
    supervisor.ensure('never.gray.0', {
      ...never,
      env: { ...never.env, FAIL_START: '1' },
      readyTimeoutMs: 300,
      logFile: join(dir, 'never.log'),
    });
    const crashing = await spec(dir);
    supervisor.ensure('crash.gray.0', { ...crashing, env: { ...crashing.env, CRASH_AFTER: '0' } });
    const failed = await until(
      async () => supervisor.get('never.gray.0'),
      (r) => r?.health === 'failed',
      10_000,
    );
    expect(failed?.message).toContain('not ready within 300 ms');
    expect(failed?.message).toContain('boom: cannot reach the database');
    const crash = await until(
      async () => supervisor.get('crash.gray.0'),
      (r) => r?.health === 'ready',
      10_000,
    );
    await fetch(`http://127.0.0.1:${crash!.spec.port}/`).catch(() => undefined);
    const exited = await until(
      async () => supervisor.get('crash.gray.0'),
      (r) => r?.restarts === 1 && r.message?.includes('exited') === true,
      10_000,
    );
    expect(exited?.health).not.toBe('ready');
    watching = false;
    await supervisor.close(true);
    expect(seen).toEqual([]);
  });

  it('adopts a running process by pid and start time, and a pid reused by another process is not ours', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const first = new ProcessSupervisor(pino({ level: 'silent' }), () => {}, dir);
    first.ensure('svc.stable.0', await spec(dir));
    await until(
      async () => first.get('svc.stable.0')?.health,
      (h) => h === 'ready',
      10_000,
    );
    const record = structuredClone(first.get('svc.stable.0')!);
    await first.close(false);
    const second = new ProcessSupervisor(pino({ level: 'silent' }), () => {}, dir);
    const adoption = await second.adopt([record, { ...record, id: 'svc.stable.1', pidStart: '1' }]);
    expect(adoption.adopted).toEqual(['svc.stable.0']);
    expect(adoption.restarted).toEqual(['svc.stable.1']);
    expect(second.get('svc.stable.0')?.pid).toBe(record.pid);
    await second.close(true);
  });
});
