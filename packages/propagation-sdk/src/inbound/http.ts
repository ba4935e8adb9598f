import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import http from 'node:http';
import https from 'node:https';
import { applyWithIncoming, runWithIncoming } from './incoming.js';

/** Wraps a `node:http` request listener: `http.createServer(laneHandler((req, res) => …))`. */
export function laneHandler<
  Req extends typeof IncomingMessage = typeof IncomingMessage,
  Res extends typeof ServerResponse<InstanceType<Req>> = typeof ServerResponse,
>(handler: RequestListener<Req, Res>): RequestListener<Req, Res> {
  return function graylaneHandler(req, res) {
    runWithIncoming(req, () => handler(req, res), res);
  };
}

type Emit = (this: unknown, event: string | symbol, ...args: unknown[]) => boolean;
interface EmitterPrototype {
  emit: Emit;
}

const installed = Symbol.for('graylane.sdk.serverEmit');

function wrapEmit(emit: Emit): Emit {
  return function graylaneServerEmit(this: unknown, event: string | symbol) {
    // biome-ignore lint/complexity/noArguments: every server event passes here; no copy
    const args = arguments as unknown as [string | symbol, ...unknown[]];
    if (event !== 'request') return emit.apply(this, args);
    const req = args[1] as IncomingMessage;
    const res = args[2] as ServerResponse;
    return applyWithIncoming(req, res, emit, this, args);
  } as Emit;
}

/**
 * Instruments one server instance (any `http`/`https` server, whatever its handler: Express, Koa,
 * a plain listener): its `request` events run in the request's lane.
 */
export function instrumentServer<S extends http.Server | https.Server>(server: S): S {
  const target = server as unknown as EmitterPrototype & { [installed]?: true };
  if (target[installed]) return server;
  target.emit = wrapEmit(target.emit);
  target[installed] = true;
  return server;
}

/**
 * Instruments every `http` and `https` server in the process by wrapping `emit` on their prototypes
 * (what `register` does). Returns a function that undoes it.
 */
export function installServerHooks(): () => void {
  const prototypes = [http.Server.prototype, https.Server.prototype] as unknown as Array<
    EmitterPrototype & { [installed]?: Emit }
  >;
  const undo: Array<() => void> = [];
  for (const proto of prototypes) {
    if (Object.hasOwn(proto, installed)) continue;
    const hadOwn = Object.hasOwn(proto, 'emit');
    const original = proto.emit;
    proto.emit = wrapEmit(original);
    proto[installed] = original;
    undo.push(() => {
      if (hadOwn) proto.emit = original;
      else delete (proto as Partial<EmitterPrototype>).emit;
      delete proto[installed];
    });
  }
  return () => {
    for (const fn of undo) fn();
  };
}
