import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { Dispatcher } from 'undici';
import { responseHeaders } from '../listeners/http-headers.js';
import { classifyUpstreamError, type UpstreamFailure } from './errors.js';

export interface ForwardTarget {
  origin: string;
  path: string;
  method: string;
  headers: Record<string, string | string[]>;
}

export type ForwardOutcome =
  | { ok: true; status: number }
  /** Failed before any response byte reached the client: the caller may answer or retry. */
  | { ok: false; failure: UpstreamFailure; error: unknown; responded: false }
  /** Failed mid-response: the client's response was cut and nothing more can be sent. */
  | { ok: false; failure: UpstreamFailure; error: unknown; responded: true };

export function requestHasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

/**
 * One attempt: streams the request to `target` and the response back, with no buffering either way.
 * `decorate` adds this hop's headers (provenance, cookies) to the response head.
 */
export async function forwardOnce(
  dispatcher: Dispatcher,
  req: IncomingMessage,
  res: ServerResponse,
  target: ForwardTarget,
  decorate: (headers: OutgoingHttpHeaders, status: number) => void,
  signal: AbortSignal,
): Promise<ForwardOutcome> {
  let response: Dispatcher.ResponseData;
  try {
    response = await dispatcher.request({
      origin: target.origin,
      path: target.path,
      method: target.method as Dispatcher.HttpMethod,
      headers: target.headers,
      body: requestHasBody(req) ? req : null,
      signal,
    });
  } catch (error) {
    return { ok: false, failure: classifyUpstreamError(error), error, responded: false };
  }
  const headers = responseHeaders(response.headers);
  decorate(headers, response.statusCode);
  try {
    res.writeHead(response.statusCode, headers);
    await pipeline(response.body, res);
    return { ok: true, status: response.statusCode };
  } catch (error) {
    response.body.destroy();
    res.destroy();
    return { ok: false, failure: classifyUpstreamError(error), error, responded: true };
  }
}
