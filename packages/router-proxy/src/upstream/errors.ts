/** How an upstream attempt failed, in the words of the fallback metric and the retry policy. */
export type UpstreamFailure = 'connect_error' | 'timeout' | 'reset' | 'aborted' | 'other';

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
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return 'timeout';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return 'timeout';
  if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE') return 'reset';
  if (code === 'UND_ERR_ABORTED' || (error as Error | undefined)?.name === 'AbortError') {
    return 'aborted';
  }
  return 'other';
}
