import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { respondError, upstreamRefusal } from '../http/respond.js';
import type { ProxyRuntime } from '../runtime.js';
import { type AttemptKind, attemptEndpoints } from '../upstream/attempts.js';
import { nothingSent } from '../upstream/errors.js';
import { tagForwarded } from './lane-tag.js';
import {
  describeTarget,
  LANE_SERVED_HEADER,
  mergeHeaders,
  prependHop,
  refuseNoEndpoint,
  type ServiceRequest,
} from './service-route.js';
import { codeOf, type ExchangeOutcome, exchange, keepUpgrade } from './tunnel.js';

/**
 * `Upgrade` requests (WebSocket) are routed by lane exactly like a plain request — the same
 * entrypoint match, lane assignment, fallback walk, health, balancing and retry budget — then
 * tunnelled both ways (tunnel.ts).
 */

/** A plain request's routing, with the sticky cookie to set on the handshake's answer. */
export type ServiceUpgrade = Omit<ServiceRequest, 'responseHeaders'> & {
  setCookie?: string[] | undefined;
};

/** An upgrade's attempts: a connection that could not be made is tried once more (nothing was sent). */
function upgradeAttempts(
  runtime: ProxyRuntime,
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  request: ServiceUpgrade,
): AttemptKind<ExchangeOutcome> {
  return {
    async send({ endpoint, hop }, release) {
      const outcome = await exchange(runtime, req, client, head, {
        origin: endpoint,
        path: request.path,
        headers: request.headers,
        decorate: (response) => {
          if (request.setCookie) mergeHeaders(response, { 'set-cookie': request.setCookie });
          prependHop(response, hop);
        },
      });
      // A tunnel counts as one request in flight on its endpoint until it closes.
      if (outcome.ok && outcome.status === 101) client.once('close', release);
      else release();
      return outcome;
    },
    judge: (outcome) =>
      outcome.ok
        ? { answered: outcome.status }
        : { failure: outcome.failure, retry: nothingSent(outcome.failure) },
  };
}

/**
 * Routes an upgrade to the service's endpoints for its lane. The duration metric records the
 * handshake, not the life of the connection.
 */
export async function upgradeToService(
  runtime: ProxyRuntime,
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  request: ServiceUpgrade,
): Promise<void> {
  const { listener, service, lane } = request;
  const started = process.hrtime.bigint();
  tagForwarded(request);
  keepUpgrade(req, request.headers);
  const attempted = await attemptEndpoints(
    runtime,
    service,
    lane,
    upgradeAttempts(runtime, req, client, head, request),
  );
  if (!attempted.ok) {
    refuseNoEndpoint(runtime, client, request, attempted.reason);
    return;
  }
  const { target, outcome } = attempted;
  if (!outcome.ok && outcome.failure !== 'aborted') {
    runtime.logger.warn(
      {
        service: service.name,
        lane,
        endpoint: target.endpoint,
        failure: outcome.failure,
        err: outcome.error,
      },
      'upstream upgrade failed',
    );
    const answer = upstreamRefusal(outcome.failure, describeTarget(service.name, target));
    respondError(client, answer.status, answer.code, answer.message, {
      [LANE_SERVED_HEADER]: target.hop,
    });
  }
  const { set } = target;
  runtime.metrics.recordRequest(
    { listener, service: service.name, lane: set.lane, version: set.version ?? '' },
    codeOf(outcome),
    started,
  );
}
