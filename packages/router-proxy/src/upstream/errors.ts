/** How an upstream attempt failed, in the words of the retry policy. */
export type UpstreamFailure =
  | 'connect_error'
  | 'connect_timeout'
  /** The TLS handshake or the endpoint's certificate failed: nothing of the request was sent. */
  | 'tls_error'
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

/**
 * Node's TLS errors (`ERR_TLS_CERT_ALTNAME_INVALID`, `ERR_SSL_*` alerts, `EPROTO`) and OpenSSL's
 * certificate verdicts (`CERT_HAS_EXPIRED`, `DEPTH_ZERO_SELF_SIGNED_CERT`, `UNABLE_TO_VERIFY_LEAF_SIGNATURE`, …).
 */
const TLS_CODE =
  /^(ERR_TLS_|ERR_SSL_|EPROTO$|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|INVALID_CA$|INVALID_PURPOSE$|PATH_LENGTH_EXCEEDED$|HOSTNAME_MISMATCH$)/;

export function classifyUpstreamError(error: unknown): UpstreamFailure {
  const code = (error as { code?: string } | undefined)?.code ?? '';
  if (CONNECT_CODES.has(code)) return 'connect_error';
  if (TLS_CODE.test(code)) return 'tls_error';
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
  return failure === 'connect_error' || failure === 'connect_timeout' || failure === 'tls_error';
}
