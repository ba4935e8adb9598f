// `node bench/peers/graylane-cluster.mjs <workers> <json>`: graylane-proxy as node:cluster workers
// sharing one gateway port, a bench-side wrapper (graylane-proxy has no worker mode): what workers
// would lift, measured without building them into the product. Each worker is a
// bench/peers/graylane.mjs process with the same JSON (see there); the gateway port is picked here
// and given to every worker, and the primary passes each accepted connection to a worker in turn
// (cluster's round-robin, Linux's default). Workers inherit the primary's CPU affinity (taskset).
// Prints {gateway} as one JSON line once every worker listens; SIGTERM stops them all.
import cluster from 'node:cluster';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './harness.mjs';

const [workers, json] = process.argv.slice(2);
const gatewayPort = await freePort();
cluster.setupPrimary({
  exec: path.join(path.dirname(fileURLToPath(import.meta.url)), 'graylane.mjs'),
  args: [JSON.stringify({ ...JSON.parse(json), gatewayPort })],
  // A worker's own port line is not this wrapper's.
  silent: true,
});
const started = [];
for (let i = 0; i < Number(workers); i++) {
  const worker = cluster.fork();
  worker.process.stderr.pipe(process.stderr);
  started.push(new Promise((resolve) => worker.process.stdout.once('data', resolve)));
  worker.once('exit', (code) => {
    console.error(`cluster worker ${i} exited (${code})`);
    process.exit(1);
  });
}
await Promise.all(started);
process.stdout.write(`${JSON.stringify({ gateway: gatewayPort })}\n`);
process.on('SIGTERM', () => {
  for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGKILL');
  process.exit(0);
});
