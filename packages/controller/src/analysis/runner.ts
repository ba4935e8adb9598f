import type { Logger } from 'pino';
import type { Provider } from '../documents/analysis.js';
import { parseDuration } from '../documents/duration.js';
import type { MeasuredInterval } from '../release/machine.js';
import type { Release } from '../release/status.js';
import { runChecks } from './checks.js';
import { DirectProvider } from './direct.js';
import { PrometheusProvider } from './prometheus.js';
import type { MetricsProvider } from './provider.js';

interface Run {
  /** The step's start (status.analysis.since) this run measures for. */
  since: string;
  provider: MetricsProvider;
  /** Start of the interval being measured; undefined until the provider answered once. */
  from?: number;
  busy: boolean;
  latest?: MeasuredInterval;
}

export interface AnalysisRunnerOptions {
  logger: Logger;
  /** Admin `/metrics` URLs of the proxies the controller runs, for the direct provider's default. */
  managedTargets: () => string[];
  /** Called when an interval is measured, so that the release advances without waiting. */
  onMeasured: () => void;
}

export function createProvider(
  provider: Provider,
  managedTargets: () => string[],
): MetricsProvider {
  if (provider.type === 'prometheus') return new PrometheusProvider(provider.address);
  const targets = provider.targets;
  return new DirectProvider(() => targets ?? managedTargets());
}

/**
 * The I/O half of analysis, run by the controller's reconcile: while a release's step is being
 * analysed it measures back-to-back intervals of `analysis.interval` and hands the latest to the
 * pure core as an observation. It keeps nothing that matters across restarts: a restarted
 * controller starts a fresh interval of the same step.
 */
export class AnalysisRunner {
  private readonly runs = new Map<string, Run>();

  constructor(private readonly options: AnalysisRunnerOptions) {}

  /** The latest interval measured for the release's current step; starts the next one when due. */
  observe(release: Release, now: number): MeasuredInterval | undefined {
    const name = release.metadata.name;
    const analysis = release.spec.analysis;
    const since = release.status.analysis?.since;
    if (analysis === undefined || since === undefined || release.status.phase !== 'Progressing') {
      this.runs.get(name)?.provider.close?.();
      this.runs.delete(name);
      return undefined;
    }
    const run = this.runs.get(name);
    if (run === undefined || run.since !== since) {
      run?.provider.close?.();
      const provider = createProvider(analysis.provider, this.options.managedTargets);
      const fresh: Run = { since, provider, busy: true };
      this.runs.set(name, fresh);
      void provider.isOnline().then((online) => {
        if (!online) this.log(release).warn('the metrics provider does not answer');
        fresh.from = Date.now();
        fresh.busy = false;
      });
      return undefined;
    }
    const interval = parseDuration(analysis.interval)!;
    const from = run.from;
    if (!run.busy && from !== undefined && now >= from + interval) {
      run.busy = true;
      const current = run;
      const to = Date.now();
      const services = release.spec.services.map((s) => s.name);
      void runChecks(current.provider, analysis, release.spec.lane, services, { from, to })
        .then((checks) => {
          current.latest = { from, to, checks };
          current.from = to;
        })
        .catch((error: unknown) => this.log(release).error({ err: error }, 'analysis failed'))
        .finally(() => {
          current.busy = false;
          this.options.onMeasured();
        });
    }
    return run.latest;
  }

  private log(release: Release): Logger {
    return this.options.logger.child({ release: release.metadata.name, lane: release.spec.lane });
  }

  close(): void {
    for (const run of this.runs.values()) run.provider.close?.();
    this.runs.clear();
  }
}
