import { type ServerResponse, STATUS_CODES } from 'node:http';

/** Stable codes on proxy-made responses, in `x-graylane-error`, so clients and tests need no parsing. */
export const ProxyErrorCodes = {
  noEntrypoint: 'GRAYLANE_ERR_NO_ENTRYPOINT',
  noEndpoint: 'GRAYLANE_ERR_NO_ENDPOINT',
  unknownService: 'GRAYLANE_ERR_UNKNOWN_SERVICE',
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
  overloaded: 'GRAYLANE_ERR_OVERLOADED',
} as const;

/** Answers with a plain-text reason. A response already under way is cut instead. */
export function respondError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  extraHeaders: Record<string, string> = {},
): void {
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
export function rawResponse(status: number, code: string, message: string): string {
  const body = `graylane: ${message}\n`;
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    `content-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
    `x-graylane-error: ${code}\r\nconnection: close\r\n\r\n${body}`
  );
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
