import type { ServerResponse } from 'node:http';

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
