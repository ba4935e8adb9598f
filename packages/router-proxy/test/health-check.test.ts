import type { HealthCheck } from '@graylane/lane-core';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { compileTable } from '../src/routing/compiled-table.js';
import {
  ActiveHealthChecker,
  type CheckScheduler,
  type HealthEvent,
} from '../src/upstream/health-check.js';
import { table } from './helpers.js';

/**
 * The checker with a clock the test moves and a probe the test scripts: thresholds and intervals are
 * checked as exact counts and instants, not as "soon enough" on a real timer.
 */

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Timers that fire only when the test advances the clock, each at its exact instant. */
class ManualClock implements CheckScheduler {
  now = 0;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; run: () => void }>();

  schedule(run: () => void, delayMs: number): number {
    const id = this.nextId++;
    this.timers.set(id, { at: this.now + delayMs, run });
    return id;
  }

  cancel(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  get pending(): number {
    return this.timers.size;
  }

  /** Runs every check due up to `target`, in order, each probe settling before the next is due. */
  async advanceTo(target: number): Promise<void> {
    for (;;) {
      await settle();
      let due: [number, { at: number; run: () => void }] | undefined;
      for (const entry of this.timers) {
        if (entry[1].at <= target && (!due || entry[1].at < due[1].at)) due = entry;
      }
      if (!due) break;
      this.timers.delete(due[0]);
      this.now = due[1].at;
      due[1].run();
    }
    this.now = target;
  }
}

const STABLE = 'http://127.0.0.1:1001';
const CANARY = 'http://127.0.0.1:1002';

function checkedTable(check: HealthCheck, lanes = true) {
  return compileTable(
    table({
      revision: 1,
      services: {
        web: {
          stable: { endpoints: [STABLE] },
          ...(lanes ? { lanes: { gray: { endpoints: [CANARY] } } } : {}),
          healthCheck: check,
        },
      },
      entrypoints: [{ name: 'web', service: 'web' }],
    }),
  );
}

const check = (overrides: Partial<HealthCheck> = {}): HealthCheck => ({
  path: '/healthz',
  intervalMs: 1_000,
  timeoutMs: 500,
  unhealthyThreshold: 3,
  healthyThreshold: 2,
  ...overrides,
});

describe('active health checks', () => {
  const checkers: ActiveHealthChecker[] = [];
  afterEach(async () => {
    for (const checker of checkers.splice(0)) await checker.close();
  });

  /** A checker whose probe answers from `script` (per endpoint, one result per check; the last repeats). */
  function setup(script: Record<string, Array<boolean | 'throw'>>) {
    const clock = new ManualClock();
    const probes: Array<{ endpoint: string; at: number }> = [];
    const events: Array<HealthEvent & { at: number }> = [];
    const checker = new ActiveHealthChecker(
      (event) => events.push({ ...event, at: clock.now }),
      createLogger('silent'),
      {
        scheduler: clock,
        probe: async (endpoint) => {
          const results = script[endpoint] ?? [true];
          const result = results[probes.filter((p) => p.endpoint === endpoint).length];
          probes.push({ endpoint, at: clock.now });
          const answer = result ?? results.at(-1);
          if (answer === 'throw') throw new Error('probe failed');
          return answer === true;
        },
      },
    );
    checkers.push(checker);
    const at = (endpoint: string) => probes.filter((p) => p.endpoint === endpoint).map((p) => p.at);
    return { clock, checker, events, at };
  }

  it('turns unhealthy at the unhealthyThreshold-th failed check in a row, healthy at the healthyThreshold-th pass', async () => {
    const { clock, checker, events } = setup({
      [CANARY]: [false, false, false, true, true],
    });
    checker.reconcile(checkedTable(check({ unhealthyThreshold: 3, healthyThreshold: 2 })));
    await clock.advanceTo(1_999);
    expect(checker.isUnhealthy('web', CANARY)).toBe(false);
    await clock.advanceTo(2_000);
    expect(checker.isUnhealthy('web', CANARY)).toBe(true);
    await clock.advanceTo(3_999);
    expect(checker.isUnhealthy('web', CANARY)).toBe(true);
    await clock.advanceTo(4_000);
    expect(checker.isUnhealthy('web', CANARY)).toBe(false);
    expect(events).toEqual([
      { service: 'web', lane: 'gray', endpoint: CANARY, healthy: false, at: 2_000 },
      { service: 'web', lane: 'gray', endpoint: CANARY, healthy: true, at: 4_000 },
    ]);
    expect(checker.isUnhealthy('web', STABLE)).toBe(false);
  });

  it('checks at once, then every intervalMs exactly', async () => {
    const { clock, checker, at } = setup({});
    checker.reconcile(checkedTable(check({ intervalMs: 250 })));
    await clock.advanceTo(1_000);
    expect(at(CANARY)).toEqual([0, 250, 500, 750, 1_000]);
    expect(at(STABLE)).toEqual([0, 250, 500, 750, 1_000]);
  });

  it('starts counting again after a check that breaks the run', async () => {
    const { clock, checker, events } = setup({
      [CANARY]: [false, false, true, false, false, false, true, false, true, true],
    });
    checker.reconcile(checkedTable(check({ unhealthyThreshold: 3, healthyThreshold: 2 })));
    await clock.advanceTo(4_000);
    expect(checker.isUnhealthy('web', CANARY)).toBe(false);
    await clock.advanceTo(5_000);
    expect(checker.isUnhealthy('web', CANARY)).toBe(true);
    // pass, fail, pass, pass: healthy only at the second pass of the last run.
    await clock.advanceTo(8_000);
    expect(checker.isUnhealthy('web', CANARY)).toBe(true);
    await clock.advanceTo(9_000);
    expect(checker.isUnhealthy('web', CANARY)).toBe(false);
    expect(events.map((e) => [e.healthy, e.at])).toEqual([
      [false, 5_000],
      [true, 9_000],
    ]);
  });

  it('counts a probe that throws as a failed check', async () => {
    const { clock, checker } = setup({ [CANARY]: ['throw'] });
    checker.reconcile(checkedTable(check({ unhealthyThreshold: 2 })));
    await clock.advanceTo(1_000);
    expect(checker.isUnhealthy('web', CANARY)).toBe(true);
  });

  it('stops checking endpoints that left the table, and restarts those whose check changed', async () => {
    const { clock, checker, at } = setup({ [CANARY]: [false] });
    checker.reconcile(checkedTable(check({ unhealthyThreshold: 2 })));
    await clock.advanceTo(1_000);
    expect(checker.isUnhealthy('web', CANARY)).toBe(true);
    checker.reconcile(checkedTable(check({ unhealthyThreshold: 2 }), false));
    await clock.advanceTo(3_000);
    expect(at(CANARY)).toEqual([0, 1_000]);
    expect(checker.isUnhealthy('web', CANARY)).toBe(false);
    // A new interval restarts the stable endpoint's prober: at once, then on the new interval.
    checker.reconcile(checkedTable(check({ unhealthyThreshold: 2, intervalMs: 400 }), false));
    await clock.advanceTo(3_800);
    expect(at(STABLE)).toEqual([0, 1_000, 2_000, 3_000, 3_000, 3_400, 3_800]);
    await checkers.pop()?.close();
    expect(clock.pending).toBe(0);
  });
});
