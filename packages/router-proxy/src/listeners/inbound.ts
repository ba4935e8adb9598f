import type { IncomingMessage, ServerResponse } from 'node:http';
import { recordCarrier, STABLE, writeLaneTag } from '@graylane/lane-core';
import type { ProxyRuntime } from '../runtime.js';
import { AbortSwitch } from '../upstream/abort.js';
import { forwardOnce } from '../upstream/forward.js';
import { guarded, loopMessage, nextVia, passVia, readRequestLane, tagOptionsOf } from './common.js';
import { endToEndHeaders, setForwardedHeaders } from './http-headers.js';
import { ProxyErrorCodes, respondError, upstreamRefusal } from './respond.js';
import { LANE_SERVED_HEADER, prependHop, provenance } from './service-route.js';
import {
  codeOf,
  exchange,
  guardedUpgrade,
  keepUpgrade,
  refuseUpgrade,
  type Tunnels,
  type UpgradeHandler,
} from './tunnel.js';

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
export function createInboundHandler(runtime: ProxyRuntime, app: InboundApp) {
  const origin = new URL(app.target).origin;
  return guarded(runtime, async (req: IncomingMessage, res: ServerResponse) => {
    const started = process.hrtime.bigint();
    const via = passVia(runtime, req, res);
    if (via === undefined) return;
    const { lane, headers, hop } = toApp(runtime, app, req, via);
    const abort = new AbortSwitch();
    const onClose = () => {
      if (!res.writableFinished) abort.abort();
    };
    res.once('close', onClose);
    const outcome = await forwardOnce(
      runtime.dispatcher,
      req,
      res,
      { origin, path: req.url ?? '/', method: req.method ?? 'GET', headers },
      (response) => prependHop(response, hop),
      abort,
    );
    res.off('close', onClose);
    let code: number;
    if (outcome.ok) code = outcome.status;
    else if (outcome.responded || outcome.failure === 'aborted') code = 0;
    else {
      runtime.logger.warn(
        {
          service: app.service,
          lane,
          endpoint: origin,
          failure: outcome.failure,
          err: outcome.error,
        },
        'local app failed',
      );
      const answer = upstreamRefusal(outcome.failure, `service ${app.service} at ${origin}`);
      respondError(res, answer.status, answer.code, answer.message, { [LANE_SERVED_HEADER]: hop });
      code = answer.status;
    }
    record(runtime, app, code, started);
  });
}

/** The request as the app gets it: end-to-end headers, x-forwarded-*, Via, and the tag normalised. */
function toApp(runtime: ProxyRuntime, app: InboundApp, req: IncomingMessage, via: string) {
  const tagOptions = tagOptionsOf(runtime.tables.current);
  const { lane } = readRequestLane(runtime, tagOptions, req, 'inbound');
  const headers = endToEndHeaders(req.headers);
  setForwardedHeaders(headers, req, false);
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

/** WebSocket to the app: the same tag normalisation and provenance, then a tunnel both ways. */
export function createInboundUpgradeHandler(
  runtime: ProxyRuntime,
  app: InboundApp,
  tunnels: Tunnels,
): UpgradeHandler {
  const origin = new URL(app.target).origin;
  return guardedUpgrade(runtime, tunnels, async (req, client, head) => {
    const started = process.hrtime.bigint();
    const via = nextVia(runtime, req);
    if ('loop' in via) {
      refuseUpgrade(client, 508, ProxyErrorCodes.loop, loopMessage(via.loop));
      return;
    }
    const { headers, hop } = toApp(runtime, app, req, via.via);
    keepUpgrade(req, headers);
    const outcome = await exchange(runtime, req, client, head, {
      origin,
      path: req.url ?? '/',
      headers,
      decorate: (response) => prependHop(response, hop),
    });
    const code = codeOf(outcome);
    if (!outcome.ok && outcome.failure !== 'aborted') {
      const answer = upstreamRefusal(outcome.failure, `service ${app.service} at ${origin}`);
      refuseUpgrade(client, answer.status, answer.code, answer.message, {
        [LANE_SERVED_HEADER]: hop,
      });
    }
    record(runtime, app, code, started);
  });
}
