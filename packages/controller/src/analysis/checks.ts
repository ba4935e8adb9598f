import { STABLE } from '@graylane/lane-core';
import type { Analysis, Check } from '../documents/analysis.js';
import { parseDuration } from '../documents/duration.js';
import type { CheckResult } from '../release/status.js';
import { rangeOf } from './prometheus.js';
import type { MetricQuery, MetricsProvider, Window } from './provider.js';

/** What was measured for one check of one service; the verdict is `judge`'s. */
export interface Measured {
  /** Canary requests in the interval, fallbacks away from the canary included. */
  samples: number;
  value?: number | undefined;
  stable?: number | undefined;
}

export const checkName = (check: Check) => (check.name === 'custom' ? check.id : check.name);

const round = (n: number) => Math.round(n * 1000) / 1000;

/** The limit as events and `graylane status` print it. */
export function limitText(check: Check): string {
  const parts: string[] = [];
  if (check.name === 'request-success-rate') parts.push(`>= ${check.min}%`);
  if (check.name === 'request-duration' && check.max) parts.push(`<= ${check.max}`);
  if (check.name === 'custom') {
    if (check.min !== undefined) parts.push(`>= ${check.min}`);
    if (check.max !== undefined) parts.push(`<= ${check.max}`);
  }
  if (check.name !== 'request-success-rate' && check.relative !== undefined)
    parts.push(`<= ${check.relative} x stable`);
  return parts.join(', ');
}

function failing(check: Check, value: number, stable: number | undefined): string | undefined {
  switch (check.name) {
    case 'request-success-rate':
      return value < check.min ? `${round(value)}% < ${check.min}%` : undefined;
    case 'request-duration': {
      const max = check.max === undefined ? undefined : parseDuration(check.max)!;
      if (max !== undefined && value > max) return `${round(value)}ms > ${check.max}`;
      break;
    }
    case 'custom':
      if (check.min !== undefined && value < check.min) return `${round(value)} < ${check.min}`;
      if (check.max !== undefined && value > check.max) return `${round(value)} > ${check.max}`;
      break;
  }
  if (check.relative !== undefined) {
    if (stable === undefined) return 'no data from the stable version to compare with';
    if (value > check.relative * stable)
      return `${round(value)} > ${check.relative} x stable ${round(stable)}`;
  }
  return undefined;
}

/**
 * The verdict of one check from what was measured. Flagger's rule: no data is not success, so
 * fewer than `minSamples` canary requests, or a query that returns nothing, fails with "no data".
 */
export function judge(
  service: string,
  check: Check,
  measured: Measured,
  minSamples: number,
): CheckResult {
  const base = {
    service,
    check: checkName(check),
    limit: limitText(check),
    samples: measured.samples,
    ...(measured.value === undefined ? {} : { value: round(measured.value) }),
    ...(measured.stable === undefined ? {} : { stable: round(measured.stable) }),
  };
  if (measured.samples < minSamples) {
    return {
      ...base,
      verdict: 'fail',
      reason: `no data: ${measured.samples} canary requests < minSamples ${minSamples}`,
    };
  }
  if (measured.value === undefined)
    return { ...base, verdict: 'fail', reason: 'no data: the query returned nothing' };
  const why = failing(check, measured.value, measured.stable);
  return why === undefined
    ? { ...base, verdict: 'pass' }
    : { ...base, verdict: 'fail', reason: why };
}

function fill(query: string, lane: string, service: string, window: Window): string {
  return query
    .replace(/\{\{\s*lane\s*\}\}/g, lane)
    .replace(/\{\{\s*service\s*\}\}/g, service)
    .replace(/\{\{\s*interval\s*\}\}/g, rangeOf(window));
}

/** Asks the provider for what one check needs; the canary value, and the stable one when relative. */
async function measure(
  provider: MetricsProvider,
  check: Check,
  service: string,
  lane: string,
  window: Window,
): Promise<Pick<Measured, 'value' | 'stable'>> {
  const of = (forLane: string): MetricQuery =>
    check.name === 'custom'
      ? { kind: 'promql', query: fill(check.query, forLane, service, window) }
      : {
          kind: 'duration',
          stat: check.name === 'request-duration' ? check.stat : 'mean',
          service,
          lane: forLane,
        };
  const value = await provider.query(of(lane), window);
  const relative = check.name !== 'request-success-rate' && check.relative !== undefined;
  const stable = relative ? await provider.query(of(STABLE), window) : undefined;
  // Durations are seconds in the metrics and milliseconds in the checks.
  const scale = check.name === 'request-duration' ? 1000 : 1;
  return {
    value: value === undefined ? undefined : value * scale,
    stable: stable === undefined ? undefined : stable * scale,
  };
}

/** Every check of the analysis, for every service of the lane, over one window. */
export async function runChecks(
  provider: MetricsProvider,
  analysis: Analysis,
  lane: string,
  services: readonly string[],
  window: Window,
): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const service of services) {
    const count = async (kind: 'requests' | 'errors' | 'fallbacks') =>
      (await provider.query({ kind, service, lane }, window)) ?? 0;
    let served = 0;
    let errors = 0;
    let fallbacks = 0;
    try {
      [served, errors, fallbacks] = await Promise.all([
        count('requests'),
        count('errors'),
        count('fallbacks'),
      ]);
    } catch (error) {
      for (const check of analysis.checks) results.push(queryFailed(service, check, error));
      continue;
    }
    // A request that fell back away from the canary was meant for it, and failed there.
    const samples = served + fallbacks;
    for (const check of analysis.checks) {
      if (check.name === 'request-success-rate') {
        const value = samples > 0 ? (100 * (served - errors)) / samples : undefined;
        results.push(judge(service, check, { samples, value }, analysis.minSamples));
        continue;
      }
      try {
        const measured = await measure(provider, check, service, lane, window);
        results.push(judge(service, check, { samples, ...measured }, analysis.minSamples));
      } catch (error) {
        results.push(queryFailed(service, check, error));
      }
    }
  }
  return results;
}

function queryFailed(service: string, check: Check, error: unknown): CheckResult {
  return {
    service,
    check: checkName(check),
    limit: limitText(check),
    samples: 0,
    verdict: 'fail',
    reason: `query failed: ${error instanceof Error ? error.message : String(error)}`,
  };
}
