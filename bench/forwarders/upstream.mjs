// Child-process entry for the upstream service the forwarders talk to. Reports its port over IPC
// and answers {type: 'stats'} with the number of TCP connections accepted so far, which is how
// the bench proves the forwarders really keep upstream connections alive.
import http from 'node:http';
import { fileURLToPath } from 'node:url';

/** ~100 bytes: the typical small JSON-ish API answer. */
export const SMALL_BODY = `${'ok '.repeat(33)}\n`;

/** Response headers the inspect route adds to check response-side hop-by-hop filtering. */
export const INSPECT_RESPONSE_HOPS = {
  connection: 'keep-alive, x-upstream-hop',
  'x-upstream-hop': 'must-not-reach-client',
  'proxy-connection': 'must-not-reach-client',
  upgrade: 'must-not-reach-client',
};

function small(_req, res) {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': SMALL_BODY.length });
  res.end(SMALL_BODY);
}

/** Streams the request body straight back, keeping its framing (length or chunked). */
function echo(req, res) {
  const headers = { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' };
  if (req.headers['content-length'] !== undefined) {
    headers['content-length'] = req.headers['content-length'];
  }
  res.writeHead(200, headers);
  req.pipe(res);
}

/** Returns the headers exactly as the upstream received them, for correctness checks. */
function inspect(req, res) {
  req.resume();
  req.on('end', () => {
    const body = JSON.stringify(req.headers);
    res.writeHead(200, { 'content-type': 'application/json', ...INSPECT_RESPONSE_HOPS });
    res.end(body);
  });
}

const ROUTES = { '/small': small, '/echo': echo, '/inspect': inspect };

function main() {
  let connections = 0;
  const server = http.createServer((req, res) => {
    const route = ROUTES[req.url];
    if (route !== undefined) return route(req, res);
    res.writeHead(404).end();
  });
  // Longer than any pause between rounds, so idle pooled sockets are never closed under a
  // forwarder mid-run (which would show up as resets, not as library cost).
  server.keepAliveTimeout = 65_000;
  server.on('connection', () => connections++);
  process.on('message', (msg) => {
    if (msg?.type === 'stats') process.send({ type: 'stats', connections });
  });
  process.on('disconnect', () => process.exit(0));
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
}

if (isEntryPoint()) main();

/** Only start serving when run as a child, not when the bench imports constants from here. */
function isEntryPoint() {
  return process.argv[1] === fileURLToPath(import.meta.url) && process.send !== undefined;
}
