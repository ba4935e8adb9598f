import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ListenerName } from '../forwarding/lane-tag.js';
import type { Tunnels, UpgradeHandler } from '../forwarding/tunnel.js';
import {
  type AnswerTarget,
  ProxyErrorCodes,
  type Refusal,
  refusal,
  refusalReason,
  respondError,
  respondRefusal,
} from '../http/respond.js';
import type { CompiledTable } from '../routing/compiled-table.js';
import type { ProxyRuntime } from '../runtime.js';

/**
 * What a listener decides and how it carries a request. `route` serves plain requests and upgrades
 * alike, so both meet the same entrypoint match, lane and refusals; only the carrying differs.
 */
export interface ListenerLogic<Route extends { ok: true }> {
  route(req: IncomingMessage): Route | Refusal;
  request(req: IncomingMessage, res: ServerResponse, route: Route): Promise<void>;
  upgrade(req: IncomingMessage, client: Duplex, head: Buffer, route: Route): Promise<void>;
}

export interface ListenerHandlers {
  request(req: IncomingMessage, res: ServerResponse): void;
  upgrade: UpgradeHandler;
}

/** The table to route with, or a 503 while none is loaded yet. */
export function currentTable(runtime: ProxyRuntime): CompiledTable | Refusal {
  return (
    runtime.tables.current ?? refusal(503, ProxyErrorCodes.notReady, 'no route table loaded yet')
  );
}

export const isRefusal = (value: object): value is Refusal => (value as Refusal).ok === false;

/**
 * The one shell around every listener: routes, writes a refusal to the response or the raw socket,
 * carries the rest, and turns anything thrown into a 500, so no request crashes the process. An
 * upgraded socket is the proxy's from the start: its errors are expected (a client that leaves), its
 * data waits until a tunnel reads it, and it is tracked so a drain can cut it.
 */
export function driveListener<Route extends { ok: true }>(
  runtime: ProxyRuntime,
  listener: ListenerName,
  tunnels: Tunnels,
  logic: ListenerLogic<Route>,
): ListenerHandlers {
  const fail = (req: IncomingMessage, to: AnswerTarget, error: unknown) => {
    runtime.logger.error({ err: error, url: req.url }, 'request handler failed');
    respondError(to, 500, ProxyErrorCodes.internal, 'internal proxy error');
  };
  /**
   * Routes, then carries the request on its route or answers the refusal; never throws. Not an
   * async function awaiting the carrying: a promise and a closure per request fewer (issue 21).
   */
  const serve = <T extends AnswerTarget>(
    req: IncomingMessage,
    to: T,
    carry: (req: IncomingMessage, to: T, route: Route) => Promise<void>,
  ) => {
    let carried: Promise<void>;
    try {
      const route = logic.route(req);
      if (isRefusal(route)) {
        runtime.metrics.refused.inc({ listener, reason: refusalReason(route.code) });
        respondRefusal(to, route);
        return;
      }
      carried = carry(req, to, route);
    } catch (error) {
      fail(req, to, error);
      return;
    }
    carried.catch((error: unknown) => fail(req, to, error));
  };
  const carryRequest = (req: IncomingMessage, res: ServerResponse, route: Route) =>
    logic.request(req, res, route);
  return {
    request(req, res) {
      serve(req, res, carryRequest);
    },
    upgrade(req, client, head) {
      client.on('error', () => client.destroy());
      client.pause();
      tunnels.track(client);
      serve(req, client, (_, socket, route) => logic.upgrade(req, socket, head, route));
    },
  };
}
