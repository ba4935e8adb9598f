import { STABLE } from '@graylane/lane-core';
import { EndpointMap } from './endpoint-map.js';

/**
 * Passive outlier detection (Envoy's consecutive-5xx / Linkerd's failure accrual): an endpoint with
 * `consecutiveFailures` connect failures or 5xx in a row is ejected for base × times-ejected, capped.
 * At most `maxEjectionPercent` of the stable set is ejected at once, so stable never empties by
 * ejection alone; a lane's set may go to zero, so that its traffic falls back.
 */
export interface OutlierOptions {
  consecutiveFailures: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
  maxEjectionPercent: number;
}

interface EndpointState {
  /** The lane the endpoint was last ejected from, for the gauge's labels. */
  lane: string;
  failures: number;
  ejectedUntil: number;
  timesEjected: number;
  lastEjectedAt: number;
}

export interface EjectionEvent {
  service: string;
  lane: string;
  endpoint: string;
  ejected: boolean;
}

export class OutlierDetector {
  private readonly states = new EndpointMap<EndpointState>();

  constructor(
    private readonly options: OutlierOptions,
    private readonly onChange: (event: EjectionEvent) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  private state(service: string, endpoint: string): EndpointState {
    let state = this.states.get(service, endpoint);
    if (!state) {
      state = { lane: STABLE, failures: 0, ejectedUntil: 0, timesEjected: 0, lastEjectedAt: 0 };
      this.states.set(service, endpoint, state);
    }
    return state;
  }

  isEjected(service: string, lane: string, endpoint: string): boolean {
    const state = this.states.get(service, endpoint);
    if (!state || state.ejectedUntil === 0) return false;
    if (this.now() < state.ejectedUntil) return true;
    // The ejection ran out: the endpoint takes traffic again and must fail afresh to go.
    state.ejectedUntil = 0;
    state.failures = 0;
    this.onChange({ service, lane, endpoint, ejected: false });
    return false;
  }

  recordSuccess(service: string, endpoint: string): void {
    const state = this.states.get(service, endpoint);
    if (!state) return;
    state.failures = 0;
    // A long healthy spell forgives earlier ejections, so the next one starts short again.
    if (
      state.timesEjected > 0 &&
      this.now() - state.lastEjectedAt > this.options.maxEjectionMs * 2
    ) {
      state.timesEjected = 0;
    }
  }

  /** Records a failure; `setEndpoints` is the endpoint's whole set, for the ejection cap. */
  recordFailure(
    service: string,
    lane: string,
    endpoint: string,
    setEndpoints: readonly string[],
  ): void {
    const state = this.state(service, endpoint);
    state.failures++;
    if (state.failures < this.options.consecutiveFailures || state.ejectedUntil > this.now())
      return;
    if (lane === STABLE) {
      const ejected = setEndpoints.filter(
        (e) => e !== endpoint && this.isEjected(service, lane, e),
      );
      const allowed = Math.floor((setEndpoints.length * this.options.maxEjectionPercent) / 100);
      if (ejected.length + 1 > allowed) return;
    }
    state.lane = lane;
    state.timesEjected++;
    state.lastEjectedAt = this.now();
    const duration = Math.min(
      this.options.baseEjectionMs * state.timesEjected,
      this.options.maxEjectionMs,
    );
    state.ejectedUntil = this.now() + duration;
    this.onChange({ service, lane, endpoint, ejected: true });
  }

  /**
   * Ends an ejection early: an active health check that passes is better evidence than an ejection
   * timer (Envoy's `successful_active_health_check_uneject_host`).
   */
  reinstate(service: string, lane: string, endpoint: string): void {
    const state = this.states.get(service, endpoint);
    if (!state) return;
    state.failures = 0;
    if (state.ejectedUntil === 0) return;
    state.ejectedUntil = 0;
    this.onChange({ service, lane, endpoint, ejected: false });
  }

  /**
   * Forgets endpoints no longer in the table; one that was ejected is reported back, so that its
   * gauge does not keep saying 1 for an endpoint that is gone, or comes back later healthy.
   */
  retain(keep: (service: string, endpoint: string) => boolean): void {
    for (const [service, endpoint, state] of this.states.entries()) {
      if (keep(service, endpoint)) continue;
      this.states.delete(service, endpoint);
      if (state.ejectedUntil !== 0) {
        this.onChange({ service, lane: state.lane, endpoint, ejected: false });
      }
    }
  }
}
