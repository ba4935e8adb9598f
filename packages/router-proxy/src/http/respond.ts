import { type OutgoingHttpHeaders, ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { UpstreamFailure } from '../upstream/errors.js';

/**
 * Stable codes on proxy-made responses, in `x-graylane-error`, so clients and tests need no parsing.
 * Each is documented in docs/errors.md (test/docs/errors.test.ts keeps the two in step).
 */
export const ProxyErrorCodes = {
  noEntrypoint: 'GRAYLANE_ERR_NO_ENTRYPOINT',
  noEndpoint: 'GRAYLANE_ERR_NO_ENDPOINT',
  unknownHost: 'GRAYLANE_ERR_UNKNOWN_HOST',
  upstream: 'GRAYLANE_ERR_UPSTREAM',
  upstreamTimeout: 'GRAYLANE_ERR_UPSTREAM_TIMEOUT',
  loop: 'GRAYLANE_ERR_LOOP',
  badRequest: 'GRAYLANE_ERR_BAD_REQUEST',
  notReady: 'GRAYLANE_ERR_NOT_READY',
  headersTooLarge: 'GRAYLANE_ERR_HEADERS_TOO_LARGE',
  malformedRequest: 'GRAYLANE_ERR_MALFORMED_REQUEST',
  transferCoding: 'GRAYLANE_ERR_TRANSFER_CODING',
  requestTimeout: 'GRAYLANE_ERR_REQUEST_TIMEOUT',
  bodyTimeout: 'GRAYLANE_ERR_BODY_TIMEOUT',
  overloaded: 'GRAYLANE_ERR_OVERLOADED',
  internal: 'GRAYLANE_ERR_INTERNAL',
} as const;

/** Called with the code of every answer a listener makes itself instead of forwarding. */
export type OnRefused = (code: string) => void;

/** The `reason` label for a refusal code: `GRAYLANE_ERR_MALFORMED_REQUEST` → `malformed_request`. */
export const refusalReason = (code: string) => code.replace(/^GRAYLANE_ERR_/, '').toLowerCase();

/**
 * Where a proxy-made answer goes: a request's `ServerResponse`, or the raw socket of an upgrade or
 * CONNECT, which Node hands over without one.
 */
export type AnswerTarget = ServerResponse | Duplex;

/**
 * Answers with a plain-text reason, on a response or a raw socket (which is then closed). A response
 * already under way is cut instead.
 */
export function respondError(
  to: AnswerTarget,
  status: number,
  code: string,
  message: string,
  extraHeaders: Record<string, string> = {},
): void {
  if (!(to instanceof ServerResponse)) {
    if (to.writable) to.end(rawResponse(status, code, message, extraHeaders));
    else to.destroy();
    return;
  }
  const res = to;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `graylane: ${message}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-graylane-error': code,
    ...extraHeaders,
  });
  res.end(body);
}

/**
 * The same answer written straight to a socket, for when there is no `ServerResponse`: a parse
 * error, a refused connection, a refused CONNECT or upgrade. It always closes the connection.
 */
export function rawResponse(
  status: number,
  code: string,
  message: string,
  extraHeaders: OutgoingHttpHeaders = {},
): string {
  const body = `graylane: ${message}\n`;
  const head = rawHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-graylane-error': code,
    connection: 'close',
    ...extraHeaders,
  });
  return head + body;
}

/** An HTTP/1.1 response head for a raw socket. */
export function rawHead(status: number, headers: OutgoingHttpHeaders, reason?: string): string {
  let head = `HTTP/1.1 ${status} ${reason || STATUS_CODES[status] || 'Error'}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) head += `${name}: ${one}\r\n`;
  }
  return `${head}\r\n`;
}

/**
 * The answer when an upstream could not be reached or did not answer in time (`deadline`: the whole
 * request's time ran out), naming what was tried.
 */
export function upstreamRefusal(failure: UpstreamFailure | 'deadline', what: string): Refusal {
  const timeout = failure === 'deadline' || failure === 'timeout' || failure === 'connect_timeout';
  return timeout
    ? refusal(504, ProxyErrorCodes.upstreamTimeout, `timed out waiting for ${what}`)
    : refusal(502, ProxyErrorCodes.upstream, `could not reach ${what}`);
}

/** A response the proxy makes itself instead of forwarding: decided apart from how it is written. */
export interface Refusal {
  ok: false;
  status: number;
  code: string;
  message: string;
}

export const refusal = (status: number, code: string, message: string): Refusal => ({
  ok: false,
  status,
  code,
  message,
});

export function respondRefusal(to: AnswerTarget, refused: Refusal): void {
  respondError(to, refused.status, refused.code, refused.message);
}
