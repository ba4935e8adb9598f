import type { IncomingMessage } from 'node:http';
import { recordCarrier, STABLE, writeLaneTag } from '@graylane/lane-core';
import { readRequestLane, tagOptionsOf } from '../forwarding/lane-tag.js';
import { settleForward, watchRequest } from '../forwarding/request-signal.js';
import { LANE_SERVED_HEADER, prependHop, provenance } from '../forwarding/service-route.js';
import { codeOf, exchange, keepUpgrade, type Tunnels } from '../forwarding/tunnel.js';
import { nextVia } from '../forwarding/via.js';
import { endToEndHeaders, setForwardedHeaders } from '../http/headers.js';
import { respondError, upstreamRefusal } from '../http/respond.js';
import type { ProxyRuntime } from '../runtime.js';
import type { UpstreamFailure } from '../upstream/errors.js';
import { forwardOnce } from '../upstream/forward.js';
import { driveListener, type ListenerHandlers } from './driver.js';

/** The local app an inbound listener stands in front of. */
export interface InboundApp {
  /** The app's origin, e.g. `http://127.0.0.1:3000`. */
  target: string;
  /** The service the app is, as the route table names it. */
  service: string;
  /** The app's version, a metric label only. */
  version?: string | undefined;
  /** The lane this app instance serves (`stable` unless it is a canary). */
  lane?: string | undefined;
}

/**
 * The inbound listener (sidecar, in front of the local app): every request goes to the app, so no
 * route table is needed to route. It normalises the lane tag the app sees (a baggage-only request gets
 * the header, an invalid tag is dropped and counted), records the server-side per-lane metrics, and
 * adds its hop to `x-lane-served`. It uses the table's header and baggage names when one is loaded.
 *
 * Metrics and `x-lane-served` name the lane this app instance serves (`--service-lane`), like the
 * other listeners name the set that served; the app itself sees the request's lane, which it passes on.
 */
export function createInboundListener(
  runtime: ProxyRuntime,
  app: InboundApp,
  tunnels: Tunnels,
): ListenerHandlers {
  const origin = new URL(app.target).origin;
  const failed = (lane: string, failure: UpstreamFailure, error: unknown) => {
    runtime.logger.warn(
      { service: app.service, lane, endpoint: origin, failure, err: error },
      'local app failed',
    );
    return upstreamRefusal(failure, `service ${app.service} at ${origin}`);
  };
  return driveListener(runtime, 'inbound', tunnels, {
    route(req) {
      const via = nextVia(runtime, req);
      return typeof via === 'string' ? { ok: true as const, via } : via;
    },
    async request(req, res, { via }) {
      const started = process.hrtime.bigint();
      const { lane, headers, hop } = toApp(runtime, app, req, via);
      const signal = watchRequest(runtime, req, res);
      const outcome = await forwardOnce(
        runtime,
        req,
        res,
        { origin, path: req.url ?? '/', method: req.method ?? 'GET', headers },
        (response) => prependHop(response, hop),
        signal,
      );
      signal.dispose();
      const code = settleForward(runtime, res, signal, outcome, {
        listener: 'inbound',
        what: `service ${app.service} at ${origin}`,
        headers: { [LANE_SERVED_HEADER]: hop },
        log: { service: app.service, lane, endpoint: origin },
        message: 'local app failed',
      });
      record(runtime, app, code, started);
    },
    async upgrade(req, client, head, { via }) {
      const started = process.hrtime.bigint();
      const { lane, headers, hop } = toApp(runtime, app, req, via);
      keepUpgrade(req, headers);
      const outcome = await exchange(runtime, req, client, head, {
        origin,
        path: req.url ?? '/',
        headers,
        decorate: (response) => prependHop(response, hop),
      });
      if (!outcome.ok && outcome.failure !== 'aborted') {
        const answer = failed(lane, outcome.failure, outcome.error);
        respondError(client, answer.status, answer.code, answer.message, {
          [LANE_SERVED_HEADER]: hop,
        });
      }
      record(runtime, app, codeOf(outcome), started);
    },
  });
}

/** The request as the app gets it: end-to-end headers, x-forwarded-*, Via, and the tag normalised. */
function toApp(runtime: ProxyRuntime, app: InboundApp, req: IncomingMessage, via: string) {
  const tagOptions = tagOptionsOf(runtime.tables.current);
  const { lane } = readRequestLane(runtime, tagOptions, req, 'inbound');
  const headers = endToEndHeaders(req.headers);
  setForwardedHeaders(headers, req, true);
  headers.via = via;
  writeLaneTag(recordCarrier(headers), lane, tagOptions);
  return { lane, headers, hop: provenance(app.service, app.lane ?? STABLE, []) };
}

function record(runtime: ProxyRuntime, app: InboundApp, code: number, started: bigint): void {
  const labels = {
    listener: 'inbound',
    service: app.service,
    lane: app.lane ?? STABLE,
    version: app.version ?? '',
  };
  runtime.metrics.recordRequest(labels, code, started);
}
