// Child-process entry: `node serve.mjs <forwarder> <upstream-url>`. Runs one forwarder on an
// ephemeral 127.0.0.1 port and reports the port to the parent over IPC, so each forwarder gets an
// event loop of its own. The minimal forwarders are request handlers behind a plain node:http
// server; graylane-proxy brings its own listener.
import http from 'node:http';
import { fileURLToPath } from 'node:url';

/** Puts a request handler behind node:http and resolves with the port. */
function behindNodeHttp(createHandler) {
  return async (url) => {
    const server = http.createServer(await createHandler(url));
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    return server.address().port;
  };
}

/** The real proxy's row; every other forwarder is a minimal one. */
export const PRODUCT = 'graylane-proxy (gateway)';
/** The same process as an outbound sidecar, addressed by `Host: bench`. */
export const PRODUCT_OUTBOUND = 'graylane-proxy (outbound)';

/** Variant name -> lazy starter, so each child loads only what it benchmarks. */
const FORWARDERS = {
  'undici-request+pipeline': behindNodeHttp(async (url) =>
    (await import('./undici-request.mjs')).createForwarder(url, { responseBody: 'pipeline' }),
  ),
  'undici-request+pipe': behindNodeHttp(async (url) =>
    (await import('./undici-request.mjs')).createForwarder(url, { responseBody: 'pipe' }),
  ),
  'undici-dispatch': behindNodeHttp(async (url) =>
    (await import('./undici-dispatch.mjs')).createForwarder(url),
  ),
  'undici-stream': behindNodeHttp(async (url) =>
    (await import('./undici-stream.mjs')).createForwarder(url),
  ),
  'http-proxy': behindNodeHttp(async (url) =>
    (await import('./http-proxy.mjs')).createForwarder(url),
  ),
  'node-http': behindNodeHttp(async (url) =>
    (await import('./node-http.mjs')).createForwarder(url),
  ),
  // The product's full hot path, as opposed to the minimal forwarders above.
  [PRODUCT]: async (url) => (await import('./graylane-proxy.mjs')).startGateway(url),
  [PRODUCT_OUTBOUND]: async (url) =>
    (await import('./graylane-proxy.mjs')).startListener('outbound', url),
};

/** What bench/forwarding.mjs compares: every forwarder reached the same way (not by `Host`). */
export const FORWARDER_NAMES = Object.keys(FORWARDERS).filter((name) => name !== PRODUCT_OUTBOUND);

async function main([name, upstreamUrl]) {
  const start = FORWARDERS[name];
  if (start === undefined || upstreamUrl === undefined) {
    throw new Error(`usage: serve.mjs <${Object.keys(FORWARDERS).join('|')}> <upstream-url>`);
  }
  const port = await start(upstreamUrl);
  if (process.send === undefined) {
    // Started without IPC (under valgrind, say): the port goes to stdout, SIGTERM stops it.
    process.stdout.write(`${JSON.stringify({ port })}\n`);
    process.on('SIGTERM', () => process.exit(0));
    // bench/callgrind.mjs collects the warm-up's garbage before counting (node --expose-gc).
    process.on('SIGUSR2', () => {
      globalThis.gc?.();
      process.stdout.write('{"gc":true}\n');
    });
    return;
  }
  process.send({ port });
  // The parent going away (even by crash) must not leave forwarders running.
  process.on('disconnect', () => process.exit(0));
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

/** Only start serving when run, not when the bench imports constants from here. */
function isEntryPoint() {
  return process.argv[1] === fileURLToPath(import.meta.url);
}
