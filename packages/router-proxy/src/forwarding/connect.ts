import type { IncomingMessage, Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ProxyErrorCodes, refusalReason, respondError } from '../http/respond.js';
import { serviceForHost } from '../routing/service-host.js';
import type { ProxyRuntime } from '../runtime.js';
import { addressesItself, type OwnAddresses } from './self-address.js';
import type { Tunnels } from './tunnel.js';

function tunnel(
  client: Duplex,
  head: Buffer,
  host: string,
  port: number,
  authority: string,
  refuse: (status: number, code: string, reason: string) => void,
) {
  const upstream: Socket = connect({ host, port });
  let established = false;
  upstream.once('error', () => {
    if (established) client.destroy();
    else refuse(502, ProxyErrorCodes.upstream, `could not reach ${authority}`);
  });
  client.once('error', () => upstream.destroy());
  upstream.once('connect', () => {
    established = true;
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
    upstream.once('close', () => client.destroy());
  });
  client.once('close', () => upstream.destroy());
}

/**
 * `CONNECT host:port`. A tunnel to any host outside the mesh is blind, so an app's HTTPS calls through
 * HTTPS_PROXY keep working. A tunnel to a service (undici's ProxyAgent tunnels even plain-http calls
 * by default) is joined to this listener itself, so the HTTP inside is routed by lane like any other
 * call; TLS inside cannot be, and fails there as a bad request.
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
    const table = runtime.tables.current;
    if (table && serviceForHost(table, match[1], runtime.options.serviceDomains)) {
      const self = server.address() as AddressInfo;
      tunnel(client, head, self.address, self.port, authority, refuse);
      return;
    }
    if (runtime.options.unknownHosts === 'refuse') {
      runtime.metrics.passthrough.inc({ kind: 'connect', outcome: 'refused' });
      refuse(502, ProxyErrorCodes.unknownHost, `${authority} is not a service in the route table`);
      return;
    }
    runtime.metrics.passthrough.inc({ kind: 'connect', outcome: 'passed' });
    tunnel(client, head, match[1]!.replace(/^\[|\]$/g, ''), Number(match[2]), authority, refuse);
  };
}
