import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Deadline } from '../deadline-queue.js';
import type { BodyExpiry } from '../http/body-watch.js';
import { ProxyErrorCodes, respondError, upstreamRefusal } from '../http/respond.js';
import type { ProxyRuntime } from '../runtime.js';
import { AbortSwitch } from '../upstream/abort.js';
import { type ForwardOutcome, requestHasBody } from '../upstream/forward.js';
import type { ListenerName } from './lane-tag.js';

/** Why a request was stopped before it was answered. */
export type StopCause = 'client_gone' | 'deadline' | BodyExpiry;

/** nginx's status for a client that closed the connection before it was answered. */
export const CLIENT_CLOSED_REQUEST = 499;

/**
 * One switch for every reason to stop a request: the client leaving, its body not arriving in time,
 * the whole-request deadline. `cause` says which, so the answer and the metric can.
 */
export class RequestSignal extends AbortSwitch {
  cause: StopCause | undefined;
  deadline: Deadline | undefined;
  unwatchBody: (() => void) | undefined;

  stop(cause: StopCause): void {
    if (this.aborted) return;
    this.cause = cause;
    this.abort();
  }

  /** The request is over: its deadlines no longer apply. */
  dispose(): void {
    this.deadline?.clear();
    this.unwatchBody?.();
  }
}

const watching = Symbol('graylane.requestSignal');
type WatchedResponse = ServerResponse & { [watching]?: RequestSignal };

/** One listener for every response, not a closure each: the response carries its signal. */
function onResponseClose(this: WatchedResponse): void {
  const signal = this[watching];
  if (signal && !this.writableFinished) signal.stop('client_gone');
}

/**
 * Arms a signal for one request: the client closing, the body deadlines (for a request with a
 * body) and `upstream.requestTimeoutMs`, which stops applying once the response head is sent, so a
 * long stream (SSE) is cut only by the idle timeouts. `dispose` it when the request is over.
 */
export function watchRequest(
  runtime: ProxyRuntime,
  req: IncomingMessage,
  res: ServerResponse,
): RequestSignal {
  const signal = new RequestSignal();
  (res as WatchedResponse)[watching] = signal;
  // A response closes once; `on` spares the wrapper `once` makes.
  res.on('close', onResponseClose);
  if (requestHasBody(req)) {
    signal.unwatchBody = runtime.bodies.watch(req, (reason) => signal.stop(reason));
  }
  signal.deadline = runtime.deadlines.after(runtime.options.upstream.requestTimeoutMs, () => {
    if (!res.headersSent) signal.stop('deadline');
  });
  return signal;
}

const BODY_EXPIRY_MESSAGE: Record<BodyExpiry, string> = {
  body_timeout: 'request body not received in time',
  body_idle: 'request body stalled',
};

/**
 * A body that did not arrive: 408 before any upstream attempt, 504 once one began (the endpoint has
 * part of it). The connection is closed, since the rest of the body may still be on its way. Counted
 * in `graylane_refused_requests_total`, and logged once per reason: a client can cause it at will.
 */
export function answerBodyExpired(
  runtime: ProxyRuntime,
  res: ServerResponse,
  listener: ListenerName,
  reason: BodyExpiry,
  attempted: boolean,
  extraHeaders: Record<string, string> = {},
): number {
  const status = attempted ? 504 : 408;
  respondError(res, status, ProxyErrorCodes.bodyTimeout, BODY_EXPIRY_MESSAGE[reason], {
    connection: 'close',
    ...extraHeaders,
  });
  runtime.metrics.refused.inc({ listener, reason });
  runtime.warnOnce(reason, { listener, reason }, 'request body timed out');
  return status;
}

export interface SettleContext {
  listener: ListenerName;
  /** What was being waited for, as a failure message names it. */
  what: string;
  /** Headers on an answer the proxy makes (provenance). */
  headers?: Record<string, string>;
  /** Fields of the warning logged when the upstream failed. */
  log: Record<string, unknown>;
  message: string;
}

/**
 * The status to count for a forwarded request that is over, answering the client where it still can
 * be: the endpoint's status; 499 when the client left; 408/504 for a body that did not arrive; the
 * sent status, counted as cut, when the response broke off; 502/504 when the upstream failed.
 */
export function settleForward(
  runtime: ProxyRuntime,
  res: ServerResponse,
  signal: RequestSignal,
  outcome: ForwardOutcome,
  context: SettleContext,
): number {
  if (outcome.ok) {
    for (const direction of outcome.droppedTrailers) {
      runtime.metrics.droppedTrailers.inc({ direction });
    }
    return outcome.status;
  }
  // The upstream broke off mid-response (the proxy then closed the client's, which is no client
  // leaving): the status sent is what the client got, and the cut is counted.
  const clientLeft = signal.cause === 'client_gone' && outcome.failure === 'other';
  if (outcome.responded && outcome.failure !== 'aborted' && !clientLeft) {
    runtime.metrics.cutResponses.inc({ listener: context.listener, reason: outcome.failure });
    return outcome.status;
  }
  const { cause } = signal;
  if (cause === 'client_gone') return CLIENT_CLOSED_REQUEST;
  if (cause === 'body_timeout' || cause === 'body_idle') {
    return answerBodyExpired(runtime, res, context.listener, cause, true, context.headers);
  }
  const failure = cause === 'deadline' ? 'deadline' : outcome.failure;
  if (failure === 'aborted') return CLIENT_CLOSED_REQUEST;
  const answer = upstreamRefusal(failure, context.what);
  runtime.logger.warn({ ...context.log, failure, err: outcome.error }, context.message);
  respondError(res, answer.status, answer.code, answer.message, context.headers);
  return answer.status;
}
