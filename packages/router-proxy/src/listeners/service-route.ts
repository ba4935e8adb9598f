import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { recordCarrier, writeLaneTag } from '@graylane/lane-core';
import type { CompiledTable, EndpointSetView, ServiceView } from '../routing/compiled-table.js';
import { type FallbackReason, type FallbackStep, resolveRoute } from '../routing/resolve.js';
import type { ProxyRuntime } from '../runtime.js';
import { excludingTried } from '../upstream/endpoint-health.js';
import { nothingSent, type UpstreamFailure } from '../upstream/errors.js';
import { type ForwardOutcome, forwardOnce, requestHasBody } from '../upstream/forward.js';
import { RequestBody } from '../upstream/request-body.js';
import { ProxyErrorCodes, respondError } from './respond.js';

export type ListenerName = 'gateway' | 'outbound' | 'inbound';

export const LANE_SERVED_HEADER = 'x-lane-served';

export interface ServiceRequest {
  listener: ListenerName;
  table: CompiledTable;
  service: ServiceView;
  /** The lane the request is in. It is kept on the forwarded request even when another lane serves it. */
  lane: string;
  path: string;
  /** End-to-end headers to send upstream, x-forwarded-* already set. */
  headers: Record<string, string | string[]>;
  /** Headers this hop adds to the response (e.g. a sticky cookie). */
  responseHeaders?: OutgoingHttpHeaders;
}

/** `backend=stable;fallback=absent`: this hop, as the tester reads it in `x-lane-served`. */
export function provenance(
  service: string,
  servedLane: string,
  fallbacks: readonly FallbackStep[],
) {
  const last = fallbacks.at(-1);
  return last ? `${service}=${servedLane};fallback=${last.reason}` : `${service}=${servedLane}`;
}

/** This hop first, then the hops the upstream reported, so the header reads in call order. */
export function prependHop(headers: OutgoingHttpHeaders, hop: string): void {
  const downstream = headers[LANE_SERVED_HEADER];
  const rest = Array.isArray(downstream) ? downstream.join(', ') : downstream;
  headers[LANE_SERVED_HEADER] = rest ? `${hop}, ${rest}` : hop;
}

export function mergeHeaders(
  target: OutgoingHttpHeaders,
  extra: OutgoingHttpHeaders | undefined,
): void {
  if (!extra) return;
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) continue;
    const existing = target[name];
    if (name === 'set-cookie' && existing !== undefined) {
      target[name] = [existing, value].flat().map(String);
    } else target[name] = value;
  }
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** A body that a retry can send again: none, or one small enough to have been kept in memory. */
async function replayableBody(
  req: IncomingMessage,
  maySendTwice: boolean,
  capBytes: number,
): Promise<Buffer | null | undefined> {
  if (!requestHasBody(req)) return null;
  const length = Number(req.headers['content-length']);
  if (!maySendTwice || !Number.isFinite(length) || length > capBytes) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function fallbackReasonOf(failure: UpstreamFailure): FallbackReason {
  return failure === 'timeout' || failure === 'connect_timeout' ? 'timeout' : 'connect_error';
}

interface Attempted {
  endpoint: string;
  set: EndpointSetView;
  fallbacks: readonly FallbackStep[];
  hop: string;
  outcome: ForwardOutcome;
}

/**
 * Routes a request to the service's endpoints for its lane, falling back along the chain. A connect
 * failure, a reset or a timeout before any response byte is retried once on the next candidate (the
 * same lane's next endpoint, then the fallback lane) when the retry budget allows and the request can
 * be sent again: nothing of it was sent, or it is idempotent (or the service opts in) with a body
 * that was kept.
 */
export async function forwardToService(
  runtime: ProxyRuntime,
  req: IncomingMessage,
  res: ServerResponse,
  request: ServiceRequest,
): Promise<void> {
  const { service, lane, table } = request;
  const started = process.hrtime.bigint();
  const method = req.method ?? 'GET';
  const maySendTwice = IDEMPOTENT.has(method) || service.retryNonIdempotent;
  runtime.budget.recordRequest(service.name);
  const abort = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) abort.abort();
  };
  res.once('close', onClose);
  const deadline = AbortSignal.timeout(runtime.options.upstream.requestTimeoutMs);
  const signal = AbortSignal.any([abort.signal, deadline]);
  writeLaneTag(recordCarrier(request.headers), lane, {
    laneHeader: table.table.laneHeader,
    baggageKey: table.table.baggageKey,
  });
  const tried = new Map<string, FallbackReason>();
  let body: Buffer | null | undefined;
  let streamed: RequestBody | undefined;
  let last: Attempted | undefined;
  try {
    body = await replayableBody(req, maySendTwice, runtime.options.retry.bufferBytes);
    for (;;) {
      const availability =
        tried.size === 0 ? runtime.health : excludingTried(runtime.health, tried);
      const resolution = resolveRoute(service, lane, availability);
      if (!resolution.ok) {
        if (!last) return respondNoEndpoint(runtime, res, request, resolution.reason);
        break;
      }
      const { set, endpoints, fallbacks } = resolution;
      const endpoint = runtime.balancer.pick(
        endpoints,
        service.loadBalancing,
        `${service.name}/${set.lane}`,
      )!;
      const hop = provenance(service.name, set.lane, fallbacks);
      if (body === undefined) streamed = new RequestBody(req);
      const done = runtime.balancer.begin(endpoint);
      const outcome = await forwardOnce(
        runtime.dispatcher,
        req,
        res,
        {
          origin: endpoint,
          path: request.path,
          method,
          headers: request.headers,
          body: body === undefined ? streamed : body,
        },
        (headers) => {
          mergeHeaders(headers, request.responseHeaders);
          prependHop(headers, hop);
        },
        signal,
      );
      done();
      last = { endpoint, set, fallbacks, hop, outcome };
      recordOutlier(runtime, service.name, set, endpoint, outcome);
      if (outcome.ok || outcome.responded || outcome.failure === 'aborted') break;
      const replayable = body !== undefined || !streamed?.pulled;
      const canRetry =
        tried.size === 0 &&
        replayable &&
        (nothingSent(outcome.failure) || maySendTwice) &&
        !signal.aborted &&
        runtime.budget.tryRetry(service.name);
      if (!canRetry) break;
      tried.set(endpoint, fallbackReasonOf(outcome.failure));
    }
  } finally {
    res.off('close', onClose);
  }
  if (!last) return;
  // Counted for the attempt whose hop the client sees, so the metric and x-lane-served agree.
  countFallbacks(runtime, service.name, last.fallbacks);
  finish(runtime, res, request, last, deadline.aborted, started);
}

function recordOutlier(
  runtime: ProxyRuntime,
  service: string,
  set: EndpointSetView,
  endpoint: string,
  outcome: ForwardOutcome,
): void {
  const failed = outcome.ok
    ? outcome.status >= 500
    : outcome.failure !== 'aborted' && outcome.failure !== 'other';
  if (failed) runtime.outliers.recordFailure(service, set.lane, endpoint, set.endpoints);
  else if (outcome.ok) runtime.outliers.recordSuccess(service, endpoint);
}

export function countFallbacks(
  runtime: ProxyRuntime,
  service: string,
  fallbacks: readonly FallbackStep[],
) {
  for (const step of fallbacks) {
    runtime.metrics.fallbacks.inc({
      service,
      from_lane: step.from,
      to_lane: step.to,
      reason: step.reason,
    });
  }
}

function respondNoEndpoint(
  runtime: ProxyRuntime,
  res: ServerResponse,
  request: ServiceRequest,
  reason: string,
): void {
  const { listener, service, lane } = request;
  respondError(res, 503, ProxyErrorCodes.noEndpoint, reason, {
    [LANE_SERVED_HEADER]: `${service.name}=none`,
  });
  runtime.metrics.requests.inc({ listener, service: service.name, lane, version: '', code: 503 });
}

/** Answers for the last attempt when it failed before responding, then records the request. */
function finish(
  runtime: ProxyRuntime,
  res: ServerResponse,
  request: ServiceRequest,
  last: Attempted,
  timedOut: boolean,
  started: bigint,
): void {
  const { service, lane, listener } = request;
  const { outcome, set, endpoint, hop } = last;
  let code: number;
  if (outcome.ok) code = outcome.status;
  else if (outcome.responded || (outcome.failure === 'aborted' && !timedOut)) code = 0;
  else {
    const timeout =
      timedOut || outcome.failure === 'timeout' || outcome.failure === 'connect_timeout';
    code = timeout ? 504 : 502;
    const what = `service ${service.name} lane ${set.lane} endpoint ${endpoint}`;
    runtime.logger.warn(
      { service: service.name, lane, endpoint, failure: outcome.failure, err: outcome.error },
      'upstream failed',
    );
    respondError(
      res,
      code,
      timeout ? ProxyErrorCodes.upstreamTimeout : ProxyErrorCodes.upstream,
      `${timeout ? 'timed out waiting for' : 'could not reach'} ${what}`,
      { [LANE_SERVED_HEADER]: hop },
    );
  }
  const labels = { listener, service: service.name, lane: set.lane, version: set.version ?? '' };
  runtime.metrics.requests.inc({ ...labels, code });
  runtime.metrics.duration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
}
