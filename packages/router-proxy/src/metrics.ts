import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { type HistogramSeries, SeriesHistogram, Tally } from './hot-metrics.js';

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The Prometheus names are a contract (DESIGN.md "Metrics"): dashboards and analysis query them. */
export class ProxyMetrics {
  readonly registry = new Registry();

  readonly requests: Counter<'listener' | 'service' | 'lane' | 'version' | 'code'> = new Counter({
    name: 'graylane_requests_total',
    help: 'Requests answered, by listener, service, the lane and version that served them, and status code.',
    labelNames: ['listener', 'service', 'lane', 'version', 'code'] as const,
    registers: [this.registry],
    collect: (): void => this.answered.drainInto(this.requests),
  });
  private readonly answered = new Tally<'listener' | 'service' | 'lane' | 'version' | 'code'>();

  readonly duration = new SeriesHistogram(
    'graylane_request_duration_seconds',
    'Time from request start to response end, by listener, service, lane and version.',
    DURATION_BUCKETS,
    this.registry,
  );

  /** Synthetic requests (x-graylane-synthetic: 1, the controller's analysis load), kept apart. */
  readonly syntheticRequests: Counter<'listener' | 'service' | 'lane' | 'version' | 'code'> =
    new Counter({
      name: 'graylane_synthetic_requests_total',
      help: 'Synthetic requests answered (analysis load), labelled as graylane_requests_total.',
      labelNames: ['listener', 'service', 'lane', 'version', 'code'] as const,
      registers: [this.registry],
      collect: (): void => this.answeredSynthetic.drainInto(this.syntheticRequests),
    });
  private readonly answeredSynthetic = new Tally<
    'listener' | 'service' | 'lane' | 'version' | 'code'
  >();

  readonly syntheticDuration = new SeriesHistogram(
    'graylane_synthetic_request_duration_seconds',
    'Duration of synthetic requests, labelled as graylane_request_duration_seconds.',
    DURATION_BUCKETS,
    this.registry,
  );

  readonly fallbacks = new Counter({
    name: 'graylane_fallbacks_total',
    help: 'Requests served by another lane than the one they asked for, by reason.',
    labelNames: ['service', 'from_lane', 'to_lane', 'reason'] as const,
    registers: [this.registry],
  });

  readonly laneAssignments: Counter<'entrypoint' | 'lane' | 'reason'> = new Counter({
    name: 'graylane_lane_assignments_total',
    help: 'Lanes given to requests at the gateway, by entrypoint and reason.',
    labelNames: ['entrypoint', 'lane', 'reason'] as const,
    registers: [this.registry],
    collect: (): void => this.assigned.drainInto(this.laneAssignments),
  });
  private readonly assigned = new Tally<'entrypoint' | 'lane' | 'reason'>();

  /** A lane given at the gateway. */
  recordAssignment(entrypoint: string, lane: string, reason: string): void {
    const key = `${entrypoint}\u0000${lane}\u0000${reason}`;
    if (!this.assigned.bump(key)) this.assigned.open(key, { entrypoint, lane, reason });
  }

  readonly invalidLane = new Counter({
    name: 'graylane_invalid_lane_total',
    help: 'Requests whose lane tag was invalid and dropped.',
    labelNames: ['listener'] as const,
    registers: [this.registry],
  });

  readonly routeTableRevision = new Gauge({
    name: 'graylane_routetable_revision',
    help: 'Revision of the route table being served (-1 before one is loaded).',
    registers: [this.registry],
  });

  readonly routeTableErrors = new Counter({
    name: 'graylane_routetable_errors_total',
    help: 'Route tables refused (unreadable or invalid); the last good one keeps serving.',
    registers: [this.registry],
  });

  readonly endpointEjected = new Gauge({
    name: 'graylane_endpoint_ejected',
    help: '1 while an endpoint is ejected from its set, else 0.',
    labelNames: ['service', 'lane', 'endpoint'] as const,
    registers: [this.registry],
  });

  readonly passthrough = new Counter({
    name: 'graylane_passthrough_requests_total',
    help: 'Outbound requests to hosts outside the route table, by whether they were passed or refused.',
    labelNames: ['kind', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly refused = new Counter({
    name: 'graylane_refused_requests_total',
    help: 'Requests the proxy answered itself instead of forwarding, or stopped forwarding, by listener and reason.',
    labelNames: ['listener', 'reason'] as const,
    registers: [this.registry],
  });

  readonly cutResponses = new Counter({
    name: 'graylane_cut_responses_total',
    help: 'Responses cut after their head was sent, by listener and why (reset, timeout: the upstream stopped sending).',
    labelNames: ['listener', 'reason'] as const,
    registers: [this.registry],
  });

  readonly droppedTrailers = new Counter({
    name: 'graylane_dropped_trailers_total',
    help: 'Messages whose trailer fields were dropped (not forwarded), by direction: request or response.',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });

  /**
   * One request answered: counted by status (499: the client went away) and timed from `startedNs`;
   * a synthetic one in the synthetic metrics.
   */
  recordRequest(
    labels: { listener: string; service: string; lane: string; version: string },
    code: number,
    startedNs: bigint,
    synthetic = false,
  ): void {
    const key = `${synthetic ? 's' : 'b'}\u0000${labels.listener}\u0000${labels.service}\u0000${labels.lane}\u0000${labels.version}`;
    const tally = synthetic ? this.answeredSynthetic : this.answered;
    const series = `${key}\u0000${code}`;
    if (!tally.bump(series)) tally.open(series, { ...labels, code });
    const histogram = synthetic ? this.syntheticDuration : this.duration;
    let duration = this.durations.get(key);
    if (!duration) {
      duration = histogram.series(key, { ...labels });
      this.durations.set(key, duration);
    }
    histogram.observe(duration, Number(process.hrtime.bigint() - startedNs) / 1e9);
  }

  /**
   * Histogram children per series. Series are few (listener × service × lane × version), and a
   * table change adds, never churns.
   */
  private readonly durations = new Map<string, HistogramSeries>();

  constructor() {
    this.routeTableRevision.set(-1);
    collectDefaultMetrics({ register: this.registry });
  }
}
