import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import {
  type HistogramSeries,
  LabelIndex,
  SeriesHistogram,
  Tally,
  type TallySeries,
} from './hot-metrics.js';

type RequestLabel = 'listener' | 'service' | 'lane' | 'version' | 'code';
type FallbackLabel = 'service' | 'from_lane' | 'to_lane' | 'reason';

/** What one listener × service × lane × version keeps: counts by status, and its duration series. */
interface RequestSeries {
  readonly byCode: Map<number, TallySeries>;
  readonly duration: HistogramSeries;
}

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
  private readonly answered = new Tally<RequestLabel>();

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
  private readonly answeredSynthetic = new Tally<RequestLabel>();

  readonly syntheticDuration = new SeriesHistogram(
    'graylane_synthetic_request_duration_seconds',
    'Duration of synthetic requests, labelled as graylane_request_duration_seconds.',
    DURATION_BUCKETS,
    this.registry,
  );

  readonly fallbacks: Counter<FallbackLabel> = new Counter({
    name: 'graylane_fallbacks_total',
    help: 'Requests served by another lane than the one they asked for, by reason.',
    labelNames: ['service', 'from_lane', 'to_lane', 'reason'] as const,
    registers: [this.registry],
    collect: (): void => this.fellBack.drainInto(this.fallbacks),
  });
  private readonly fellBack = new Tally<FallbackLabel>();
  private readonly fallbackSeries = new LabelIndex<TallySeries>();

  /** One step of a request's fallback walk (a swimlane's usual path: a service with no canary). */
  recordFallback(service: string, fromLane: string, toLane: string, reason: string): void {
    const series =
      this.fallbackSeries.get(service, fromLane, toLane, reason) ??
      this.fallbackSeries.set(
        service,
        fromLane,
        toLane,
        reason,
        this.fellBack.series({ service, from_lane: fromLane, to_lane: toLane, reason }),
      );
    series.count++;
  }

  readonly laneAssignments: Counter<'entrypoint' | 'lane' | 'reason'> = new Counter({
    name: 'graylane_lane_assignments_total',
    help: 'Lanes given to requests at the gateway, by entrypoint and reason.',
    labelNames: ['entrypoint', 'lane', 'reason'] as const,
    registers: [this.registry],
    collect: (): void => this.assigned.drainInto(this.laneAssignments),
  });
  private readonly assigned = new Tally<'entrypoint' | 'lane' | 'reason'>();

  private readonly assignments = new LabelIndex<TallySeries>();

  /** A lane given at the gateway. */
  recordAssignment(entrypoint: string, lane: string, reason: string): void {
    const series =
      this.assignments.get(entrypoint, lane, reason, '') ??
      this.assignments.set(
        entrypoint,
        lane,
        reason,
        '',
        this.assigned.series({ entrypoint, lane, reason }),
      );
    series.count++;
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
    const index = synthetic ? this.syntheticSeries : this.requestSeries;
    const { listener, service, lane, version } = labels;
    const series =
      index.get(listener, service, lane, version) ??
      index.set(listener, service, lane, version, {
        byCode: new Map(),
        duration: (synthetic ? this.syntheticDuration : this.duration).series(
          [listener, service, lane, version].join('\u0000'),
          { ...labels },
        ),
      });
    let counts = series.byCode.get(code);
    if (!counts) {
      counts = (synthetic ? this.answeredSynthetic : this.answered).series({ ...labels, code });
      series.byCode.set(code, counts);
    }
    counts.count++;
    const histogram = synthetic ? this.syntheticDuration : this.duration;
    histogram.observe(series.duration, Number(process.hrtime.bigint() - startedNs) / 1e9);
  }

  /**
   * Series are few (listener × service × lane × version), and a table change adds, never churns.
   */
  private readonly requestSeries = new LabelIndex<RequestSeries>();
  private readonly syntheticSeries = new LabelIndex<RequestSeries>();

  constructor() {
    this.routeTableRevision.set(-1);
    collectDefaultMetrics({ register: this.registry });
  }
}
