/** How an upstream attempt failed, in the words of the retry policy. */
export type UpstreamFailure =
  | 'connect_error'
  | 'connect_timeout'
  | 'timeout'
  | 'reset'
  | 'aborted'
  | 'other';

const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
]);

export function classifyUpstreamError(error: unknown): UpstreamFailure {
  const code = (error as { code?: string } | undefined)?.code ?? '';
  if (CONNECT_CODES.has(code)) return 'connect_error';
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return 'connect_timeout';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return 'timeout';
  if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE') return 'reset';
  if (code === 'UND_ERR_ABORTED' || (error as Error | undefined)?.name === 'AbortError') {
    return 'aborted';
  }
  return 'other';
}

/** Nothing of the request reached the upstream application: safe to send again, whatever the method. */
export function nothingSent(failure: UpstreamFailure): boolean {
  return failure === 'connect_error' || failure === 'connect_timeout';
}
