import type { IncomingMessage, Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ProxyErrorCodes, refusalReason, respondError } from '../http/respond.js';
import { serviceForHost } from '../routing/service-host.js';
import type { ProxyRuntime } from '../runtime.js';
import { addressesItself, type OwnAddresses } from './self-address.js';
import type { Tunnels } from './tunnel.js';

const ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';
/** The first byte of a TLS record carrying a handshake (a ClientHello). */
const TLS_HANDSHAKE = 0x16;
/** The start of an HTTP/1 request line: a method token and a space. */
const HTTP_REQUEST_START = /^[A-Z]{3,10} /;

/** Pipes both ways, each side's close closing the other. */
function join(client: Duplex, upstream: Socket, first: Buffer): void {
  if (first.length > 0) upstream.write(first);
  upstream.pipe(client);
  client.pipe(upstream);
  upstream.once('close', () => client.destroy());
  client.once('close', () => upstream.destroy());
}

/**
 * Connects to `host:port`; once connected, `onOpen` gets the socket (a failure before that is
 * refused 502 on the client's socket, one after it closes the client).
 */
function open(
  client: Duplex,
  host: string,
  port: number,
  authority: string,
  refuse: (status: number, code: string, reason: string) => void,
  onOpen: (upstream: Socket) => void,
): void {
  const upstream: Socket = connect({ host, port });
  let established = false;
  upstream.once('error', () => {
    if (established) client.destroy();
    else refuse(502, ProxyErrorCodes.upstream, `could not reach ${authority}`);
  });
  client.once('error', () => upstream.destroy());
  client.once('close', () => upstream.destroy());
  upstream.once('connect', () => {
    established = true;
    onOpen(upstream);
  });
}

/** The client's first bytes inside the tunnel: what it sent past the CONNECT head, or its next. */
function firstBytes(client: Duplex, head: Buffer, then: (first: Buffer) => void): void {
  if (head.length > 0) {
    then(head);
    return;
  }
  client.once('data', (chunk: Buffer) => {
    client.pause();
    then(chunk);
  });
  client.resume();
}

/**
 * `CONNECT host:port`. undici's ProxyAgent and EnvHttpProxyAgent tunnel even plain-http calls, so a
 * tunnel whose first bytes are an HTTP/1 request line is joined to this listener itself, and the
 * HTTP inside is routed like any other call: by lane to a service, or out of the mesh with the lane
 * removed. A tunnel to a service is joined so from the start. TLS inside a tunnel to a host outside
 * the mesh (a ClientHello first) stays blind, so HTTPS through HTTPS_PROXY keeps working, and the
 * proxy cannot see or strip what it carries; TLS inside a tunnel to a service fails there as a bad
 * request.
 */
export function createConnectHandler(
  runtime: ProxyRuntime,
  server: Server,
  own: OwnAddresses,
  tunnels: Tunnels,
) {
  return (req: IncomingMessage, client: Duplex, head: Buffer): void => {
    // The socket is no longer the HTTP server's: a drain must cut it itself.
    tunnels.track(client);
    const authority = req.url ?? '';
    const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(authority);
    const refuse = (status: number, code: string, reason: string) => {
      runtime.metrics.refused.inc({ listener: 'outbound', reason: refusalReason(code) });
      respondError(client, status, code, reason);
    };
    if (!match) {
      refuse(400, ProxyErrorCodes.badRequest, 'CONNECT needs host:port');
      return;
    }
    if (addressesItself(authority, 0, own)) {
      refuse(
        400,
        ProxyErrorCodes.badRequest,
        `${authority} is this proxy: CONNECT to it is refused`,
      );
      return;
    }
    const self = server.address() as AddressInfo;
    const joinSelf = (first: Buffer) =>
      open(client, self.address, self.port, authority, refuse, (listener) =>
        join(client, listener, first),
      );
    const table = runtime.tables.current;
    if (table && serviceForHost(table, match[1], runtime.options.serviceDomains)) {
      client.write(ESTABLISHED);
      joinSelf(head);
      return;
    }
    if (runtime.options.unknownHosts === 'refuse') {
      runtime.metrics.passthrough.inc({ kind: 'connect', outcome: 'refused' });
      refuse(502, ProxyErrorCodes.unknownHost, `${authority} is not a service in the route table`);
      return;
    }
    runtime.metrics.passthrough.inc({ kind: 'connect', outcome: 'passed' });
    const host = match[1]!.replace(/^\[|\]$/g, '');
    open(client, host, Number(match[2]), authority, refuse, (upstream) => {
      client.write(ESTABLISHED);
      firstBytes(client, head, (first) => {
        const text = first.subarray(0, 16).toString('latin1');
        if (first[0] !== TLS_HANDSHAKE && HTTP_REQUEST_START.test(text)) {
          upstream.destroy();
          joinSelf(first);
        } else join(client, upstream, first);
      });
    });
  };
}
