import { describe, expect, it } from 'vitest';
import { judge } from '../../src/analysis/checks.js';
import { quantile } from '../../src/analysis/direct.js';
import { parseExposition } from '../../src/analysis/exposition.js';
import { promql } from '../../src/analysis/prometheus.js';
import { AnalysisSchema } from '../../src/documents/analysis.js';
import { ReleaseSpecSchema } from '../../src/documents/schema.js';
import { advance } from '../../src/release/machine.js';
import type { MeasuredInterval, Observations } from '../../src/release/observations.js';
import { type CheckResult, initialStatus, type Release } from '../../src/release/status.js';
import { releaseSteps } from '../../src/release/steps.js';

const analysisOf = (extra: object = {}) =>
  AnalysisSchema.parse({
    interval: '2s',
    threshold: 2,
    minSamples: 10,
    checks: [{ name: 'request-success-rate', min: 99 }],
    ...extra,
  });

describe('steps made by stepWeight and maxWeight (Flagger)', () => {
  it.each([
    [20, 70, [20, 40, 60, 80]],
    [25, 100, [25, 50, 75, 100]],
    [30, 50, [30, 60]],
    [40, 40, [40]],
    [60, 100, [60, 100]],
  ])('stepWeight %d, maxWeight %d: %j, then promotion', (stepWeight, maxWeight, weights) => {
    const steps = releaseSteps({ analysis: analysisOf({ stepWeight, maxWeight }) });
    expect(steps).toEqual(weights.map((weight) => ({ weight })));
  });

  it('explicit steps win over stepWeight', () => {
    const steps = [{ weight: 5 }, { pause: {} }];
    expect(releaseSteps({ steps, analysis: analysisOf({ stepWeight: 20 }) })).toBe(steps);
  });
});

describe('the documents refuse what analysis cannot run', () => {
  const spec = {
    lane: 'gray',
    entrypoint: 'shop',
    services: [{ name: 'a', canary: { version: 'v2', endpoints: ['http://127.0.0.1:1'] } }],
  };
  const issues = (input: object) =>
    ReleaseSpecSchema.safeParse(input).error?.issues.map(
      (i) => `${i.path.join('.')}: ${i.message}`,
    );

  it('neither steps nor stepWeight', () => {
    expect(issues({ ...spec, analysis: { checks: [{ name: 'request-success-rate' }] } })).toEqual([
      'steps: a release needs steps, or analysis.stepWeight to make them',
    ]);
  });

  it('a custom PromQL check with the direct provider', () => {
    const analysis = {
      stepWeight: 10,
      checks: [{ name: 'custom', id: 'x', query: 'up', max: 1 }],
    };
    expect(issues({ ...spec, analysis })).toEqual([
      'analysis.checks: custom checks are PromQL: they need the prometheus provider',
    ]);
  });

  it('a duration check without max or relative', () => {
    const analysis = { stepWeight: 10, checks: [{ name: 'request-duration' }] };
    expect(issues({ ...spec, analysis })).toEqual([
      'analysis.checks.0: request-duration needs max, relative or both',
    ]);
  });
});

describe('judge: one check of one service from what was measured', () => {
  const rate = { name: 'request-success-rate' as const, min: 99 };
  const mean = { name: 'request-duration' as const, stat: 'mean' as const, max: '200ms' };
  const relative = { name: 'request-duration' as const, stat: 'p99' as const, relative: 1.2 };

  it.each([
    ['passes at the minimum', rate, { samples: 100, value: 99 }, 'pass', undefined],
    ['fails below it', rate, { samples: 100, value: 98.5 }, 'fail', '98.5% < 99%'],
    [
      'no data below minSamples, however good the value',
      rate,
      { samples: 9, value: 100 },
      'fail',
      'no data: 9 canary requests < minSamples 10',
    ],
    [
      'no data when the query returns nothing',
      mean,
      { samples: 50 },
      'fail',
      'no data: the query returned nothing',
    ],
    ['a mean over max', mean, { samples: 50, value: 300.2 }, 'fail', '300.2ms > 200ms'],
    ['a mean at max', mean, { samples: 50, value: 200 }, 'pass', undefined],
    [
      'relative: within 1.2 x stable',
      relative,
      { samples: 50, value: 120, stable: 100 },
      'pass',
      undefined,
    ],
    [
      'relative: over 1.2 x stable',
      relative,
      { samples: 50, value: 121, stable: 100 },
      'fail',
      '121 > 1.2 x stable 100',
    ],
    [
      'relative: no stable data to compare with',
      relative,
      { samples: 50, value: 50 },
      'fail',
      'no data from the stable version to compare with',
    ],
  ] as const)('%s', (_, check, measured, verdict, reason) => {
    const result = judge('backend', check, measured, 10);
    expect(result.verdict).toBe(verdict);
    expect(result.reason).toBe(reason);
    expect(result.service).toBe('backend');
  });
});

describe('reading the proxies’ metrics', () => {
  // As prom-client writes a histogram: `le` first (the npm parser we tried lost these labels).
  const text = [
    '# HELP graylane_request_duration_seconds Request duration',
    '# TYPE graylane_request_duration_seconds histogram',
    'graylane_request_duration_seconds_bucket{le="0.1",listener="outbound",service="backend",lane="gray",version="v2"} 90',
    'graylane_request_duration_seconds_bucket{le="0.25",listener="outbound",service="backend",lane="gray",version="v2"} 100',
    'graylane_request_duration_seconds_bucket{le="+Inf",listener="outbound",service="backend",lane="gray",version="v2"} 100',
    'graylane_request_duration_seconds_sum{listener="outbound",service="backend",lane="gray",version="v2"} 7.5',
    'graylane_requests_total{listener="gateway",service="web",lane="stable",version="a \\"b\\"",code="200"} 3',
  ].join('\n');

  it('parses samples with every label, escapes included', () => {
    const samples = parseExposition(text);
    expect(samples).toHaveLength(5);
    expect(samples[0]).toEqual({
      name: 'graylane_request_duration_seconds_bucket',
      labels: { le: '0.1', listener: 'outbound', service: 'backend', lane: 'gray', version: 'v2' },
      value: 90,
    });
    expect(samples[4]!.labels.version).toBe('a "b"');
  });

  it('p99 interpolates in the bucket where the rank falls, as histogram_quantile does', () => {
    const buckets = new Map([
      [0.1, 90],
      [0.25, 100],
      [Number.POSITIVE_INFINITY, 100],
    ]);
    // rank 99: 9 of the 10 requests between 0.1 and 0.25.
    expect(quantile(0.99, buckets)).toBeCloseTo(0.1 + 0.15 * 0.9, 10);
    expect(quantile(0.5, buckets)).toBeCloseTo(0.1 * (50 / 90), 10);
    expect(quantile(0.99, new Map([[Number.POSITIVE_INFINITY, 0]]))).toBeUndefined();
    expect(
      quantile(
        0.99,
        new Map([
          [0.1, 0],
          [Number.POSITIVE_INFINITY, 10],
        ]),
      ),
    ).toBe(0.1);
  });

  it('the prometheus provider asks the same questions in PromQL', () => {
    expect(promql({ kind: 'fallbacks', service: 'backend', lane: 'gray' }, '2s')).toBe(
      'sum(increase(graylane_fallbacks_total{service="backend",from_lane="gray",reason!="absent"}[2s]))',
    );
    // Business and synthetic series added, whichever of them exists.
    const a =
      'sum by (le)(increase(graylane_request_duration_seconds_bucket{service="b",lane="gray",listener=~"gateway|outbound"}[5s]))';
    const b =
      'sum by (le)(increase(graylane_synthetic_request_duration_seconds_bucket{service="b",lane="gray",listener=~"gateway|outbound"}[5s]))';
    expect(promql({ kind: 'duration', stat: 'p99', service: 'b', lane: 'gray' }, '5s')).toBe(
      `histogram_quantile(0.99, ((${a} + ${b}) or ${a} or ${b}))`,
    );
  });
});

describe('the release core with analysis (pure)', () => {
  const spec = ReleaseSpecSchema.parse({
    lane: 'gray',
    entrypoint: 'shop',
    services: [{ name: 'backend', canary: { version: 'v2', endpoints: ['http://127.0.0.1:1'] } }],
    analysis: {
      threshold: 2,
      minSamples: 1,
      stepWeight: 50,
      maxWeight: 100,
      checks: [{ name: 'request-success-rate' }],
    },
  });
  const check = (verdict: 'pass' | 'fail'): CheckResult => ({
    service: 'backend',
    check: 'request-success-rate',
    limit: '>= 99%',
    samples: 10,
    value: verdict === 'pass' ? 100 : 50,
    verdict,
    ...(verdict === 'fail' ? { reason: '50% < 99%' } : {}),
  });
  const observe = (now: number, analysis?: MeasuredInterval): Observations => ({
    now,
    canaries: { backend: { health: 'ready' } },
    applied: () => true,
    ...(analysis ? { analysis } : {}),
  });

  /** Deployed, at the first weight, applied by every proxy, its interval started at `t`. */
  function atFirstStep(t: number): Release {
    let release: Release = {
      apiVersion: 'graylane.dev/v1alpha1',
      kind: 'Release',
      metadata: { name: 'r' },
      spec,
      status: initialStatus(spec, 0),
    };
    for (let i = 0; i < 6; i++) {
      const { status } = advance(release, observe(t), 'backend');
      release = {
        ...release,
        status: { ...status, awaitRevision: Math.max(status.awaitRevision, 1) },
      };
    }
    return release;
  }

  it('waits at a weight until an interval measured after the weight was applied passes', () => {
    const release = atFirstStep(1_000);
    expect(release.status.phase).toBe('Progressing');
    expect(release.status.weight).toBe(50);
    expect(release.status.analysis?.since).toBe(new Date(1_000).toISOString());
    // Measured partly before the weight was applied: ignored.
    const early = advance(
      release,
      observe(5_000, { from: 500, to: 3_000, checks: [check('pass')] }),
    );
    expect(early.status.step).toBe(0);
    expect(early.events).toEqual([]);
    const passed = advance(
      release,
      observe(5_000, { from: 1_000, to: 3_000, checks: [check('pass')] }),
    );
    expect(passed.events.map((e) => e.reason)).toContain('AnalysisPassed');
    expect(passed.status.step).toBe(1);
    expect(passed.status.analysis?.intervals.map((i) => [i.weight, i.verdict])).toEqual([
      [50, 'pass'],
    ]);
  });

  it('counts a failed interval once, and rolls back at the threshold naming the check', () => {
    const release = atFirstStep(1_000);
    const interval = { from: 1_000, to: 3_000, checks: [check('fail')] };
    const once = advance(release, observe(3_000, interval));
    expect(once.status.analysis?.failed).toBe(1);
    expect(once.status.phase).toBe('Progressing');
    const again = advance({ ...release, status: once.status }, observe(3_500, interval));
    expect(again.status.analysis?.failed).toBe(1);
    const second = advance(
      { ...release, status: once.status },
      observe(5_000, { from: 3_000, to: 5_000, checks: [check('fail')] }),
    );
    expect(second.status.phase).toBe('RollingBack');
    expect(second.status.failure).toBe(
      'analysis failed 2 times; last: backend request-success-rate: 50% < 99%',
    );
    expect(second.status.weight).toBe(0);
  });
});
