import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { recordCarrier, writeLaneTag } from '@graylane/lane-core';
import type { CompiledTable, ServiceView } from '../routing/compiled-table.js';
import { type FallbackStep, resolveRoute } from '../routing/resolve.js';
import type { ProxyRuntime } from '../runtime.js';
import { forwardOnce } from '../upstream/forward.js';
import { ProxyErrorCodes, respondError } from './respond.js';

export type ListenerName = 'gateway' | 'outbound' | 'inbound';

export const LANE_SERVED_HEADER = 'x-lane-served';

export interface ServiceRequest {
  listener: ListenerName;
  table: CompiledTable;
  service: ServiceView;
  /** The lane the request is in. It is kept on the forwarded request even when another lane serves it. */
  lane: string;
  path: string;
  /** End-to-end headers to send upstream, x-forwarded-* already set. */
  headers: Record<string, string | string[]>;
  /** Headers this hop adds to the response (e.g. a sticky cookie). */
  responseHeaders?: OutgoingHttpHeaders;
}

/** `backend=stable;fallback=absent`: this hop, as the tester reads it in `x-lane-served`. */
export function provenance(
  service: string,
  servedLane: string,
  fallbacks: readonly FallbackStep[],
) {
  const last = fallbacks.at(-1);
  return last ? `${service}=${servedLane};fallback=${last.reason}` : `${service}=${servedLane}`;
}

/** This hop first, then the hops the upstream reported, so the header reads in call order. */
function prependHop(headers: OutgoingHttpHeaders, hop: string): void {
  const downstream = headers[LANE_SERVED_HEADER];
  const rest = Array.isArray(downstream) ? downstream.join(', ') : downstream;
  headers[LANE_SERVED_HEADER] = rest ? `${hop}, ${rest}` : hop;
}

function mergeHeaders(target: OutgoingHttpHeaders, extra: OutgoingHttpHeaders | undefined): void {
  if (!extra) return;
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) continue;
    const existing = target[name];
    if (name === 'set-cookie' && existing !== undefined) {
      target[name] = [existing, value].flat().map(String);
    } else target[name] = value;
  }
}

/** Routes a request to the service's endpoints for its lane, falling back along the chain. */
export async function forwardToService(
  runtime: ProxyRuntime,
  req: IncomingMessage,
  res: ServerResponse,
  request: ServiceRequest,
): Promise<void> {
  const { service, lane, table, listener } = request;
  const started = process.hrtime.bigint();
  const resolution = resolveRoute(service, lane);
  if (!resolution.ok) {
    respondError(res, 503, ProxyErrorCodes.noEndpoint, resolution.reason, {
      [LANE_SERVED_HEADER]: `${service.name}=none`,
    });
    runtime.metrics.requests.inc({ listener, service: service.name, lane, version: '', code: 503 });
    return;
  }
  const { set, endpoints, fallbacks } = resolution;
  for (const step of fallbacks) {
    runtime.metrics.fallbacks.inc({
      service: service.name,
      from_lane: step.from,
      to_lane: step.to,
      reason: step.reason,
    });
  }
  const endpoint = runtime.balancer.pick(
    endpoints,
    service.loadBalancing,
    `${service.name}/${set.lane}`,
  )!;
  writeLaneTag(recordCarrier(request.headers), lane, {
    laneHeader: table.table.laneHeader,
    baggageKey: table.table.baggageKey,
  });
  const hop = provenance(service.name, set.lane, fallbacks);
  const abort = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) abort.abort();
  };
  res.once('close', onClose);
  const done = runtime.balancer.begin(endpoint);
  const outcome = await forwardOnce(
    runtime.dispatcher,
    req,
    res,
    { origin: endpoint, path: request.path, method: req.method ?? 'GET', headers: request.headers },
    (headers) => {
      mergeHeaders(headers, request.responseHeaders);
      prependHop(headers, hop);
    },
    abort.signal,
  );
  done();
  res.off('close', onClose);
  let code: number;
  if (outcome.ok) code = outcome.status;
  else if (outcome.responded || outcome.failure === 'aborted') code = 0;
  else {
    const timeout = outcome.failure === 'timeout';
    code = timeout ? 504 : 502;
    const what = `service ${service.name} lane ${set.lane} endpoint ${endpoint}`;
    runtime.logger.warn(
      { service: service.name, lane, endpoint, failure: outcome.failure, err: outcome.error },
      'upstream failed',
    );
    respondError(
      res,
      code,
      timeout ? ProxyErrorCodes.upstreamTimeout : ProxyErrorCodes.upstream,
      `${timeout ? 'timed out waiting for' : 'could not reach'} ${what}`,
      { [LANE_SERVED_HEADER]: hop },
    );
  }
  const labels = { listener, service: service.name, lane: set.lane, version: set.version ?? '' };
  runtime.metrics.requests.inc({ ...labels, code });
  runtime.metrics.duration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
}
