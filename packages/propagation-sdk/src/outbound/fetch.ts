import { type HeaderCarrier, STABLE } from '@graylane/lane-core';
import { headersCarrier } from '../carriers.js';
import { getConfig } from '../config.js';
import { currentRelay, type LaneContext, runInContext, runUnrelayed } from '../context.js';
import { internalError } from '../log.js';
import { type Relay, recordServed } from '../provenance.js';
import { tagOutbound } from './tag.js';

type Fetch = typeof globalThis.fetch;

const wrappedMark = Symbol.for('graylane.sdk.fetch');
type MarkedFetch = Fetch & { [wrappedMark]?: Fetch };

/**
 * A leak already reported here runs the real fetch in this (stable) context, so that the undici
 * dispatcher hook underneath, which Node's fetch also goes through, does not count it twice.
 */
const reported: LaneContext = { lane: STABLE, source: 'none', request: false };

/**
 * Returns a `fetch` that tags each call with the current lane. Headers given in `init` (or on a
 * `Request`) are copied, never mutated; an explicit lane header or baggage entry on the call wins.
 * In strict mode a detected lane leak rejects with `LaneLeakError`.
 *
 * Inside an inbound request, the response's `x-lane-served` hops are collected for the request's own
 * response. The wrapper records them, whatever `fetchImpl` is, and runs `fetchImpl` in a context that
 * relays nothing, so the undici dispatcher hook underneath does not record the same response again.
 */
export function wrapFetch(fetchImpl: Fetch): Fetch {
  if ((fetchImpl as MarkedFetch)[wrappedMark]) return fetchImpl;
  const wrapped: MarkedFetch = function graylaneFetch(input, init) {
    let headers: Headers | undefined;
    const carrierOf = (): HeaderCarrier => {
      headers = new Headers(
        init?.headers ?? (input instanceof Request ? input.headers : undefined),
      );
      return headersCarrier(headers);
    };
    let outcome: ReturnType<typeof tagOutbound>;
    try {
      outcome = tagOutbound(carrierOf, 'fetch', wrapped);
    } catch (err) {
      return Promise.reject(err);
    }
    if (outcome === 'leak') return runInContext(reported, () => fetchImpl(input, init));
    const args = outcome === 'untouched' || headers === undefined ? init : { ...init, headers };
    const relay = currentRelay();
    if (relay === undefined) return fetchImpl(input, args);
    const result = runUnrelayed(() => fetchImpl(input, args));
    // A stand-in fetch (a test double) may answer with something that is not a promise.
    if (typeof result?.then !== 'function') return result;
    return result.then((response) => recordResponse(relay, response));
  };
  wrapped[wrappedMark] = fetchImpl;
  return wrapped;
}

function recordResponse(relay: Relay, response: Response): Response {
  try {
    recordServed(relay, response.headers.get(getConfig().servedHeader));
  } catch (err) {
    internalError('provenance:fetch', err);
  }
  return response;
}

/** Replaces `globalThis.fetch` with the tagging wrapper. Returns a function that restores it. */
export function installFetch(): () => void {
  const original = globalThis.fetch;
  if (typeof original !== 'function') return () => {};
  const wrapped = wrapFetch(original);
  if (wrapped === original) return () => {};
  globalThis.fetch = wrapped;
  return () => {
    if (globalThis.fetch === wrapped) globalThis.fetch = original;
  };
}
