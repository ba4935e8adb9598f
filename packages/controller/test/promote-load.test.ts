import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanup,
  type RunningController,
  shopRelease,
  startShop,
  tempDir,
  until,
  yamlOf,
} from './graylane.js';

/**
 * Promotion under load: a bounded stream of requests through the real gateway while every service
 * switches to its canary and the old stable processes are stopped. The old processes may only stop
 * once every proxy serves the promotion and in-flight requests drained, so nothing may fail.
 */
describe('promote under load', { timeout: 90_000 }, () => {
  let ctl: RunningController;
  let dir: string;

  beforeAll(async () => {
    dir = tempDir();
    ctl = await startShop({ stateDir: dir });
  });

  afterAll(async () => {
    await ctl.stop();
    cleanup(dir);
  });

  it('loses no request while promoting and stopping the old versions', async () => {
    expect(
      (
        await ctl.api(
          'POST',
          '/v1/apply',
          yamlOf([shopRelease('load', [{ weight: 50 }, { pause: {} }])]),
        )
      ).status,
    ).toBe(200);
    await ctl.waitForPhase('load', 'Paused');
    const agent = new Agent({ connections: 8 });
    const outcomes: Record<string, number> = {};
    let stop = false;
    // Which stage each request started in: the load must span the whole promotion.
    let stage: 'before' | 'promoting' | 'after' = 'before';
    const started = { before: 0, promoting: 0, after: 0 };
    const deadline = Date.now() + 60_000;
    const worker = async () => {
      // Bounded: stops when told, at the deadline, or after 3000 requests per worker.
      for (let i = 0; i < 3000 && !stop && Date.now() < deadline; i++) {
        let key: string;
        started[stage]++;
        try {
          const res = await request(ctl.gateway!, { dispatcher: agent, headersTimeout: 5_000 });
          const body = await res.body.text();
          key = res.statusCode === 200 ? body : `HTTP ${res.statusCode}: ${body}`;
        } catch (error) {
          key = `error ${(error as { code?: string }).code ?? String(error)}`;
        }
        outcomes[key] = (outcomes[key] ?? 0) + 1;
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    await new Promise((resolve) => setTimeout(resolve, 500));
    stage = 'promoting';
    expect((await ctl.cli('promote', 'load')).code).toBe(0);
    await ctl.waitForPhase('load', 'Succeeded', 20_000);
    stage = 'after';
    // Keep the load on until every worker has sent again after the last old process stopped.
    await until(
      async () => started.after,
      (n) => n >= 2 * workers.length,
      20_000,
    );
    stop = true;
    await Promise.all(workers);
    await agent.close();
    const total = Object.values(outcomes).reduce((a, b) => a + b, 0);
    process.stdout.write(
      `promote under load: ${JSON.stringify(outcomes)} (${total} requests; started ${JSON.stringify(started)})\n`,
    );
    // A request already inside frontend v1 when the table switches may reach backend v2: the
    // promotion switches every service in one revision, not every request in flight.
    const failed = Object.keys(outcomes).filter(
      (k) => !/^frontend v[12] -> backend v[12]$/.test(k),
    );
    expect(failed).toEqual([]);
    expect(outcomes['frontend v1 -> backend v1']).toBeGreaterThan(0);
    expect(outcomes['frontend v2 -> backend v2']).toBeGreaterThan(0);
    // Not a rate (the machine's load decides that): the workers kept sending through the promotion.
    expect(started.promoting).toBeGreaterThanOrEqual(workers.length);
  });
});
