// Header work shared by every forwarder, so the benchmark compares transport libraries and not
// three different interpretations of RFC 9110 §7.6.1. All inputs are Node-style header objects
// (lower-case names; string or string[] values), which is what node:http and undici both produce.

/** Headers that describe one hop of the connection and must never be forwarded. */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Response header the real proxy adds to say which lane answered. */
export const LANE_HEADER = 'x-lane-served';
export const LANE = 'stable';

/**
 * Extra header names listed in a Connection header ("Connection: keep-alive, x-foo" makes x-foo
 * hop-by-hop too). Returns null in the overwhelmingly common case of a bare keep-alive/close so
 * the hot path allocates nothing.
 */
function connectionListed(connection) {
  if (connection === undefined || connection === 'keep-alive' || connection === 'close') {
    return null;
  }
  const listed = new Set();
  for (const token of String(connection).split(',')) {
    const name = token.trim().toLowerCase();
    if (name !== '' && !HOP_BY_HOP.has(name)) listed.add(name);
  }
  return listed.size === 0 ? null : listed;
}

/** Copies end-to-end headers into a fresh object, dropping hop-by-hop ones. */
function copyEndToEnd(headers) {
  const listed = connectionListed(headers.connection);
  const out = {};
  for (const name of Object.keys(headers)) {
    if (HOP_BY_HOP.has(name) || listed?.has(name)) continue;
    out[name] = headers[name];
  }
  return out;
}

/**
 * Headers to send upstream for an incoming node:http request. Host is preserved (the upstream
 * sees the name the client used); the proxy's own view of the client goes into x-forwarded-*.
 */
export function upstreamRequestHeaders(req) {
  const out = copyEndToEnd(req.headers);
  const clientIp = req.socket.remoteAddress;
  const prior = out['x-forwarded-for'];
  out['x-forwarded-for'] = prior === undefined ? clientIp : `${prior}, ${clientIp}`;
  out['x-forwarded-proto'] = req.socket.encrypted ? 'https' : 'http';
  if (req.headers.host !== undefined) out['x-forwarded-host'] = req.headers.host;
  return out;
}

/** Headers to send back to the client for an upstream response. */
export function clientResponseHeaders(upstreamHeaders) {
  const out = copyEndToEnd(upstreamHeaders);
  out[LANE_HEADER] = LANE;
  return out;
}

/** True when the incoming request carries a body that has to be streamed upstream. */
export function hasBody(req) {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/** Last-resort reply when the upstream cannot be reached; mid-stream failures just reset. */
export function failRequest(res, err) {
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  res.writeHead(502, { 'content-type': 'text/plain', [LANE_HEADER]: LANE });
  res.end('bad gateway\n');
}
