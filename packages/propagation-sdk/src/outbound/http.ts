import type { ClientRequest, IncomingMessage } from 'node:http';
import http from 'node:http';
import https from 'node:https';
import { syncBuiltinESMExports } from 'node:module';
import { clientRequestCarrier } from '../carriers.js';
import { getConfig } from '../config.js';
import { currentRelay } from '../context.js';
import { internalError } from '../log.js';
import type { OutboundClient } from '../metrics.js';
import { type Relay, recordServed } from '../provenance.js';
import { tagOutbound } from './tag.js';

/**
 * node:http and node:https clients. The wrapper lets Node build the `ClientRequest` from whatever
 * arguments were given (url, options, agent or none) and then sets the headers on it, which is
 * possible until the first write. `get` ends the request at once, so it is rebuilt on the wrapped
 * `request` rather than wrapped.
 */

type RequestFn = typeof http.request;
type GetFn = typeof http.get;

const wrappedMark = Symbol.for('graylane.sdk.httpRequest');

/**
 * Strict mode's `LaneLeakError` is thrown to the caller of `request`, where a client library turns it
 * into its own rejection or callback error. The request, which the caller never receives, is destroyed
 * without an error: an `'error'` event on it would have no listener and crash the process.
 */
function tagClientRequest(
  req: ClientRequest,
  client: OutboundClient,
  entry: (...args: never[]) => unknown,
): void {
  try {
    tagOutbound(() => clientRequestCarrier(req), client, entry);
  } catch (err) {
    req.on('error', ignore);
    req.destroy();
    throw err;
  }
}

function ignore(): void {}

type Emit = ClientRequest['emit'];

/**
 * Records the response's `x-lane-served` hops before the app's `response` listeners see it. `emit` is
 * wrapped on the instance rather than a listener added: Node discards (dumps) a response nobody listens
 * to, and an added listener would keep it, and the socket, waiting.
 */
function relayResponse(req: ClientRequest, relay: Relay): void {
  const emit = req.emit;
  req.emit = function graylaneClientEmit(this: ClientRequest, ...args: Parameters<Emit>) {
    if (args[0] === 'response') {
      const res = args[1] as IncomingMessage | undefined;
      recordServed(relay, res?.headers?.[getConfig().servedHeader]);
    }
    return emit.apply(this, args);
  } as Emit;
}

/**
 * A `request` that tags each call with the current lane (an explicit header on the call wins), and
 * inside an inbound request collects the response's `x-lane-served` hops for the request's response.
 */
export function wrapRequest(request: RequestFn, client: OutboundClient = 'http'): RequestFn {
  if ((request as RequestFn & { [wrappedMark]?: true })[wrappedMark]) return request;
  const wrapped = function graylaneRequest(this: unknown, ...args: Parameters<RequestFn>) {
    const req = (request as (...a: Parameters<RequestFn>) => ClientRequest).apply(this, args);
    tagClientRequest(req, client, wrapped);
    const relay = currentRelay();
    if (relay !== undefined) {
      try {
        relayResponse(req, relay);
      } catch (err) {
        internalError(`provenance:${client}`, err);
      }
    }
    return req;
  } as RequestFn;
  (wrapped as RequestFn & { [wrappedMark]?: true })[wrappedMark] = true;
  return wrapped;
}

/** A `get` on top of a (wrapped) `request`, as Node's own `get` is. */
export function getFrom(request: RequestFn): GetFn {
  return function graylaneGet(this: unknown, ...args: Parameters<GetFn>) {
    const req = (request as (...a: Parameters<GetFn>) => ClientRequest).apply(this, args);
    req.end();
    return req;
  } as GetFn;
}

interface ClientModule {
  request: RequestFn;
  get: GetFn;
}

/**
 * Patches `http.request/get` and `https.request/get` for the whole process, including ESM named
 * imports (`import { request } from 'node:http'`). Returns a function that undoes it.
 */
export function installHttpClient(): () => void {
  const modules: Array<[ClientModule, OutboundClient]> = [
    [http as unknown as ClientModule, 'http'],
    [https as unknown as ClientModule, 'https'],
  ];
  const undo: Array<() => void> = [];
  for (const [mod, client] of modules) {
    const { request, get } = mod;
    const wrapped = wrapRequest(request, client);
    if (wrapped === request) continue;
    mod.request = wrapped;
    mod.get = getFrom(wrapped);
    undo.push(() => {
      mod.request = request;
      mod.get = get;
    });
  }
  syncBuiltinESMExports();
  return () => {
    for (const fn of undo) fn();
    syncBuiltinESMExports();
  };
}
