// Route-table propagation: one RouteTablePublisher (behind node:http, as the controller mounts it),
// N ControllerRouteTableSource watchers (the proxy's own source, without its listeners), K changes.
// Measures publish() → every watcher applied, in wall-clock time and in CPU time, two ways:
//   - one process: publisher and watchers share one event loop, which does the whole fan-out alone.
//   - processes: the watchers live in WORKERS child processes (as proxies would); the time is taken
//     in the publisher's process when waitApplied() resolves, i.e. when every ack is back.
// Run after `pnpm build` (or `pnpm bench:watch`). Writes bench/results/routetable-watch.md. < 1 min.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { RouteTablePublisher } from '../packages/controller/dist/index.js';
import { servePublisher } from '../packages/controller/test/fixtures/routetable-server.mjs';
import { parseRouteTable } from '../packages/lane-core/dist/index.js';
import { ControllerRouteTableSource, createLogger } from '../packages/router-proxy/dist/index.js';

const SIZES = (process.env.WATCHERS ?? '100,200').split(',').map(Number);
const CHANGES = Number(process.env.CHANGES ?? 40);
const WORKERS = Number(process.env.WORKERS ?? 2);
const GAP_MS = 30;
const SERVICES = 20;
/** Tables a watcher refused: the run fails if there is any, since every table sent is valid. */
const refused = [];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const cpuMicros = (since) => {
  const { user, system } = process.cpuUsage(since);
  return user + system;
};

/** A table of the size a small mesh has: 20 services with a gray lane, one weighted entrypoint. */
function meshTable(revision) {
  const services = {};
  for (let i = 0; i < SERVICES; i += 1) {
    services[`svc-${i}`] = {
      stable: { version: 'v1', endpoints: [`http://127.0.0.1:${10_000 + i}`] },
      lanes: { gray: { version: 'v2', endpoints: [`http://127.0.0.1:${20_000 + i}`] } },
    };
  }
  return parseRouteTable({
    apiVersion: 'graylane/v1',
    revision,
    services,
    entrypoints: [
      {
        name: 'shop',
        match: { pathPrefix: '/' },
        service: 'svc-0',
        assign: [{ lane: 'gray', weight: revision % 100, sticky: 'cookie:graylane' }],
      },
    ],
  });
}

/** Opens `count` watchers named `${prefix}-i`; `onApplied(revision)` after each table applies. */
async function openWatchers(url, count, prefix, onApplied) {
  const logger = createLogger('silent');
  const events = {
    onTable: (table) => onApplied(table.revision),
    onError: (error) => refused.push(error),
  };
  const sources = Array.from(
    { length: count },
    (_, i) => new ControllerRouteTableSource(url, events, { proxyId: `${prefix}-${i}`, logger }),
  );
  await Promise.all(sources.map((s) => s.start()));
  if (sources.some((s) => s.appliedRevision === undefined))
    throw new Error('a watcher got no table');
  return sources;
}

function summary(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
  return { p50: at(50), p99: at(99), max: sorted.at(-1) };
}

/**
 * Publishes CHANGES tables, one after the other once the previous is acked by all; `appliedAll`
 * (optional) resolves when every watcher's onTable ran. Returns the samples and CPU per change.
 */
async function publishChanges(publisher, appliedAll) {
  const applied = [];
  const acked = [];
  let cpu = 0;
  // How late this process's own timers ran: a stall here is time the process was not running.
  const stalls = monitorEventLoopDelay({ resolution: 5 });
  stalls.enable();
  for (let k = 0; k < CHANGES; k += 1) {
    const revision = k + 2;
    const table = meshTable(revision);
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    const allApplied = appliedAll?.(revision);
    publisher.publish(table);
    const waited = publisher.waitApplied(revision, { timeoutMs: 10_000 });
    if (allApplied) applied.push((await allApplied) - start);
    const result = await waited;
    acked.push(performance.now() - start);
    cpu += cpuMicros(cpuStart);
    if (result.missing.length > 0) throw new Error(`${result.missing.length} missing`);
    await sleep(GAP_MS);
  }
  stalls.disable();
  return { applied, acked, cpuPerChange: cpu / CHANGES, stallMaxMs: stalls.max / 1e6 };
}

async function oneProcess(size) {
  const publisher = new RouteTablePublisher();
  const served = await servePublisher(publisher);
  publisher.publish(meshTable(1));
  const counts = new Map();
  let waiting;
  const sources = await openWatchers(served.url, size, 'w', (revision) => {
    const n = (counts.get(revision) ?? 0) + 1;
    counts.set(revision, n);
    if (waiting?.revision === revision && n === size) waiting.resolve(performance.now());
  });
  const run = await publishChanges(
    publisher,
    (revision) =>
      new Promise((resolve) => {
        waiting = { revision, resolve };
      }),
  );
  for (const s of sources) s.stop();
  await served.close();
  return {
    applied: summary(run.applied),
    acked: summary(run.acked),
    cpuPerWatcher: run.cpuPerChange / size,
    stallMaxMs: run.stallMaxMs,
  };
}

async function childProcesses(size) {
  const publisher = new RouteTablePublisher();
  const served = await servePublisher(publisher);
  publisher.publish(meshTable(1));
  const children = Array.from({ length: WORKERS }, (_, w) => {
    const share = Math.floor(size / WORKERS) + (w < size % WORKERS ? 1 : 0);
    const args = ['watchers', served.url, String(share), `p${w}`];
    return fork(fileURLToPath(import.meta.url), args, {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
  });
  await Promise.all(children.map((c) => once(c, 'message')));
  while (publisher.watchers().filter((w) => w.appliedRevision === 1).length < size) await sleep(10);
  const run = await publishChanges(publisher);
  const reports = children.map((c) => once(c, 'message'));
  for (const child of children) child.send('stop');
  const watcherCpu = (await Promise.all(reports)).reduce((sum, [m]) => sum + m.cpuMicros, 0);
  await served.close();
  return {
    acked: summary(run.acked),
    publisherCpuPerWatcher: run.cpuPerChange / size,
    watcherCpuPerWatcher: watcherCpu / CHANGES / size,
    stallMaxMs: run.stallMaxMs,
  };
}

async function main() {
  const load = os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const started = performance.now();
  const rows = [];
  for (const size of SIZES) {
    const local = await oneProcess(size);
    const split = await childProcesses(size);
    rows.push({ size, local, split });
    console.log(
      `${size} watchers: one process p99 applied ${local.applied.p99.toFixed(1)} ms, acked ${local.acked.p99.toFixed(1)} ms; ${WORKERS} processes p99 acked ${split.acked.p99.toFixed(1)} ms`,
    );
  }
  if (refused.length > 0)
    throw new Error(`watchers refused ${refused.length} tables: ${refused[0]}`);
  const ms = (s) => `${s.p50.toFixed(1)} / ${s.p99.toFixed(1)} / ${s.max.toFixed(1)}`;
  const us = (v) => v.toFixed(0);
  const cpu = os.cpus();
  const lines = [
    '# Route-table propagation: publish → every watcher applied',
    '',
    `Generated by \`node bench/routetable-watch.mjs\` on ${new Date().toISOString()} in ${((performance.now() - started) / 1000).toFixed(0)} s.`,
    `Node ${process.version}, ${cpu.length} × ${cpu[0]?.model.trim() ?? 'CPU'}, load average at start ${load}`,
    '(the machine is shared with other engineers running tests, so wall-clock tails are theirs too;',
    'CPU time per watcher is the steadier figure).',
    '',
    "One `RouteTablePublisher` behind node:http on 127.0.0.1 (the controller's route), N",
    "`ControllerRouteTableSource` watchers (the proxy's own source: undici, each table validated with",
    `lane-core, acked). ${CHANGES} changes per row, each published once the previous one is acked by`,
    `all, ${GAP_MS} ms apart. A table is ${SERVICES} services with a gray lane and a weighted entrypoint,`,
    `${Buffer.byteLength(JSON.stringify(meshTable(2)))} bytes of JSON; each change moves the weight.`,
    '',
    '- **one process**: publisher and watchers share one event loop, which does the whole fan-out',
    "  alone: the publisher's writes, every watcher's parse and validation, every ack both ways.",
    "  *applied*: publish → the last watcher's `onTable` (validated, serving); *acked*: publish →",
    '  `waitApplied` resolved (every ack back at the publisher).',
    `- **${WORKERS} processes**: the watchers in ${WORKERS} child processes, as proxies are, on the same 2`,
    "  cores; publish → `waitApplied` resolved in the publisher's process (what a promote waits for",
    '  before it stops the old processes).',
    '',
    'Wall-clock ms, p50 / p99 / max over the changes (each sample is the slowest watcher of a change):',
    '',
    `| watchers | one process, applied | one process, acked | ${WORKERS} processes, acked | longest stall (one / ${WORKERS}) |`,
    '|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.size} | ${ms(r.local.applied)} | ${ms(r.local.acked)} | ${ms(r.split.acked)} | ${r.local.stallMaxMs.toFixed(0)} / ${r.split.stallMaxMs.toFixed(0)} |`,
    ),
    '',
    "The last column is the publisher process's longest event-loop delay in the row (timers checked",
    'every 5 ms): a tail sample near it is time the process did not run, not time the protocol took.',
    '',
    'CPU µs per watcher per change (user + system):',
    '',
    '| watchers | one process, everything | publisher side | watcher side |',
    '|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.size} | ${us(r.local.cpuPerWatcher)} | ${us(r.split.publisherCpuPerWatcher)} | ${us(r.split.watcherCpuPerWatcher)} |`,
    ),
    '',
    'Goal (issue 14): p99 < 100 ms for 100 watchers.',
    '',
  ];
  const out = fileURLToPath(new URL('results/routetable-watch.md', import.meta.url));
  mkdirSync(fileURLToPath(new URL('results/', import.meta.url)), { recursive: true });
  writeFileSync(out, lines.join('\n'));
  console.log(`wrote ${out}`);
}

// A child process of the "processes" mode: its share of the watchers, and its CPU time at the end.
if (process.argv[2] === 'watchers') {
  const [, , , url, count, prefix] = process.argv;
  const sources = await openWatchers(url, Number(count), prefix, () => {});
  const since = process.cpuUsage();
  process.send({ ready: sources.length });
  process.once('message', () => {
    process.send({ cpuMicros: cpuMicros(since) }, () => {
      for (const s of sources) s.stop();
      process.exit(0);
    });
  });
} else {
  await main();
}
