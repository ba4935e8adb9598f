import type { Server, ServerOptions } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { SETTINGS_DEFAULTS } from '../settings.js';
import type { BodyLimits } from './body-watch.js';
import type { HeadLimits } from './guard.js';
import { type OnRefused, ProxyErrorCodes, rawResponse } from './respond.js';

/** Per-listener limits: how long a client may take, how much it may send, how many may connect. */
export interface ServerLimits extends HeadLimits, BodyLimits {
  /** A request head must be complete this long after its first byte (slowloris). */
  headersTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveTimeoutMs: number;
  /** Open connections per listener; the next one is answered 503 and closed. */
  maxConnections: number;
  /** A WebSocket or CONNECT tunnel with no bytes either way for this long is closed. */
  tunnelIdleTimeoutMs: number;
}

export type ServerLimitsInput = Pick<ServerLimits, 'headersTimeoutMs' | 'keepAliveTimeoutMs'> &
  Partial<ServerLimits>;

/** Node's own head limit sits above ours, so ours (with its code) is the one a client meets. */
const NODE_HEADER_SIZE_FLOOR = 64 * 1024;
/** How long a refused or broken connection may linger for the client to read its answer. */
const LINGER_MS = 1_000;

/** The limits given, the schema's defaults for the rest. */
export function serverLimits(input: ServerLimitsInput): ServerLimits {
  return {
    ...SETTINGS_DEFAULTS.server,
    ...Object.fromEntries(Object.entries(input).filter(([, value]) => value !== undefined)),
  } as ServerLimits;
}

/** `createServer` options for a forwarding listener. */
export function serverOptions(limits: ServerLimits): ServerOptions {
  return {
    headersTimeout: limits.headersTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    requestTimeout: 0,
    maxHeaderSize: Math.max(NODE_HEADER_SIZE_FLOOR, limits.maxHeaderBytes + 4096),
    // Node checks the headers timeout on this interval (30 s by default), so a short timeout needs it.
    connectionsCheckingInterval: Math.min(1_000, Math.max(50, limits.headersTimeoutMs / 4)),
    // The request guard answers a missing Host itself, with a code.
    requireHostHeader: false,
    // Strict parsing even under `node --insecure-http-parser`: llhttp then refuses every character
    // a header name, value or target may not hold, and the guard does not scan them again.
    insecureHTTPParser: false,
  };
}

/** What to answer for an error Node's parser (or its timeouts) raised on a connection. */
function clientErrorAnswer(errorCode: string | undefined): [number, string, string] {
  switch (errorCode) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, ProxyErrorCodes.headersTooLarge, 'request head too large'];
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return [413, ProxyErrorCodes.malformedRequest, 'chunk extensions too large'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, ProxyErrorCodes.requestTimeout, 'request head not received in time'];
    default:
      return [400, ProxyErrorCodes.malformedRequest, 'malformed request'];
  }
}

function linger(socket: Duplex): void {
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}

/**
 * A parse error or a headers timeout: answer with a code and close, unless a response is already
 * under way on the connection, which an answer would corrupt.
 */
export function answerClientError(
  error: NodeJS.ErrnoException,
  socket: Duplex,
  onRefused: OnRefused = () => {},
): void {
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent: boolean } })._httpMessage;
  if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const [status, code, reason] = clientErrorAnswer(error.code);
  onRefused(code);
  socket.end(rawResponse(status, code, reason));
  linger(socket);
}

/**
 * Counts a listener's connections and answers the one past the cap with a 503 instead of handing it
 * to the HTTP parser (Node's own `server.maxConnections` drops it without a word). The parser is
 * Node's 'connection' listener, which the gate calls only for accepted sockets.
 */
function capConnections(server: Server, max: number, onRefused: OnRefused): void {
  const parsers = server.listeners('connection') as Array<(socket: Socket) => void>;
  for (const listener of parsers) server.off('connection', listener);
  let open = 0;
  server.on('connection', (socket: Socket) => {
    if (open >= max) {
      onRefused(ProxyErrorCodes.overloaded);
      refuseConnection(socket, max);
      return;
    }
    open += 1;
    socket.once('close', () => {
      open -= 1;
    });
    for (const listener of parsers) listener.call(server, socket);
  });
}

function refuseConnection(socket: Socket, max: number): void {
  socket.on('error', () => socket.destroy());
  socket.once('end', () => socket.destroy());
  socket.end(
    rawResponse(503, ProxyErrorCodes.overloaded, `listener at its cap of ${max} connections`),
  );
  // Read and drop what the client sends, so that the close is a FIN its read sees after the 503.
  socket.resume();
  linger(socket);
}

/** Applies the limits to a listener built with `serverOptions`; call it before `listen`. */
export function applyServerLimits(
  server: Server,
  limits: ServerLimits,
  onRefused: OnRefused = () => {},
): void {
  // One past our count, so that the guard sees there were too many instead of Node dropping the rest.
  server.maxHeadersCount = limits.maxHeaderCount + 1;
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) =>
    answerClientError(error, socket, onRefused),
  );
  capConnections(server, limits.maxConnections, onRefused);
}
