import type { Logger } from 'pino';
import type { Provider } from '../documents/analysis.js';
import { parseDuration } from '../documents/duration.js';
import type { GateOutcome, MeasuredInterval } from '../release/observations.js';
import type { CheckResult, Release } from '../release/status.js';
import { runChecks } from './checks.js';
import { DirectProvider } from './direct.js';
import { LoadGenerator } from './load.js';
import { PrometheusProvider } from './prometheus.js';
import type { MetricsProvider } from './provider.js';
import { callWebhook, callWebhooks } from './webhooks.js';

interface Run {
  /** The step's start (status.analysis.since) this run measures for. */
  since: string;
  provider: MetricsProvider;
  /** Start of the interval being measured; undefined until the provider answered once. */
  from?: number;
  busy: boolean;
  latest?: MeasuredInterval;
  load?: LoadGenerator;
}

interface GateRun {
  /** The gate's start (status.analysis.gate.since) this answer is for. */
  since: string;
  outcome?: GateOutcome;
}

export interface AnalysisObservations {
  analysis?: MeasuredInterval;
  gate?: GateOutcome;
}

export interface AnalysisRunnerOptions {
  logger: Logger;
  /** Admin `/metrics` URLs of the proxies the controller runs, for the direct provider's default. */
  managedTargets: () => string[];
  /** The gateway the controller runs (`http://127.0.0.1:8080`), for synthetic load's default. */
  gateway: () => string | undefined;
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
  private readonly gates = new Map<string, GateRun>();
  /** When each release's gate webhooks were last called: a refused gate is asked once an interval. */
  private readonly gateCalled = new Map<string, number>();

  constructor(private readonly options: AnalysisRunnerOptions) {}

  /** What the driver knows for the release's analysis: its latest interval, its gate's answer. */
  observe(release: Release, now: number): AnalysisObservations {
    const gate = this.observeGate(release, now);
    const analysis = this.observeInterval(release, now);
    return { ...(gate ? { gate } : {}), ...(analysis ? { analysis } : {}) };
  }

  /** Calls the webhooks of the gate the release waits on, at most once an interval. */
  private observeGate(release: Release, now: number): GateOutcome | undefined {
    const name = release.metadata.name;
    const gate = release.status.analysis?.gate;
    const analysis = release.spec.analysis;
    if (gate === undefined || analysis === undefined) {
      this.gates.delete(name);
      return undefined;
    }
    const run = this.gates.get(name);
    if (run?.since === gate.since) return run.outcome;
    const interval = parseDuration(analysis.interval)!;
    if (now < (this.gateCalled.get(name) ?? 0) + interval) return undefined;
    const fresh: GateRun = { since: gate.since };
    this.gates.set(name, fresh);
    this.gateCalled.set(name, now);
    void callWebhooks(release, gate.type).then((outcome) => {
      fresh.outcome = { type: gate.type, at: Date.now(), ...outcome };
      this.options.onMeasured();
    });
    return undefined;
  }

  private observeInterval(release: Release, now: number): MeasuredInterval | undefined {
    const name = release.metadata.name;
    const analysis = release.spec.analysis;
    const since = release.status.analysis?.since;
    if (analysis === undefined || since === undefined || release.status.phase !== 'Progressing') {
      this.endRun(name);
      return undefined;
    }
    const run = this.runs.get(name);
    if (run === undefined || run.since !== since) {
      this.endRun(name);
      const provider = createProvider(analysis.provider, this.options.managedTargets);
      const fresh: Run = { since, provider, busy: true };
      this.runs.set(name, fresh);
      const target = analysis.load?.url ?? this.options.gateway();
      if (analysis.load && target !== undefined) {
        fresh.load = new LoadGenerator(analysis.load, target, release.spec.lane);
      } else if (analysis.load) {
        this.log(release).warn('analysis.load has no url and the controller runs no gateway');
      }
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
      void Promise.all([
        runChecks(current.provider, analysis, release.spec.lane, services, { from, to }),
        rolloutWebhooks(release),
        rollbackWebhook(release),
      ])
        .then(([checks, hooks, rollback]) => {
          current.latest = {
            from,
            to,
            checks: [...checks, ...hooks],
            ...(rollback ? { rollback } : {}),
          };
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

  private endRun(name: string): void {
    const run = this.runs.get(name);
    run?.provider.close?.();
    run?.load?.stop();
    this.runs.delete(name);
  }

  forget(name: string): void {
    this.endRun(name);
    this.gates.delete(name);
    this.gateCalled.delete(name);
  }

  private log(release: Release): Logger {
    return this.options.logger.child({ release: release.metadata.name, lane: release.spec.lane });
  }

  close(): void {
    for (const name of [...this.runs.keys()]) this.endRun(name);
  }
}

/** Each rollout webhook as a check of the interval: 2xx passes. */
async function rolloutWebhooks(release: Release): Promise<CheckResult[]> {
  const hooks = (release.spec.analysis?.webhooks ?? []).filter((h) => h.type === 'rollout');
  return await Promise.all(
    hooks.map(async (hook) => {
      const outcome = await callWebhook(release, hook);
      return {
        service: '-',
        check: `webhook ${hook.name}`,
        limit: '2xx',
        samples: 0,
        verdict: outcome.ok ? ('pass' as const) : ('fail' as const),
        ...(outcome.reason ? { reason: outcome.reason } : {}),
      };
    }),
  );
}

/** The name of the first rollback webhook that answers 2xx: the user asks for a rollback. */
async function rollbackWebhook(release: Release): Promise<string | undefined> {
  for (const hook of release.spec.analysis?.webhooks ?? []) {
    if (hook.type === 'rollback' && (await callWebhook(release, hook)).ok) return hook.name;
  }
  return undefined;
}
