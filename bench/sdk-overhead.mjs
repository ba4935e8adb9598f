// SDK overhead: Express services with and without @graylane/sdk, side by side, in interleaved rounds.
// Each server runs in its own process; load comes from autocannon in another process, on 127.0.0.1.
// Run after `pnpm build` (or `pnpm bench:sdk`). Writes bench/results/sdk-overhead.md. Under 2 minutes.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const ROUNDS = Number(process.env.ROUNDS ?? 7);
// 6 variants × (ROUNDS × SECONDS + WARMUP_SECONDS) + start-up: about 2.5 minutes with the defaults.
const SECONDS = Number(process.env.SECONDS ?? 2);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 32);
const WARMUP_SECONDS = Number(process.env.WARMUP_SECONDS ?? 5);
const PAIRS = [
  { name: 'hello world', bare: 'hello', als: 'hello-als', sdk: 'hello-sdk' },
  { name: 'one outbound fetch per request', bare: 'fetch', als: 'fetch-als', sdk: 'fetch-sdk' },
];
const children = [];

/**
 * Servers on one CPU and the load generator on the other (`taskset`, when there is one), so that
 * neither variant's server ever shares its core with autocannon while the other's does not.
 */
const PIN = process.env.PIN !== '0' && hasTaskset() && os.cpus().length >= 2;
function hasTaskset() {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
function pinned(cpu, command, args) {
  return PIN ? ['taskset', ['-c', String(cpu), command, ...args]] : [command, args];
}

function startServer(variant, upstream) {
  const [command, args] = pinned(0, process.execPath, [
    'bench/sdk-overhead-server.mjs',
    variant,
    upstream ?? '',
  ]);
  const child = spawn(command, args, {
    cwd: root,
    // The SDK as the register hook sets it up: install(), no middleware.
    env: { ...process.env, BENCH_SDK_MIDDLEWARE: '0' },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${variant} did not start`)), 10_000);
    child.stdout.once('data', (d) => {
      clearTimeout(timer);
      resolve({ child, url: `http://127.0.0.1:${JSON.parse(d.toString()).port}/` });
    });
  });
}

/** The server process's CPU time so far, in microseconds. */
function cpuOf(child) {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m.cpuMicros));
    child.send('cpu');
  });
}

/** One load run, with the server's CPU time per request measured around it. */
async function measure(server, seconds) {
  const before = await cpuOf(server.child);
  const result = await load(server.url, seconds);
  const after = await cpuOf(server.child);
  return { ...result, cpuPerRequest: (after - before) / Math.max(1, result.total) };
}

function load(url, seconds) {
  const args = ['-c', String(CONNECTIONS), '-d', String(seconds), '-j', '-H', 'x-lane=gray', url];
  return new Promise((resolve, reject) => {
    const [command, pinnedArgs] = pinned(1, `${root}node_modules/.bin/autocannon`, args);
    const child = spawn(command, pinnedArgs, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`autocannon exited with ${code}`));
      const r = JSON.parse(out);
      resolve({
        rps: r.requests.average,
        total: r.requests.total,
        p50: r.latency.p50,
        p99: r.latency.p99,
        errors: r.errors + r.non2xx,
      });
    });
  });
}

function micro() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bench/sdk-overhead-micro.mjs'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error('micro bench failed')),
    );
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function main() {
  const started = Date.now();
  const loadAtStart = os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  const perCall = await micro();
  const upstream = (await startServer('upstream')).url;
  const servers = {};
  for (const pair of PAIRS) {
    for (const v of [pair.bare, pair.als, pair.sdk]) servers[v] = await startServer(v, upstream);
  }
  const variants = Object.keys(servers);
  // Warm-up, not measured: JIT compilation, connections; about half of a short window otherwise.
  for (const v of variants) await load(servers[v].url, WARMUP_SECONDS);
  const samples = Object.fromEntries(variants.map((v) => [v, []]));
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate the order so neither side always runs first (thermal, GC, neighbours).
    const order = round % 2 === 0 ? variants : [...variants].reverse();
    for (const v of order) samples[v].push(await measure(servers[v], SECONDS));
    process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`);
  }
  const rows = PAIRS.map((pair) => {
    const stat = (v, key) => median(samples[v].map((s) => s[key]));
    const ratioOf = (v) => samples[v].map((s, i) => s.rps / samples[pair.bare][i].rps);
    return {
      ...pair,
      rps: [stat(pair.bare, 'rps'), stat(pair.als, 'rps'), stat(pair.sdk, 'rps')],
      // Ratios are taken per round (same conditions), then the median: robust to a noisy round.
      als: median(ratioOf(pair.als)),
      sdk: median(ratioOf(pair.sdk)),
      sdkVsAls: median(samples[pair.sdk].map((s, i) => s.rps / samples[pair.als][i].rps)),
      cpu: [pair.bare, pair.als, pair.sdk].map((v) => stat(v, 'cpuPerRequest')),
      cpuRatio: median(
        samples[pair.sdk].map((s, i) => s.cpuPerRequest / samples[pair.bare][i].cpuPerRequest),
      ),
      cpuRatioAls: median(
        samples[pair.als].map((s, i) => s.cpuPerRequest / samples[pair.bare][i].cpuPerRequest),
      ),
      roundRatios: ratioOf(pair.sdk),
      p50: [pair.bare, pair.als, pair.sdk].map((v) => stat(v, 'p50')),
      p99: [pair.bare, pair.als, pair.sdk].map((v) => stat(v, 'p99')),
      errors: [pair.bare, pair.als, pair.sdk]
        .flatMap((v) => samples[v])
        .reduce((n, s) => n + s.errors, 0),
    };
  });
  const pct = (r) => `${r >= 1 ? '+' : ''}${((r - 1) * 100).toFixed(1)} %`;
  const lines = [
    '# SDK overhead',
    '',
    `Generated by \`node bench/sdk-overhead.mjs\` on ${new Date().toISOString()}.`,
    `Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, load average at start`,
    `${loadAtStart}; servers and the load generator (autocannon, ${CONNECTIONS} connections, header`,
    `\`x-lane: gray\`) share these cores${PIN ? ' (servers pinned to CPU 0, autocannon to CPU 1)' : ''}. ${ROUNDS} interleaved rounds of ${SECONDS} s per`,
    `variant (order alternates each round) after a ${WARMUP_SECONDS} s warm-up each. Each variant is its own process;`,
    'closed loop (each connection sends its next request when the last one is answered).',
    '',
    '- **bare**: Express 5, no context propagation.',
    '- **ALS only**: a middleware doing `asyncLocalStorage.run(store, next)` and nothing else — the',
    '  floor any AsyncLocalStorage-based propagation (this SDK, OpenTelemetry) pays on this Node.',
    '- **SDK**: `install()`, every hook of the register hook (`--import @graylane/sdk/register`); every request is tagged,',
    '  so the SDK reads the tag, enters the context and, on the fetch workload, tags the call.',
    '',
    '| workload | bare req/s | ALS only req/s | SDK req/s | ALS only / bare | SDK / bare | SDK / ALS only | p50 ms (bare/ALS/SDK) | p99 ms (bare/ALS/SDK) | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.rps.map((x) => x.toFixed(0)).join(' | ')} | ${pct(r.als)} | **${pct(r.sdk)}** | ${pct(r.sdkVsAls)} | ${r.p50.join(' / ')} | ${r.p99.join(' / ')} | ${r.errors} |`,
    ),
    '',
    'Server CPU time per request (user + system, measured in the server process around each run):',
    'steadier than throughput here, because the load generator and the neighbours do not count.',
    '',
    '| workload | bare µs/req | ALS only µs/req | SDK µs/req | ALS only / bare | SDK / bare |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.cpu.map((x) => x.toFixed(1)).join(' | ')} | ${pct(r.cpuRatioAls)} | **${pct(r.cpuRatio)}** |`,
    ),
    '',
    'Ratios are medians of per-round ratios. Per-round SDK / bare throughput, to show the noise:',
    '',
    ...rows.map((r) => `- ${r.name}: ${r.roundRatios.map((x) => x.toFixed(3)).join(', ')}`),
    '',
    'Per-call cost of the SDK code itself (in-process, no network, `bench/sdk-overhead-micro.mjs`):',
    '',
    '| operation | ns per call |',
    '|---|---:|',
    ...Object.entries(perCall).map(([name, ns]) => `| ${name} | ${ns.toFixed(0)} |`),
    '',
    'Goal: at most 2 % throughput loss. The CPU-per-request ratio is the throughput cost a',
    'CPU-bound server would see (1 / ratio); the req/s ratio above is what this shared machine measured.',
    `Run took ${((Date.now() - started) / 1000).toFixed(0)} s.`,
    '',
  ];
  mkdirSync(`${root}bench/results`, { recursive: true });
  writeFileSync(`${root}bench/results/sdk-overhead.md`, lines.join('\n'));
  process.stdout.write(lines.join('\n'));
}

try {
  await main();
} finally {
  for (const child of children) child.kill('SIGTERM');
}
