// Child-process entry: `node serve.mjs <forwarder> <upstream-url>`. Runs one forwarder behind a
// node:http server on an ephemeral 127.0.0.1 port and reports the port to the parent over IPC,
// so each forwarder gets an event loop of its own.
import http from 'node:http';
import { fileURLToPath } from 'node:url';

/** Forwarder name -> lazy factory, so each child loads only the library it benchmarks. */
const FORWARDERS = {
  'undici-request+pipeline': async (url) =>
    (await import('./undici-request.mjs')).createForwarder(url, { responseBody: 'pipeline' }),
  'undici-request+pipe': async (url) =>
    (await import('./undici-request.mjs')).createForwarder(url, { responseBody: 'pipe' }),
  'undici-stream': async (url) => (await import('./undici-stream.mjs')).createForwarder(url),
  'http-proxy': async (url) => (await import('./http-proxy.mjs')).createForwarder(url),
  'node-http': async (url) => (await import('./node-http.mjs')).createForwarder(url),
};

export const FORWARDER_NAMES = Object.keys(FORWARDERS);

async function main([name, upstreamUrl]) {
  const create = FORWARDERS[name];
  if (create === undefined || upstreamUrl === undefined) {
    throw new Error(`usage: serve.mjs <${FORWARDER_NAMES.join('|')}> <upstream-url>`);
  }
  const server = http.createServer(await create(upstreamUrl));
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
  // The parent going away (even by crash) must not leave forwarders running.
  process.on('disconnect', () => process.exit(0));
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

/** Only start serving when run as a child, not when the bench imports constants from here. */
function isEntryPoint() {
  return process.argv[1] === fileURLToPath(import.meta.url) && process.send !== undefined;
}
