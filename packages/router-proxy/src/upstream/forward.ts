import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { type Dispatcher, errors } from 'undici';
import type { Deadline, Deadlines } from '../deadline-queue.js';
import { responseHeaders } from '../http/headers.js';
import type { ProxyRuntime } from '../runtime.js';
import type { AbortSwitch } from './abort.js';
import { classifyUpstreamError, type UpstreamFailure } from './errors.js';

const { RequestAbortedError } = errors;

export interface ForwardTarget {
  origin: string;
  path: string;
  method: string;
  headers: Record<string, string | string[]>;
  /** What to send as the body; by default the incoming request itself, streamed. */
  body?: Buffer | Readable | null;
}

export type ForwardOutcome =
  /** Answered; `droppedTrailers` names the sides whose trailer fields were not forwarded. */
  | { ok: true; status: number; droppedTrailers: readonly TrailerSide[] }
  /** Failed before any response byte reached the client: the caller may answer or retry. */
  | { ok: false; failure: UpstreamFailure; error: unknown; responded: false }
  /** Failed mid-response (after `status` was sent): the client's response was cut. */
  | { ok: false; failure: UpstreamFailure; error: unknown; responded: true; status: number };

export type TrailerSide = 'request' | 'response';

/**
 * Trailers are not forwarded: undici sends no request trailers, and the upstream's come after the
 * client's response head went out (stream() dropped them; the relay keeps that). Counted instead
 * (graylane_dropped_trailers_total).
 */
function droppedTrailers(req: IncomingMessage, upstream: Record<string, string | string[]>) {
  const sides: TrailerSide[] = [];
  if (req.rawTrailers.length > 0) sides.push('request');
  if (Object.keys(upstream).length > 0) sides.push('response');
  return sides;
}

export function requestHasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

/** Settles an attempt: how it went, once. */
type Settle = (outcome: ForwardOutcome) => void;

/**
 * undici's handler for one attempt: writes the response head and body into the client's response
 * as they come, pausing the upstream while the client's socket is full. A handler of our own
 * instead of `dispatcher.stream()`: no stream wrapper around the client response (`finished`), no
 * AsyncResource or promise of undici's per request.
 *
 * It also keeps the attempt's response-headers deadline, on the runtime's deadline queue (exact to
 * the millisecond, without a Node timer per request): undici runs its own on a coarse timer (a
 * 499 ms tick; a 300 ms timeout answered after 1024-1038 ms), which stays set as a backstop. The
 * time counts from when the request is sent: at once for a request whose body is none or in memory
 * (a new connection's connect time included, which the connect timeout bounds), and from the end
 * of a streamed body, as undici counts from the last body byte written.
 */
class ResponseRelay implements Dispatcher.DispatchHandler {
  status = 0;
  /** The response head did not come in time. */
  expired = false;
  /** Runs when the attempt is over, before the outcome is handed on (the endpoint's in-flight count). */
  onSettled: (() => void) | undefined;
  private controller: Dispatcher.DispatchController | undefined;
  private deadline: Deadline | undefined;
  private headed = false;
  private settled = false;
  private readonly abort = () => {
    if (this.controller && !this.controller.aborted) {
      this.controller.abort(new RequestAbortedError());
    }
  };
  private readonly resume = () => this.controller?.resume();
  private readonly expire = () => {
    this.expired = true;
    this.abort();
  };

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly decorate: (headers: OutgoingHttpHeaders, status: number) => void,
    private readonly request: AbortSwitch,
    private readonly deadlines: Deadlines,
    private readonly timeoutMs: number,
    body: Buffer | Readable | null,
    private readonly settle: Settle,
  ) {
    // The request's switch stops the attempt at any time: the client gone, the request's deadline.
    request.onAbort(this.abort);
    if (body !== null && !Buffer.isBuffer(body)) body.once('end', () => this.startDeadline());
    else this.startDeadline();
  }

  private startDeadline(): void {
    if (this.headed || this.settled) return;
    this.deadline = this.deadlines.after(this.timeoutMs, this.expire);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.request.aborted || this.expired) this.abort();
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    // Informational answers (100 Continue, 103 Early Hints) are not relayed, as stream() did not.
    if (statusCode < 200) return;
    this.headed = true;
    this.deadline?.clear();
    this.status = statusCode;
    const outgoing = responseHeaders(headers);
    this.decorate(outgoing, statusCode);
    this.res.writeHead(statusCode, outgoing);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.res.write(chunk)) return;
    controller.pause();
    this.res.once('drain', this.resume);
  }

  onResponseEnd(
    _controller: Dispatcher.DispatchController,
    trailers: Record<string, string | string[] | undefined>,
  ): void {
    this.res.end();
    this.done({
      ok: true,
      status: this.status,
      droppedTrailers: droppedTrailers(this.req, trailers as Record<string, string | string[]>),
    });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    const failure = this.expired ? 'timeout' : classifyUpstreamError(error);
    if (this.status === 0) {
      this.done({ ok: false, failure, error, responded: false });
      return;
    }
    // The response broke off after its head was sent: the client's is cut.
    this.res.destroy();
    this.done({ ok: false, failure, error, responded: true, status: this.status });
  }

  private done(outcome: ForwardOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.deadline?.clear();
    this.request.offAbort(this.abort);
    this.res.off('drain', this.resume);
    this.onSettled?.();
    this.settle(outcome);
  }
}

/**
 * One attempt: streams the request to `target` and the response back, with no buffering either way.
 * `decorate` adds this hop's headers (provenance, cookies) to the response head. No response head
 * within `headersTimeoutMs` of the request being sent fails the attempt as a `timeout`. `onSettled`
 * runs when the attempt is over, however it ended.
 */
export function forwardOnce(
  runtime: ProxyRuntime,
  req: IncomingMessage,
  res: ServerResponse,
  target: ForwardTarget,
  decorate: (headers: OutgoingHttpHeaders, status: number) => void,
  signal: AbortSwitch,
  onSettled?: () => void,
): Promise<ForwardOutcome> {
  const body = target.body !== undefined ? target.body : requestHasBody(req) ? req : null;
  return new Promise((settle) => {
    const relay = new ResponseRelay(
      req,
      res,
      decorate,
      signal,
      runtime.deadlines,
      runtime.options.upstream.headersTimeoutMs,
      body,
      settle,
    );
    relay.onSettled = onSettled;
    try {
      runtime.dispatcher.dispatch(
        {
          origin: target.origin,
          path: target.path,
          method: target.method as Dispatcher.HttpMethod,
          headers: target.headers,
          body,
        },
        relay,
      );
    } catch (error) {
      onSettled?.();
      throw error;
    }
  });
}
