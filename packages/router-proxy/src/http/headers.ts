import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';

/** RFC 9110 §7.6.1 connection-specific headers, plus the ones undici refuses or a proxy must consume. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'http2-settings',
]);

/**
 * Extra names the Connection header lists; none (and nothing allocated) for the usual bare
 * `keep-alive` or `close`, since these copies run twice per forwarded request.
 */
function connectionNamed(headers: IncomingHttpHeaders): Set<string> | undefined {
  const value = headers.connection;
  if (!value || value === 'keep-alive' || value === 'close') return undefined;
  const named = new Set<string>();
  for (const token of String(value).split(',')) {
    const name = token.trim().toLowerCase();
    if (name) named.add(name);
  }
  return named;
}

/** A copy of `headers` without hop-by-hop headers, including those the Connection header names. */
export function endToEndHeaders(
  headers: IncomingHttpHeaders,
  drop?: ReadonlySet<string>,
): Record<string, string | string[]> {
  const named = connectionNamed(headers);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || named?.has(name) || drop?.has(name)) {
      continue;
    }
    out[name] = value;
  }
  return out;
}

/** Response headers from upstream, without hop-by-hop ones, ready for `res.writeHead`. */
export function responseHeaders(
  headers: Record<string, string | string[] | undefined>,
): OutgoingHttpHeaders {
  const named = connectionNamed(headers as IncomingHttpHeaders);
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || named?.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/**
 * `x-forwarded-*` for the next hop. `keep` (a sidecar, or the gateway behind a trusted proxy):
 * the client is appended to x-forwarded-for (as nginx and Envoy do) and the proto and host a hop
 * before set are kept. Otherwise (the gateway, to a client it does not trust) what the client
 * claims is replaced: it is the edge, and x-forwarded-for from a client is anyone's to forge.
 */
export function setForwardedHeaders(
  headers: Record<string, string | string[]>,
  req: IncomingMessage,
  keep: boolean,
): void {
  const client = req.socket.remoteAddress ?? 'unknown';
  const previous = keep ? headers['x-forwarded-for'] : undefined;
  const prior = Array.isArray(previous) ? previous.join(', ') : previous;
  headers['x-forwarded-for'] = prior ? `${prior}, ${client}` : client;
  const proto = 'encrypted' in req.socket ? 'https' : 'http';
  if (!keep || !headers['x-forwarded-proto']) headers['x-forwarded-proto'] = proto;
  if (req.headers.host && (!keep || !headers['x-forwarded-host'])) {
    headers['x-forwarded-host'] = req.headers.host;
  } else if (!keep) delete headers['x-forwarded-host'];
}

/** An RFC 7239 value: a token as is, anything else (an IPv6 node, a host with a port) quoted. */
function forwardedValue(value: string): string {
  if (/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(value)) return value;
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * `Forwarded` (RFC 7239), written at the gateway the way x-forwarded-* are: this hop's element is
 * appended to what a trusted proxy in front said (`keep`), and replaces what anyone else claims.
 */
export function setForwarded(
  headers: Record<string, string | string[]>,
  req: IncomingMessage,
  keep: boolean,
): void {
  const element = forwardedElement(req);
  const previous = keep ? headers.forwarded : undefined;
  const prior = Array.isArray(previous) ? previous.join(', ') : previous;
  headers.forwarded = prior ? `${prior}, ${element}` : element;
}

const forwardedMemo = Symbol('graylane.forwarded');

/** This hop's `Forwarded` element as last made on a connection: its client and scheme do not change. */
interface ForwardedMemo {
  /** `for=…;proto=…` */
  client: string;
  host: string | undefined;
  element: string;
}

/**
 * `for=…;proto=…[;host=…]` for a request. Made once per connection, and again only when the Host
 * differs from the last request's on it: quoting and joining per request showed in the profile
 * (issue 21).
 */
function forwardedElement(req: IncomingMessage): string {
  const socket = req.socket as IncomingMessage['socket'] & { [forwardedMemo]?: ForwardedMemo };
  let memo = socket[forwardedMemo];
  if (!memo) {
    const client = socket.remoteAddress ?? 'unknown';
    const node = client.includes(':') ? `[${client}]` : client;
    const proto = 'encrypted' in socket ? 'https' : 'http';
    memo = { client: `for=${forwardedValue(node)};proto=${proto}`, host: undefined, element: '' };
    memo.element = memo.client;
    socket[forwardedMemo] = memo;
  }
  const { host } = req.headers;
  if (host !== memo.host) {
    memo.host = host;
    memo.element = host ? `${memo.client};host=${forwardedValue(host)}` : memo.client;
  }
  return memo.element;
}

export function singleHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
