import type { IncomingMessage, ServerResponse } from 'node:http';
import { recordCarrier, writeLaneTag } from '@graylane/lane-core';
import type { ProxyRuntime } from '../runtime.js';
import { forwardOnce } from '../upstream/forward.js';
import { guarded, passVia, readRequestLane, tagOptionsOf } from './common.js';
import { endToEndHeaders, setForwardedHeaders } from './http-headers.js';
import { ProxyErrorCodes, respondError } from './respond.js';
import { LANE_SERVED_HEADER, prependHop, provenance } from './service-route.js';

/** The local app an inbound listener stands in front of. */
export interface InboundApp {
  /** The app's origin, e.g. `http://127.0.0.1:3000`. */
  target: string;
  /** The service the app is, as the route table names it. */
  service: string;
  /** The app's version, a metric label only. */
  version?: string | undefined;
}

/**
 * The inbound listener (sidecar, in front of the local app): every request goes to the app, so no
 * route table is needed to route. It normalises the lane tag the app sees (a baggage-only request gets
 * the header, an invalid tag is dropped and counted), records the server-side per-lane metrics, and
 * adds its hop to `x-lane-served`. It uses the table's header and baggage names when one is loaded.
 *
 * The lane it reports is the request's: the sidecar knows which app it fronts, not which lane of the
 * route table that app was picked for.
 */
export function createInboundHandler(runtime: ProxyRuntime, app: InboundApp) {
  const origin = new URL(app.target).origin;
  const version = app.version ?? '';
  return guarded(runtime, async (req: IncomingMessage, res: ServerResponse) => {
    const started = process.hrtime.bigint();
    const via = passVia(runtime, req, res);
    if (via === undefined) return;
    const tagOptions = tagOptionsOf(runtime.tables.current);
    const { lane } = readRequestLane(runtime, tagOptions, req, 'inbound');
    const headers = endToEndHeaders(req.headers);
    setForwardedHeaders(headers, req, false);
    headers.via = via;
    writeLaneTag(recordCarrier(headers), lane, tagOptions);
    const hop = provenance(app.service, lane, []);
    const abort = new AbortController();
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
      abort.signal,
    );
    res.off('close', onClose);
    let code: number;
    if (outcome.ok) code = outcome.status;
    else if (outcome.responded || outcome.failure === 'aborted') code = 0;
    else {
      const timeout = outcome.failure === 'timeout' || outcome.failure === 'connect_timeout';
      code = timeout ? 504 : 502;
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
      respondError(
        res,
        code,
        timeout ? ProxyErrorCodes.upstreamTimeout : ProxyErrorCodes.upstream,
        `${timeout ? 'timed out waiting for' : 'could not reach'} service ${app.service} at ${origin}`,
        { [LANE_SERVED_HEADER]: hop },
      );
    }
    const labels = { listener: 'inbound', service: app.service, lane, version };
    runtime.metrics.requests.inc({ ...labels, code });
    runtime.metrics.duration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
  });
}
