// One bench target per process, so the SDK's process-wide hooks never touch the baseline variants.
// Usage: node bench/sdk-overhead-server.mjs <upstream|hello[-als|-sdk]|node-hello[-als|-sdk]|fetch[-als|-sdk]> [upstreamUrl]
import { AsyncLocalStorage } from 'node:async_hooks';
import http from 'node:http';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const sdkRequire = createRequire(
  new URL('../packages/propagation-sdk/package.json', import.meta.url),
);
const express = sdkRequire('express');
const [variant, upstream] = process.argv.slice(2);

async function build() {
  if (variant === 'upstream') return http.createServer((_req, res) => res.end('upstream'));
  if (variant.startsWith('node-')) return buildNodeHttp();
  const app = express();
  if (variant.endsWith('-als')) {
    // The floor: what any AsyncLocalStorage-based context costs on this Node, with no SDK code.
    const als = new AsyncLocalStorage();
    app.use((_req, _res, next) => als.run({ lane: 'gray' }, next));
  }
  if (variant.endsWith('-sdk')) {
    // BENCH_SDK_DIST: another build of the SDK (the instruction bench's "before"), same process layout.
    const dist = process.env.BENCH_SDK_DIST;
    const sdk = await import(
      dist ? pathToFileURL(dist).href : '../packages/propagation-sdk/dist/index.js'
    );
    // What a service using the SDK runs: every hook of the zero-code setup, plus the middleware.
    sdk.install(JSON.parse(process.env.BENCH_SDK_INSTALL ?? '{}'));
    if (process.env.BENCH_SDK_MIDDLEWARE !== '0') app.use(sdk.laneMiddleware());
  }
  if (variant.startsWith('hello')) app.get('/', (_req, res) => res.send('hello world'));
  else {
    app.get('/', async (_req, res) => {
      const body = await (await fetch(upstream)).text();
      res.send(body);
    });
  }
  return http.createServer(app);
}

/**
 * The same hello world on node:http alone: what context propagation costs without Express 5, whose
 * per-request prototype swaps keep V8 re-optimizing and make every extra async hook dearer.
 */
async function buildNodeHttp() {
  const hello = (_req, res) => res.end('hello world');
  if (variant.endsWith('-als')) {
    const als = new AsyncLocalStorage();
    return http.createServer((req, res) => als.run({ lane: 'gray' }, hello, req, res));
  }
  if (variant.endsWith('-sdk')) {
    const dist = process.env.BENCH_SDK_DIST;
    const sdk = await import(
      dist ? pathToFileURL(dist).href : '../packages/propagation-sdk/dist/index.js'
    );
    sdk.install(JSON.parse(process.env.BENCH_SDK_INSTALL ?? '{}'));
  }
  return http.createServer(hello);
}

const server = await build();
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
// The instruction bench collects garbage between warm-up and counting (node --expose-gc), so that
// every variant starts counting from the same clean heap; it waits for this line.
process.on('SIGUSR2', () => {
  globalThis.gc?.();
  process.stdout.write('{"gc":true}\n');
});
// CPU time spent by this server, asked for before and after each load run: on a shared 2-core
// machine, CPU per request is far steadier than requests per second.
process.on('message', (message) => {
  if (message === 'cpu') {
    const { user, system } = process.cpuUsage();
    process.send({ cpuMicros: user + system });
  }
});
