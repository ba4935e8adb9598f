import type { Dispatcher } from 'undici';
import { type HeaderRecord, headersToRecord, objectCarrier } from '../carriers.js';
import { getConfig } from '../config.js';
import { currentRelay } from '../context.js';
import { internalError } from '../log.js';
import { dispatchWithoutOtelBaggage } from '../otel/bridge.js';
import { type Relay, rawHeaderValue, recordServed } from '../provenance.js';
import { shared } from '../state.js';
import { tagOutbound } from './tag.js';

type Handler = Dispatcher.DispatchHandler;
type Controller = Dispatcher.DispatchController;
type ResponseHeaders = Parameters<NonNullable<Handler['onResponseStart']>>[2];

/**
 * Forwards every callback of a handler with undici 7's API (which undici 7's `compose` gives every
 * interceptor) and records the response's `x-lane-served` hops on the way.
 */
class RelayHandler implements Handler {
  constructor(
    private readonly handler: Handler,
    private readonly relay: Relay,
  ) {}
  onRequestStart(controller: Controller, context: unknown): void {
    this.handler.onRequestStart?.(controller, context);
  }
  onRequestUpgrade(
    controller: Controller,
    statusCode: number,
    headers: ResponseHeaders,
    socket: never,
  ) {
    this.handler.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }
  onResponseStart(
    controller: Controller,
    statusCode: number,
    headers: ResponseHeaders,
    message?: string,
  ) {
    if (statusCode >= 200) recordServed(this.relay, headers?.[getConfig().servedHeader]);
    this.handler.onResponseStart?.(controller, statusCode, headers, message);
  }
  onResponseData(controller: Controller, chunk: Buffer): void {
    this.handler.onResponseData?.(controller, chunk);
  }
  onResponseEnd(controller: Controller, trailers: ResponseHeaders): void {
    this.handler.onResponseEnd?.(controller, trailers);
  }
  onResponseError(controller: Controller, error: Error): void {
    this.handler.onResponseError?.(controller, error);
  }
}

/**
 * The same for a handler with the older callbacks, which an interceptor meets when it is composed onto
 * a dispatcher of an undici 6 (Node's bundled copy, whose agent may already be the global dispatcher).
 */
class LegacyRelayHandler implements Handler {
  constructor(
    private readonly handler: Handler,
    private readonly relay: Relay,
  ) {}
  onConnect(abort: (err?: Error) => void, context?: unknown): void {
    (this.handler.onConnect as (a: typeof abort, c: unknown) => void)?.call(
      this.handler,
      abort,
      context,
    );
  }
  onError(err: Error): void {
    if (typeof this.handler.onError !== 'function') throw err;
    this.handler.onError(err);
  }
  onUpgrade(statusCode: number, headers: Buffer[] | string[] | null, socket: never): void {
    this.handler.onUpgrade?.(statusCode, headers, socket);
  }
  onResponseStarted(): void {
    this.handler.onResponseStarted?.();
  }
  onHeaders(statusCode: number, headers: Buffer[], resume: () => void, statusText: string) {
    if (statusCode >= 200) {
      recordServed(this.relay, rawHeaderValue(headers, getConfig().servedHeader));
    }
    return this.handler.onHeaders?.(statusCode, headers, resume, statusText) as boolean;
  }
  onData(chunk: Buffer): boolean {
    return this.handler.onData?.(chunk) as boolean;
  }
  onComplete(trailers: string[] | null): void {
    this.handler.onComplete?.(trailers);
  }
  onBodySent(chunkSize: number, totalBytesSent: number): void {
    this.handler.onBodySent?.(chunkSize, totalBytesSent);
  }
}

/** `handler`, recording its response's provenance when the call is made for an inbound request. */
function relayHandler(handler: Handler): Handler {
  const relay = currentRelay();
  if (relay === undefined) return handler;
  try {
    if (typeof handler.onRequestStart === 'function') return new RelayHandler(handler, relay);
    if (typeof handler.onHeaders === 'function') return new LegacyRelayHandler(handler, relay);
  } catch (err) {
    internalError('provenance:undici', err);
  }
  return handler;
}

/**
 * An undici interceptor that tags every request with the current lane, to stack with the others:
 * `new Agent().compose(laneInterceptor(), interceptors.retry())`. An explicit tag on the request
 * wins. The caller's headers are copied, never mutated.
 *
 * In strict mode a detected lane leak throws `LaneLeakError` from `dispatch`, which undici turns
 * into a rejected request.
 *
 * Inside an inbound request it also collects the response's `x-lane-served` hops for the request's
 * own response.
 */
export function laneInterceptor(): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) =>
    function graylaneDispatch(opts, handler) {
      let headers: HeaderRecord | undefined;
      const carrierOf = () => {
        headers ??= headersToRecord(opts.headers);
        return objectCarrier(headers);
      };
      // Whatever the outcome, the headers to send are the ones the carrier holds, if it was made.
      tagOutbound(carrierOf, 'undici', graylaneDispatch);
      const relayed = relayHandler(handler);
      const send = () =>
        dispatch(
          headers !== undefined
            ? { ...opts, headers: headers as Record<string, string | string[]> }
            : opts,
          relayed,
        );
      shared.dispatching++;
      try {
        return dispatchWithoutOtelBaggage(getConfig().baggageKey, carrierOf, send);
      } finally {
        shared.dispatching--;
      }
    };
}
