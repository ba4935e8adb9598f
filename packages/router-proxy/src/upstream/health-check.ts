import type { HealthCheck } from '@graylane/lane-core';
import { Agent, request } from 'undici';
import type { Logger } from '../logger.js';
import type { CompiledTable } from '../routing/compiled-table.js';
import { EndpointMap } from './endpoint-map.js';

export interface HealthEvent {
  service: string;
  lane: string;
  endpoint: string;
  healthy: boolean;
}

/** Sends one check to an endpoint: true when it passed. */
export type HealthProbe = (endpoint: string, check: HealthCheck) => Promise<boolean>;

/** Where checks are scheduled: the process's timers, or a test's clock. */
export interface CheckScheduler {
  schedule(run: () => void, delayMs: number): unknown;
  cancel(handle: unknown): void;
}

const processTimers: CheckScheduler = {
  schedule(run, delayMs) {
    // Checks alone never keep the process alive.
    return setTimeout(run, delayMs).unref();
  },
  cancel(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/** An HTTP GET of the check's path; a 2xx or 3xx within `timeoutMs` passes. */
export function httpProbe(agent: Agent): HealthProbe {
  return async (endpoint, check) => {
    try {
      const res = await request(`${endpoint}${check.path}`, {
        dispatcher: agent,
        signal: AbortSignal.timeout(check.timeoutMs),
        headers: { 'user-agent': 'graylane-health-check' },
      });
      await res.body.dump();
      return res.statusCode >= 200 && res.statusCode < 400;
    } catch {
      return false;
    }
  };
}

interface Prober {
  config: string;
  timer: unknown;
  healthy: boolean;
  passes: number;
  failures: number;
  stopped: boolean;
}

/**
 * Active health checks for the services whose table entry asks for them. Endpoints start healthy
 * (a new canary is not blackholed before its first check) and change state only after
 * `unhealthyThreshold` failed or `healthyThreshold` passed checks in a row. The first check runs at
 * once; each next one `intervalMs` after the previous one ended, so checks never overlap.
 */
export class ActiveHealthChecker {
  private readonly probers = new EndpointMap<Prober>();
  private readonly agent: Agent;
  private readonly probe: HealthProbe;
  private readonly scheduler: CheckScheduler;

  constructor(
    private readonly onChange: (event: HealthEvent) => void,
    private readonly logger: Logger,
    options: { probe?: HealthProbe; scheduler?: CheckScheduler; agent?: Agent } = {},
  ) {
    // The agent the probe uses, closed with the checker.
    this.agent = options.agent ?? new Agent({ keepAliveTimeout: 1_000, connections: 2 });
    this.probe = options.probe ?? httpProbe(this.agent);
    this.scheduler = options.scheduler ?? processTimers;
  }

  isUnhealthy(service: string, endpoint: string): boolean {
    return this.probers.get(service, endpoint)?.healthy === false;
  }

  /** Starts probers for every checked endpoint of `table` and stops those it no longer has. */
  reconcile(table: CompiledTable): void {
    const wanted = new EndpointMap<true>();
    for (const service of table.services.values()) {
      const check = service.healthCheck;
      if (!check) continue;
      for (const set of service.sets.values()) {
        for (const endpoint of set.endpoints) {
          wanted.set(service.name, endpoint, true);
          const config = JSON.stringify(check);
          const existing = this.probers.get(service.name, endpoint);
          if (existing?.config === config) continue;
          if (existing) this.stopProber(existing);
          this.startProber(config, check, { service: service.name, lane: set.lane, endpoint });
        }
      }
    }
    for (const [service, endpoint, prober] of this.probers.entries()) {
      if (!wanted.get(service, endpoint)) {
        this.stopProber(prober);
        this.probers.delete(service, endpoint);
      }
    }
  }

  private startProber(
    config: string,
    check: HealthCheck,
    target: { service: string; lane: string; endpoint: string },
  ): void {
    const prober: Prober = {
      config,
      timer: undefined,
      healthy: true,
      passes: 0,
      failures: 0,
      stopped: false,
    };
    this.probers.set(target.service, target.endpoint, prober);
    const run = async () => {
      const passed = await this.probe(target.endpoint, check).catch(() => false);
      if (prober.stopped) return;
      this.record(prober, passed, check, target);
      prober.timer = this.scheduler.schedule(run, check.intervalMs);
    };
    prober.timer = this.scheduler.schedule(run, 0);
  }

  private record(
    prober: Prober,
    passed: boolean,
    check: HealthCheck,
    target: { service: string; lane: string; endpoint: string },
  ): void {
    if (passed) {
      prober.passes++;
      prober.failures = 0;
      if (!prober.healthy && prober.passes >= check.healthyThreshold) {
        prober.healthy = true;
        this.logger.info(target, 'endpoint healthy again');
        this.onChange({ ...target, healthy: true });
      }
      return;
    }
    prober.failures++;
    prober.passes = 0;
    if (prober.healthy && prober.failures >= check.unhealthyThreshold) {
      prober.healthy = false;
      this.logger.warn(target, 'endpoint failed its health checks');
      this.onChange({ ...target, healthy: false });
    }
  }

  private stopProber(prober: Prober): void {
    prober.stopped = true;
    this.scheduler.cancel(prober.timer);
  }

  async close(): Promise<void> {
    for (const prober of this.probers.values()) this.stopProber(prober);
    this.probers.clear();
    await this.agent.close();
  }
}
