import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExposition } from '../../src/analysis/exposition.js';
import type { Release } from '../../src/release/status.js';
import {
  cleanup,
  hit,
  type RunningController,
  releaseDoc,
  runSpec,
  startShop,
  tempDir,
  yamlOf,
} from '../graylane.js';
import { GatewayLoad } from './load.js';
import { managedProxyMetrics } from './prometheus-server.js';

/** Requests the gateway forwarded to frontend's gray lane: business and synthetic, apart. */
async function gatewayCounts(metricsUrl: string) {
  const text = await (await request(metricsUrl)).body.text();
  const count = (name: string) =>
    parseExposition(text)
      .filter(
        (s) =>
          s.name === name &&
          s.labels.listener === 'gateway' &&
          s.labels.service === 'frontend' &&
          s.labels.lane === 'gray',
      )
      .reduce((sum, s) => sum + s.value, 0);
  return {
    business: count('graylane_requests_total'),
    synthetic: count('graylane_synthetic_requests_total'),
  };
}

/** A shop release whose backend canary gets `backendEnv`, with the analysis given. */
function analysedRelease(name: string, backendEnv: Record<string, string>, analysis: object) {
  return releaseDoc(name, {
    lane: 'gray',
    entrypoint: 'shop',
    services: [
      { name: 'backend', canary: { version: 'v2', run: runSpec('backend', 'v2', backendEnv) } },
      {
        name: 'frontend',
        canary: { version: 'v2', run: runSpec('frontend', 'v2', { CALLS: 'backend' }) },
      },
    ],
    analysis,
  });
}

const weightsWalked = (release: Release) => [
  ...new Set((release.status.analysis?.intervals ?? []).map((i) => i.weight)),
];

export interface ProviderUnderTest {
  provider: Record<string, unknown>;
  stop?(): Promise<void>;
}

/**
 * The scenarios of issue 18 against a real shop (controller, proxy, fixture apps), the metrics from
 * the provider `start` gives for it.
 */
export function analysisScenarios(
  title: string,
  start: (ctl: RunningController) => Promise<ProviderUnderTest>,
): void {
  describe(title, () => {
    let ctl: RunningController;
    let dir: string;
    let provider: ProviderUnderTest;

    beforeAll(async () => {
      dir = tempDir();
      ctl = await startShop({ stateDir: dir });
      provider = await start(ctl);
    });

    afterAll(async () => {
      await provider?.stop?.();
      await ctl.stop();
      cleanup(dir);
    });

    const analysis = () => ({
      provider: provider.provider,
      interval: '2s',
      threshold: 2,
      minSamples: 5,
      stepWeight: 20,
      maxWeight: 70,
      checks: [
        { name: 'request-success-rate', min: 99 },
        { name: 'request-duration', stat: 'mean', max: '200ms' },
      ],
    });

    async function run(
      name: string,
      env: Record<string, string>,
      load?: GatewayLoad,
      spec: object = analysis(),
    ) {
      const release = analysedRelease(name, env, spec);
      const applied = await ctl.api('POST', '/v1/apply', yamlOf([release]));
      expect(applied.status).toBe(200);
      try {
        return await ctl.waitForPhase(name, ['Succeeded', 'Failed', 'RolledBack'], 120_000);
      } finally {
        await load?.stop();
      }
    }

    it('latency: a 300 ms backend canary fails mean < 200 ms twice and rolls back at the first step', async () => {
      const done = await run('slow', { DELAY_MS: '300' }, new GatewayLoad(ctl.gateway!));
      expect(done.status.phase).toBe('Failed');
      expect(weightsWalked(done)).toEqual([20]);
      expect(done.status.events.filter((e) => e.reason === 'Weight').map((e) => e.message)).toEqual(
        ['step 1: 20% of entry traffic to lane gray'],
      );
      const intervals = done.status.analysis!.intervals;
      expect(intervals.map((i) => i.verdict)).toEqual(['fail', 'fail']);
      const backend = intervals[0]!.checks.find(
        (c) => c.service === 'backend' && c.check === 'request-duration',
      )!;
      expect(backend.verdict).toBe('fail');
      expect(backend.value).toBeGreaterThan(250);
      expect(done.status.failure).toMatch(/backend request-duration: \d+(\.\d+)?ms > 200ms/);
      const status = await ctl.cli('status', 'slow');
      expect(status.stdout).toContain(`Analysis:    ${String(provider.provider.type)}, every 2s`);
      expect(status.stdout).toMatch(
        /backend\s+request-duration\s+<= 200ms\s+\d+\s+\d+(\.\d+)?\s+-\s+fail/,
      );
    });

    it('no traffic at all: every check fails with "no data" and the release rolls back', async () => {
      const done = await run('idle', {});
      expect(done.status.phase).toBe('Failed');
      const checks = done.status.analysis!.intervals.flatMap((i) => i.checks);
      expect(checks.length).toBeGreaterThan(0);
      for (const check of checks) expect(check.reason).toMatch(/^no data: 0 canary requests/);
      expect(done.status.failure).toContain('no data');
    });

    it('an error-injecting canary (20 % errors) fails success-rate >= 99 % and rolls back', async () => {
      const done = await run('errors', { ERROR_EVERY: '5' }, new GatewayLoad(ctl.gateway!));
      expect(done.status.phase).toBe('Failed');
      const rate = done.status.analysis!.intervals[0]!.checks.find(
        (c) => c.service === 'backend' && c.check === 'request-success-rate',
      )!;
      expect(rate.verdict).toBe('fail');
      expect(rate.value).toBeLessThan(90);
      expect(weightsWalked(done)).toEqual([20]);
    });

    it('a canary that crashes mid-analysis: the fallbacks away from it fail its success rate', async () => {
      const done = await run('crash', { CRASH_AFTER: '15' }, new GatewayLoad(ctl.gateway!));
      expect(done.status.phase).toBe('Failed');
      const backend = done.status.analysis!.intervals.flatMap((i) =>
        i.checks.filter((c) => c.service === 'backend' && c.check === 'request-success-rate'),
      );
      expect(backend.some((c) => c.verdict === 'fail' && (c.value ?? 100) < 99)).toBe(true);
      expect(done.status.failure).toContain('backend request-success-rate');
    });

    it('relative: a canary mean over 1.5 x the stable mean of the same interval rolls back', async () => {
      const relative = {
        ...analysis(),
        checks: [{ name: 'request-duration', stat: 'mean', relative: 1.5 }],
      };
      const done = await run(
        'relative',
        { DELAY_MS: '100' },
        new GatewayLoad(ctl.gateway!),
        relative,
      );
      expect(done.status.phase, JSON.stringify(done.status.analysis?.intervals[0])).toBe('Failed');
      const backend = done.status.analysis!.intervals[0]!.checks.find(
        (c) => c.service === 'backend',
      )!;
      expect(backend.verdict).toBe('fail');
      expect(backend.stable).toBeGreaterThan(0);
      expect(backend.value!).toBeGreaterThan(1.5 * backend.stable!);
      expect(backend.reason).toMatch(/ > 1\.5 x stable /);
    });

    it('latency: a 50 ms backend canary passes every interval, ramps 20-40-60-80 and promotes', async () => {
      const done = await run('fast', { DELAY_MS: '50' }, new GatewayLoad(ctl.gateway!));
      expect(done.status.phase).toBe('Succeeded');
      expect(weightsWalked(done)).toEqual([20, 40, 60, 80]);
      expect(done.status.analysis!.intervals.map((i) => i.verdict)).toEqual([
        'pass',
        'pass',
        'pass',
        'pass',
      ]);
      expect((await hit(ctl.gateway!)).body).toBe('frontend v2 -> backend v2');
    });

    it('no business traffic but synthetic load configured: the checks have data and it promotes', async () => {
      const metrics = managedProxyMetrics(ctl.stateDir);
      const before = await gatewayCounts(metrics);
      const withLoad = { ...analysis(), load: { rps: 20, path: '/' } };
      const done = await run('loaded', {}, undefined, withLoad);
      expect(done.status.phase, done.status.failure).toBe('Succeeded');
      expect(weightsWalked(done)).toEqual([20, 40, 60, 80]);
      const after = await gatewayCounts(metrics);
      // The load reached the lane, counted apart: the business count of the lane did not move.
      expect(after.synthetic - before.synthetic).toBeGreaterThanOrEqual(4 * 5);
      expect(after.business).toBe(before.business);
    });
  });
}
