import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { SETTINGS_DEFAULTS } from '../settings.js';
import { type OnRefused, ProxyErrorCodes, rawResponse, respondError } from './respond.js';

/**
 * Request-head validation before anything is forwarded. Node's parser (llhttp, strict) already refuses
 * most smuggling shapes; these checks are the proxy's own statement of what it forwards, and they
 * also catch what llhttp lets through (a repeated `Host`, `gzip, chunked`, headers past its count).
 */

export interface HeadLimits {
  /** Request line plus header lines, in bytes (CRLFs included). */
  maxHeaderBytes: number;
  /** Header lines. */
  maxHeaderCount: number;
}

export const DEFAULT_HEAD_LIMITS: HeadLimits = {
  maxHeaderBytes: SETTINGS_DEFAULTS.server.maxHeaderBytes,
  maxHeaderCount: SETTINGS_DEFAULTS.server.maxHeaderCount,
};

export interface HeadProblem {
  status: 400 | 431 | 501;
  code: string;
  reason: string;
}

/** What the guard reads of a request; `IncomingMessage` has all of it. */
export interface RequestHead {
  method?: string | undefined;
  url?: string | undefined;
  httpVersion: string;
  rawHeaders: readonly string[];
}

// RFC 9110 §5.6.2 tchar, by character code: the head is checked on every request, without a
// regular expression per header (issue 21).
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TCHAR[c.charCodeAt(0)] = 1;
}
// RFC 3986 authority characters: enough to keep a Host from carrying anything but a host and port.
const HOST_CHAR = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~!$&'()*+,;=:[]%-") {
  HOST_CHAR[c.charCodeAt(0)] = 1;
}
const DECIMAL = /^\d{1,15}$/;

function isToken(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 128 || TCHAR[c] === 0) return false;
  }
  return true;
}

function isHostValue(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 128 || HOST_CHAR[c] === 0) return false;
  }
  return true;
}

/** CTL characters (CR, LF and NUL among them); a field value may hold HTAB (RFC 9110 §5.5). */
function hasControl(text: string, allowed: 'tab' | 'none'): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && !(c === 0x09 && allowed === 'tab')) || c === 0x7f) return true;
  }
  return false;
}

/** Whether `name` is `lower` (given in lower case) in any case, without making a lower-case copy. */
function namedAs(name: string, lower: string): boolean {
  if (name.length !== lower.length) return false;
  for (let i = 0; i < name.length; i++) {
    // ASCII letters differ from their lower case by the 0x20 bit; tokens hold no other letters.
    if ((name.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

const tooLarge = (reason: string): HeadProblem => ({
  status: 431,
  code: ProxyErrorCodes.headersTooLarge,
  reason,
});
const malformed = (reason: string): HeadProblem => ({
  status: 400,
  code: ProxyErrorCodes.malformedRequest,
  reason,
});

/** `METHOD target HTTP/x.y` CRLF, the header lines and the closing CRLF, in bytes. */
function headSize(head: RequestHead): number {
  // The request line's two spaces, `HTTP/` and CRLF, and the CRLF that ends the head: 11 bytes.
  let bytes = (head.method?.length ?? 0) + (head.url?.length ?? 0) + head.httpVersion.length + 11;
  // Node decodes header bytes as latin1, so string length is the byte count.
  for (let i = 0; i < head.rawHeaders.length; i += 2) {
    bytes += head.rawHeaders[i]!.length + head.rawHeaders[i + 1]!.length + 4;
  }
  return bytes;
}

/** RFC 9112 §6: exactly one way to find where the body ends, or the request is refused. */
function checkFraming(
  contentLengths: readonly string[],
  transferEncodings: readonly string[],
  httpVersion: string,
): HeadProblem | undefined {
  if (transferEncodings.length > 0) {
    if (contentLengths.length > 0) {
      return malformed('Content-Length and Transfer-Encoding together');
    }
    if (httpVersion === '1.0') return malformed('Transfer-Encoding in an HTTP/1.0 request');
    const codings = transferEncodings
      .flatMap((value) => value.split(','))
      .map((coding) => coding.trim().toLowerCase())
      .filter((coding) => coding !== '');
    if (codings.at(-1) !== 'chunked') {
      return malformed('Transfer-Encoding does not end with chunked');
    }
    if (codings.length > 1) {
      if (codings.indexOf('chunked') !== codings.length - 1) {
        return malformed('chunked applied more than once');
      }
      return {
        status: 501,
        code: ProxyErrorCodes.transferCoding,
        reason: `transfer coding ${codings[0]} is not supported`,
      };
    }
    return undefined;
  }
  if (contentLengths.some((value) => !DECIMAL.test(value.trim()))) {
    return malformed('Content-Length is not a decimal number');
  }
  if (new Set(contentLengths.map((value) => Number(value))).size > 1) {
    return malformed('differing Content-Length values');
  }
  return undefined;
}

/**
 * The first problem with a request head, or undefined when it may be forwarded. Pure.
 * `parsedStrictly`: the head comes from a listener's own parser (llhttp, `insecureHTTPParser`
 * off), which already refused every character a name, value or target may not hold, so they are
 * not scanned again: a per-character scan of every header was 1.5 % of a small request (issue 21).
 */
export function checkRequestHead(
  head: RequestHead,
  limits: HeadLimits = DEFAULT_HEAD_LIMITS,
  parsedStrictly = false,
): HeadProblem | undefined {
  const raw = head.rawHeaders;
  if (raw.length / 2 > limits.maxHeaderCount) {
    return tooLarge(`more than ${limits.maxHeaderCount} header lines`);
  }
  if (headSize(head) > limits.maxHeaderBytes) {
    return tooLarge(`request head over ${limits.maxHeaderBytes} bytes`);
  }
  const target = head.url ?? '';
  if (!parsedStrictly && (hasControl(target, 'none') || target.includes(' '))) {
    return malformed('invalid character in the target');
  }
  // Most requests have neither framing header: no arrays for them.
  let contentLengths: string[] | undefined;
  let transferEncodings: string[] | undefined;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (!parsedStrictly) {
      if (!isToken(name)) return malformed('invalid header name');
      if (hasControl(value, 'tab')) return malformed(`invalid character in ${name}`);
    }
    if (namedAs(name, 'host')) {
      hosts += 1;
      if (!isHostValue(value)) return malformed('invalid Host');
    } else if (namedAs(name, 'content-length')) {
      contentLengths ??= [];
      contentLengths.push(value);
    } else if (namedAs(name, 'transfer-encoding')) {
      transferEncodings ??= [];
      transferEncodings.push(value);
    }
  }
  if (hosts > 1) return malformed('Host repeated');
  if (hosts === 0 && head.httpVersion === '1.1' && head.method !== 'CONNECT') {
    return malformed('HTTP/1.1 request without Host');
  }
  if (!contentLengths && !transferEncodings) return undefined;
  return checkFraming(contentLengths ?? [], transferEncodings ?? [], head.httpVersion);
}

/**
 * The guard every listener runs first: true when the request may go on; otherwise it has been
 * answered (4xx/501 with `x-graylane-error`) and the connection is closed after the answer, since
 * the framing of what follows on it cannot be trusted.
 */
export function guardRequest(
  req: IncomingMessage,
  res: ServerResponse,
  limits: HeadLimits = DEFAULT_HEAD_LIMITS,
  onRefused: OnRefused = () => {},
): boolean {
  const problem = checkRequestHead(req, limits, true);
  if (!problem) return true;
  onRefused(problem.code);
  respondError(res, problem.status, problem.code, problem.reason, { connection: 'close' });
  return false;
}

/**
 * A head Node hands over with the raw socket (`connect`, `upgrade`) is followed by the tunnel, so it
 * may announce no body: bytes a relay would read as body the endpoint could read as the tunnel.
 */
export function checkTunnelHead(
  head: RequestHead,
  limits: HeadLimits = DEFAULT_HEAD_LIMITS,
  parsedStrictly = false,
): HeadProblem | undefined {
  const problem = checkRequestHead(head, limits, parsedStrictly);
  if (problem) return problem;
  for (let i = 0; i < head.rawHeaders.length; i += 2) {
    const name = head.rawHeaders[i]!.toLowerCase();
    const value = head.rawHeaders[i + 1]!.trim();
    if (name === 'transfer-encoding' || (name === 'content-length' && value !== '0')) {
      return malformed(`a ${head.method} request with a body`);
    }
  }
  return undefined;
}

/**
 * The guard for `connect` and `upgrade` events: a refused head is answered on the socket and never
 * reaches `handler`.
 */
export function guardSocketRequest<Args extends unknown[]>(
  handler: (req: IncomingMessage, socket: Duplex, ...rest: Args) => void,
  limits: HeadLimits = DEFAULT_HEAD_LIMITS,
  onRefused: OnRefused = () => {},
) {
  return (req: IncomingMessage, socket: Duplex, ...rest: Args): void => {
    const problem = checkTunnelHead(req, limits, true);
    if (!problem) {
      handler(req, socket, ...rest);
      return;
    }
    onRefused(problem.code);
    socket.on('error', () => socket.destroy());
    socket.end(rawResponse(problem.status, problem.code, problem.reason));
  };
}
