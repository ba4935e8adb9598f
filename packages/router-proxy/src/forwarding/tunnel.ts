import {
  type ClientRequest,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { responseHeaders } from '../http/headers.js';
import { rawHead } from '../http/respond.js';
import type { ProxyRuntime } from '../runtime.js';
import { classifyUpstreamError, type UpstreamFailure } from '../upstream/errors.js';
import { tlsOptionsFor } from '../upstream/tls.js';

/**
 * The transport of an `Upgrade` request (WebSocket): one handshake with one endpoint over a fresh
 * connection, then a tunnel both ways. Which endpoint, and what happens when it fails, is upgrade.ts.
 */

export type UpgradeHandler = (req: IncomingMessage, client: Duplex, head: Buffer) => void;

/**
 * Open tunnels: an upgraded socket is no longer the HTTP server's, so `closeAllConnections` does not
 * reach it and `close` would wait for it forever. A stopping proxy cuts them after its drain.
 */
export class Tunnels {
  private readonly sockets = new Set<Duplex>();

  /** `idleTimeoutMs`: a tunnel with no bytes either way for this long is closed. */
  constructor(private readonly idleTimeoutMs = 0) {}

  get size(): number {
    return this.sockets.size;
  }

  track(socket: Duplex): void {
    this.sockets.add(socket);
    // A socket's timeout counts reads and writes, so either side talking keeps the tunnel open.
    if (this.idleTimeoutMs > 0 && socket instanceof Socket) {
      socket.setTimeout(this.idleTimeoutMs, () => socket.destroy());
    }
    socket.once('close', () => this.sockets.delete(socket));
  }

  destroyAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }
}

/** The forwarded head keeps what an upgrade needs, which `endToEndHeaders` strips as hop-by-hop. */
export function keepUpgrade(
  req: IncomingMessage,
  headers: Record<string, string | string[]>,
): void {
  headers.connection = 'upgrade';
  headers.upgrade = req.headers.upgrade ?? 'websocket';
}

export interface UpgradeAttempt {
  /** `http://host:port` (or https). */
  origin: string;
  path: string;
  headers: Record<string, string | string[]>;
  /** Adds this hop's headers (provenance, cookies) to the endpoint's answer. */
  decorate(headers: OutgoingHttpHeaders): void;
}

export type ExchangeOutcome =
  /** The endpoint answered (101: tunnelled; anything else: relayed, then the connection closed). */
  | { ok: true; status: number }
  /** No answer: the client may be told why, or the caller may try elsewhere. */
  | { ok: false; failure: UpstreamFailure; error: unknown };

function originOptions(origin: string) {
  const url = new URL(origin);
  const secure = url.protocol === 'https:';
  return {
    send: secure ? httpsRequest : httpRequest,
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: Number(url.port) || (secure ? 443 : 80),
  };
}

function pipeBoth(client: Duplex, upstream: Duplex): void {
  upstream.on('error', () => client.destroy());
  upstream.once('close', () => client.destroy());
  client.once('close', () => upstream.destroy());
  upstream.pipe(client);
  client.pipe(upstream);
}

/**
 * One handshake with one endpoint over a fresh connection: writes the request head, and on `101`
 * relays the answer and pipes both ways (`head`, what the client sent past its head, goes after).
 * Resolves once the endpoint answered or failed; a client that leaves first resolves as `aborted`.
 */
export function exchange(
  runtime: ProxyRuntime,
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  attempt: UpgradeAttempt,
): Promise<ExchangeOutcome> {
  const { send, host, port } = originOptions(attempt.origin);
  const { connectTimeoutMs, headersTimeoutMs } = runtime.options.upstream;
  return new Promise((resolve) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    let upstreamReq: ClientRequest;
    const settle = (outcome: ExchangeOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.off('close', onClientGone);
      resolve(outcome);
    };
    const fail = (failure: UpstreamFailure, error: unknown) => {
      upstreamReq.destroy();
      settle({ ok: false, failure, error });
    };
    const onClientGone = () => fail('aborted', new Error('client went away'));
    try {
      upstreamReq = send({
        ...tlsOptionsFor(runtime.options.upstreamTls, new URL(attempt.origin).origin),
        host,
        port,
        method: req.method ?? 'GET',
        path: attempt.path,
        headers: attempt.headers,
        agent: false,
      });
    } catch (error) {
      settle({ ok: false, failure: 'other', error });
      return;
    }
    client.once('close', onClientGone);
    timer = setTimeout(
      () => fail('connect_timeout', new Error('connect timeout')),
      connectTimeoutMs,
    );
    upstreamReq.once('socket', (socket) => {
      socket.once('connect', () => {
        clearTimeout(timer);
        timer = setTimeout(() => fail('timeout', new Error('headers timeout')), headersTimeoutMs);
      });
    });
    upstreamReq.on('error', (error) => {
      if (!settled) settle({ ok: false, failure: classifyUpstreamError(error), error });
    });
    upstreamReq.once('upgrade', (res: IncomingMessage, upstream: Duplex, upgradeHead: Buffer) => {
      const status = res.statusCode ?? 101;
      const headers: OutgoingHttpHeaders = { ...res.headers };
      attempt.decorate(headers);
      client.write(rawHead(status, headers, res.statusMessage));
      if (upgradeHead.length > 0) client.write(upgradeHead);
      if (head.length > 0) upstream.write(head);
      settle({ ok: true, status });
      pipeBoth(client, upstream);
    });
    upstreamReq.once('response', (res: IncomingMessage) => {
      // The endpoint declined the upgrade: relay its answer and close, as the client's connection
      // is no longer one this proxy parses requests on.
      const status = res.statusCode ?? 502;
      const headers = responseHeaders(res.headers);
      attempt.decorate(headers);
      headers.connection = 'close';
      client.write(rawHead(status, headers, res.statusMessage));
      res.on('error', () => client.destroy());
      res.pipe(client);
      settle({ ok: true, status });
    });
    upstreamReq.end();
  });
}

export const isTimeout = (failure: UpstreamFailure) =>
  failure === 'timeout' || failure === 'connect_timeout';

/** The status the client got: the endpoint's, 502/504 from the proxy, 0 when the client left. */
export function codeOf(outcome: ExchangeOutcome): number {
  if (outcome.ok) return outcome.status;
  if (outcome.failure === 'aborted') return 0;
  return isTimeout(outcome.failure) ? 504 : 502;
}
