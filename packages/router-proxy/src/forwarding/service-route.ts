import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { formatHop, isSynthetic, LANE_SERVED_HEADER, prependServed } from '@graylane/lane-core';
import { type AnswerTarget, ProxyErrorCodes, respondError } from '../http/respond.js';
import { type CompiledTable, laneLabel, type ServiceView } from '../routing/compiled-table.js';
import type { ProxyRuntime } from '../runtime.js';
import { type AttemptKind, type AttemptTarget, attemptEndpoints } from '../upstream/attempts.js';
import { nothingSent } from '../upstream/errors.js';
import { type ForwardOutcome, forwardOnce, requestHasBody } from '../upstream/forward.js';
import { RequestBody } from '../upstream/request-body.js';
import { type ListenerName, tagForwarded } from './lane-tag.js';
import {
  answerBodyExpired,
  CLIENT_CLOSED_REQUEST,
  type RequestSignal,
  settleForward,
  watchRequest,
} from './request-signal.js';

export { provenance } from '../upstream/attempts.js';

export { LANE_SERVED_HEADER };

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

/** This hop first, then the hops the upstream reported, so the header reads in call order. */
export function prependHop(headers: OutgoingHttpHeaders, hop: string): void {
  const downstream = headers[LANE_SERVED_HEADER];
  headers[LANE_SERVED_HEADER] = prependServed(
    hop,
    typeof downstream === 'number' ? String(downstream) : downstream,
  );
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

/** No endpoint along the lane's fallback chain: 503, `x-lane-served: <service>=none`, counted. */
export function refuseNoEndpoint(
  runtime: ProxyRuntime,
  to: AnswerTarget,
  request: Pick<ServiceRequest, 'listener' | 'table' | 'service' | 'lane'>,
  reason: string,
): void {
  const { listener, table, service, lane } = request;
  respondError(to, 503, ProxyErrorCodes.noEndpoint, reason, {
    [LANE_SERVED_HEADER]: formatHop(service.name, 'none'),
  });
  runtime.metrics.requests.inc({
    listener,
    service: service.name,
    lane: laneLabel(table, lane),
    version: '',
    code: 503,
  });
}

/** `service web lane gray endpoint http://…`: what a failure message names. */
export const describeTarget = (service: string, target: AttemptTarget) =>
  `service ${service} lane ${target.set.lane} endpoint ${target.endpoint}`;

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** The body stopped arriving, or the client left, before it was all read. */
const STOPPED = Symbol('stopped');

/**
 * The body, if all of it came with the head: by the first microtask after the request event the
 * parser has pushed what the same read held, so a small body of known length is waiting whole in
 * the request's buffer. Sent from memory, it needs no wrapper stream and no stream pump in undici
 * (whose objects, kept across scavenges, cost mark-compacts under load), and may be sent again, as
 * a kept body may.
 */
function arrivedBody(req: IncomingMessage, length: number, capBytes: number): Buffer | undefined {
  if (req.readableDidRead || length > capBytes || req.readableLength > capBytes) return undefined;
  if (req.readableLength !== length && !req.complete) return undefined;
  const body: Buffer | null = req.read();
  return body ?? Buffer.alloc(0);
}

/**
 * A body that a retry can send again: none, one that came with the head (`arrivedBody`), or one
 * small enough to have been kept in memory. Its reading ends when the signal stops (deadline,
 * stall, client gone), and what was read is dropped. Otherwise (undefined) the body is streamed.
 */
function replayableBody(
  req: IncomingMessage,
  maySendTwice: boolean,
  capBytes: number,
  signal: RequestSignal,
): Promise<Buffer | null | undefined | typeof STOPPED> {
  if (!requestHasBody(req)) return Promise.resolve(null);
  const length = Number(req.headers['content-length']);
  if (!maySendTwice || !Number.isFinite(length) || length > capBytes) {
    return Promise.resolve().then(() => arrivedBody(req, length, capBytes));
  }
  return new Promise((resolve) => {
    let chunks: Buffer[] = [];
    const onData = (chunk: Buffer) => chunks.push(chunk);
    const finish = (result: Buffer | typeof STOPPED) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      signal.offAbort(onStop);
      if (result === STOPPED) req.pause();
      chunks = [];
      resolve(result);
    };
    const onEnd = () => finish(Buffer.concat(chunks));
    const onStop = () => finish(STOPPED);
    // A client that resets mid-body: its response closes too, which stops the signal.
    const onError = () => signal.stop('client_gone');
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
    signal.onAbort(onStop);
  });
}

/**
 * A plain request's attempts: forwarded with undici, the response streamed back as it comes. It may
 * be sent again when nothing of it was sent, or when it is idempotent (or the service opts in) and
 * its body was kept or not yet read; never once response bytes reached the client.
 */
function forwardAttempts(
  runtime: ProxyRuntime,
  req: IncomingMessage,
  res: ServerResponse,
  request: ServiceRequest,
  body: Buffer | null | undefined,
  maySendTwice: boolean,
  signal: RequestSignal,
): AttemptKind<ForwardOutcome> {
  const method = req.method ?? 'GET';
  let streamed: RequestBody | undefined;
  return {
    send({ endpoint, hop }, release) {
      if (body === undefined) streamed = new RequestBody(req);
      return forwardOnce(
        runtime,
        req,
        res,
        {
          origin: endpoint,
          path: request.path,
          method,
          headers: request.headers,
          body: streamed ?? body,
        },
        (headers) => {
          mergeHeaders(headers, request.responseHeaders);
          prependHop(headers, hop);
        },
        signal,
        release,
      );
    },
    judge(outcome) {
      if (outcome.ok) return { answered: outcome.status };
      const replayable = body !== undefined || !streamed?.pulled;
      const retry =
        !outcome.responded &&
        outcome.failure !== 'aborted' &&
        replayable &&
        (nothingSent(outcome.failure) || maySendTwice) &&
        !signal.aborted;
      return { failure: outcome.failure, retry };
    },
  };
}

/**
 * Routes a request to the service's endpoints for its lane, falling back along the chain, with one
 * retry on the next candidate (see attemptEndpoints), an overall deadline (retries included, until
 * the response head is sent) and deadlines on the request body (`watchRequest`).
 */
export async function forwardToService(
  runtime: ProxyRuntime,
  req: IncomingMessage,
  res: ServerResponse,
  request: ServiceRequest,
): Promise<void> {
  const { service, lane, listener } = request;
  const started = process.hrtime.bigint();
  const signal = watchRequest(runtime, req, res);
  tagForwarded(request);
  const asked = {
    listener,
    service: service.name,
    lane: laneLabel(request.table, lane),
    version: '',
  };
  try {
    const maySendTwice = IDEMPOTENT.has(req.method ?? 'GET') || service.retryNonIdempotent;
    // A request without a body (most) does not wait a turn for one.
    const body = requestHasBody(req)
      ? await replayableBody(req, maySendTwice, runtime.options.retry.bufferBytes, signal)
      : null;
    if (body === STOPPED) {
      const cause = signal.cause;
      const code =
        cause === 'body_timeout' || cause === 'body_idle'
          ? answerBodyExpired(runtime, res, listener, cause, false)
          : CLIENT_CLOSED_REQUEST;
      runtime.metrics.recordRequest(asked, code, started, isSynthetic(req.headers));
      return;
    }
    const attempted = await attemptEndpoints(
      runtime,
      service,
      lane,
      forwardAttempts(runtime, req, res, request, body, maySendTwice, signal),
    );
    if (!attempted.ok) {
      refuseNoEndpoint(runtime, res, request, attempted.reason);
      return;
    }
    const { target, outcome } = attempted;
    const code = settleForward(runtime, res, signal, outcome, {
      listener,
      what: describeTarget(service.name, target),
      headers: { [LANE_SERVED_HEADER]: target.hop },
      log: { service: service.name, lane, endpoint: target.endpoint },
      message: 'upstream failed',
    });
    const { set } = target;
    runtime.metrics.recordRequest(
      { listener, service: service.name, lane: set.lane, version: set.version ?? '' },
      code,
      started,
      isSynthetic(req.headers),
    );
  } finally {
    signal.dispose();
  }
}
