import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { responseHeaders } from '../http/headers.js';
import { AbortSwitch } from './abort.js';
import { classifyUpstreamError, type UpstreamFailure } from './errors.js';

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
 * Trailers are not forwarded: undici sends no request trailers, and ends the client's response
 * before its `stream()` hands over the upstream's. Counted instead (graylane_dropped_trailers_total).
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

/**
 * The response-headers timeout of one attempt, on a plain timer. undici runs its own on a coarse
 * timer (a 499 ms tick): a 300 ms timeout answered after 1024-1038 ms. undici's stays set as a
 * backstop. The time counts from when the request is sent: at once for a request whose body is
 * none or in memory (a new connection's connect time included, which the connect timeout bounds),
 * and from the end of a streamed body, as undici counts from the last body byte written.
 */
class HeadersDeadline {
  /** The attempt's own abort switch: the request's, plus this deadline. */
  readonly signal = new AbortSwitch();
  expired = false;
  private settled = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly relay = () => this.signal.abort();

  constructor(
    private readonly request: AbortSwitch,
    private readonly timeoutMs: number,
    body: Buffer | Readable | null,
  ) {
    if (request.aborted) this.signal.abort();
    else request.once('abort', this.relay);
    if (body !== null && !Buffer.isBuffer(body)) body.once('end', () => this.start());
    else this.start();
  }

  private start(): void {
    if (this.settled || this.signal.aborted) return;
    this.timer = setTimeout(() => {
      this.expired = true;
      this.signal.abort();
    }, this.timeoutMs);
  }

  /** The response has started, or the attempt is over. */
  settle(): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.request.off('abort', this.relay);
  }
}

/**
 * One attempt: streams the request to `target` and the response back, with no buffering either way.
 * `decorate` adds this hop's headers (provenance, cookies) to the response head. undici's `stream()`
 * writes the body straight into the client response: measured 1.8× the throughput of
 * `request()` + `stream.pipeline` on small responses (bench/results/forwarding.md). No response
 * head within `headersTimeoutMs` of the request being sent fails the attempt as a `timeout`.
 */
export async function forwardOnce(
  dispatcher: Dispatcher,
  req: IncomingMessage,
  res: ServerResponse,
  target: ForwardTarget,
  decorate: (headers: OutgoingHttpHeaders, status: number) => void,
  signal: AbortSwitch,
  headersTimeoutMs: number,
): Promise<ForwardOutcome> {
  let status = 0;
  const body = target.body !== undefined ? target.body : requestHasBody(req) ? req : null;
  const deadline = new HeadersDeadline(signal, headersTimeoutMs, body);
  try {
    const { trailers } = await dispatcher.stream(
      {
        origin: target.origin,
        path: target.path,
        method: target.method as Dispatcher.HttpMethod,
        headers: target.headers,
        body,
        signal: deadline.signal,
      },
      ({ statusCode, headers }) => {
        deadline.settle();
        status = statusCode;
        const outgoing = responseHeaders(headers);
        decorate(outgoing, statusCode);
        res.writeHead(statusCode, outgoing);
        return res;
      },
    );
    return { ok: true, status, droppedTrailers: droppedTrailers(req, trailers) };
  } catch (error) {
    const failure = deadline.expired ? 'timeout' : classifyUpstreamError(error);
    if (status === 0) return { ok: false, failure, error, responded: false };
    // undici destroys the response it was writing with the upstream's error, then rejects with
    // the response's premature close: the error it destroyed it with says what broke.
    const broke = res.errored ?? error;
    res.destroy();
    return {
      ok: false,
      failure: classifyUpstreamError(broke),
      error: broke,
      responded: true,
      status,
    };
  } finally {
    deadline.settle();
  }
}
