import { ServerResponse } from 'node:http';
import { parseServed } from '@graylane/lane-core';
import { getConfig } from './config.js';
import { internalError } from './log.js';

/**
 * Provenance relay. Each proxy answers with `x-lane-served: <its hop>, <the upstream's hops>`, so a
 * chain of proxies reads in call order; but an app in the middle answers with its own response and
 * would drop the hops of the calls it made. While the SDK serves an inbound request, it collects the
 * hops of every outbound response (in the order the responses arrive, each distinct hop once) and
 * writes them on the inbound response when its head goes out, unless the app set the header itself.
 *
 * One layer records each call: the fetch wrapper runs the real fetch in a context that relays
 * nothing, so the undici dispatcher (or http client) underneath, which sees the same response, does
 * not record it again.
 */

/** Bounds what one request relays, whatever its upstreams answer. */
export const MAX_SERVED_HOPS = 64;

/** The hops collected for one inbound request. The list is allocated with the first hop. */
export class Relay {
  hops: string[] | undefined = undefined;
  /** How many outbound responses were recorded (a response without the header counts too). */
  responses = 0;
}

function addHops(relay: Relay, value: string): void {
  for (const hop of parseServed(value)) {
    if (relay.hops === undefined) relay.hops = [hop];
    else if (relay.hops.length < MAX_SERVED_HOPS && !relay.hops.includes(hop)) relay.hops.push(hop);
  }
}

/** Records the served-header value of one outbound response: a string, a list of lines, or none. */
export function recordServed(relay: Relay, value: unknown): void {
  try {
    relay.responses++;
    if (value === undefined || value === null) return;
    if (Array.isArray(value)) for (const line of value) addHops(relay, String(line));
    else addHops(relay, String(value));
  } catch (err) {
    internalError('provenance', err);
  }
}

/** The served-header value in undici's raw `[name, value, …]` list (Buffers or strings). */
export function rawHeaderValue(raw: unknown, name: string): string[] | undefined {
  if (!Array.isArray(raw)) return undefined;
  let values: string[] | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = raw[i] as Buffer | string | null | undefined;
    if (key?.length !== name.length || key.toString().toLowerCase() !== name) continue;
    const value = String(raw[i + 1]);
    if (values === undefined) values = [value];
    else values.push(value);
  }
  return values;
}

/** The part of a `ServerResponse` the relay uses. */
interface RelayedResponse {
  headersSent?: boolean;
  writeHead(...args: unknown[]): unknown;
  getHeader(name: string): unknown;
  setHeader(name: string, value: string): unknown;
}

function isRelayable(res: object): res is RelayedResponse {
  const r = res as Partial<Record<keyof RelayedResponse, unknown>>;
  return (
    typeof r.writeHead === 'function' &&
    typeof r.getHeader === 'function' &&
    typeof r.setHeader === 'function'
  );
}

const relayMark = Symbol.for('graylane.sdk.responseRelay');
const relayingMark = Symbol.for('graylane.sdk.relayingWriteHead');
type MarkedResponse = RelayedResponse & { [relayMark]?: Relay };

/** Writes the collected hops, if any, then the head: the one wrapper, on an instance or the prototype. */
function relayingWriteHead(writeHead: RelayedResponse['writeHead']) {
  return function graylaneWriteHead(this: MarkedResponse) {
    // biome-ignore lint/complexity/noArguments: every response's head passes here; no copy
    const args = arguments as unknown as unknown[];
    const hops = this[relayMark]?.hops;
    if (hops !== undefined) writeServed(this, hops, args);
    return writeHead.apply(this, args);
  };
}

/**
 * Makes `res` write the collected hops when its head goes out. Node's implicit header (`res.end()`,
 * `res.write()` without `writeHead`, Express's `send`) calls `this.writeHead` too, so wrapping
 * `writeHead` covers every path. For `ServerResponse` the wrapper goes on the prototype once and a
 * response only carries its relay; anything else that looks like one gets its own wrapper. Returns
 * the relay, or undefined when `res` is not a Node response.
 */
export function relayTo(res: object): Relay | undefined {
  if (!isRelayable(res)) return undefined;
  const relay = new Relay();
  const marked = res as MarkedResponse;
  if (res instanceof ServerResponse) {
    const proto = ServerResponse.prototype as unknown as RelayedResponse & {
      [relayingMark]?: true;
    };
    // Marked on the prototype itself, so that a second copy of the SDK does not wrap it again.
    if (!Object.hasOwn(proto, relayingMark)) {
      proto[relayingMark] = true;
      proto.writeHead = relayingWriteHead(proto.writeHead);
    }
  } else {
    marked.writeHead = relayingWriteHead(marked.writeHead);
  }
  marked[relayMark] = relay;
  return relay;
}

function writeServed(res: RelayedResponse, hops: string[], args: unknown[]): void {
  try {
    if (res.headersSent) return;
    const name = getConfig().servedHeader;
    if (res.getHeader(name) !== undefined || inWriteHeadArgs(args, name)) return;
    res.setHeader(name, hops.join(', '));
  } catch (err) {
    internalError('provenance', err);
  }
}

/** Whether `writeHead(status, [reason], headers)` sets `name` (an object or a flat array). */
function inWriteHeadArgs(args: unknown[], name: string): boolean {
  const headers = typeof args[1] === 'string' ? args[2] : args[1];
  if (typeof headers !== 'object' || headers === null) return false;
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === name) return true;
    }
    return false;
  }
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() === name && (headers as Record<string, unknown>)[key] !== undefined) {
      return true;
    }
  }
  return false;
}
