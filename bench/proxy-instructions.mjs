#!/usr/bin/env node
// Instructions per forwarded request, for graylane-proxy and the minimal undici forwarder it is held
// to. Each forwarder (bench/forwarders/serve.mjs) runs under `valgrind --tool=callgrind`: WARMUP
// small GETs with instrumentation off (start-up, JIT compilation, first GCs), a full GC, warm-up
// runs on fresh connections until one passes with no V8 (de)optimization (bench/callgrind.mjs), then
// REQUESTS counted ones. Instructions / REQUESTS is the steady-state cost of one request. Instruction
// counts hardly move with the machine's load, so this is the figure to optimise against on a shared
// machine; kernel time (the socket writes) is not in it, which bench/proxy-cpu.mjs measures.
//
//   node bench/proxy-instructions.mjs        (needs valgrind: apt-get install valgrind)
//   env: ONLY (forwarder names, comma-separated), LANE (an x-lane to send), RUNS (3), WARMUP (20000),
//   REQUESTS (2000), CONNECTIONS (1), BODY (bytes: POSTs of that size to the upstream's echo route
//   instead of small GETs), BASELINE (another build of packages/router-proxy, e.g.
//   packages/router-proxy/dist-baseline: adds its gateway row), TABLE (<services>x<lanes>: the
//   graylane rows route by a table that size, bench/forwarders/graylane-proxy.mjs), OUT (report file)
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUCKETS, breakdown, instructionsFor, requireValgrind } from './callgrind.mjs';
import { PRODUCT, PRODUCT_OUTBOUND } from './forwarders/serve.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
// The floor every graylane figure is held to (bench/README.md).
const FLOOR = 'undici-dispatch';
const WARMUP = Number(process.env.WARMUP ?? 20000);
const REQUESTS = Number(process.env.REQUESTS ?? 2000);
const RUNS = Number(process.env.RUNS ?? 3);
// One connection: requests arrive one at a time, so no run batches more of them per event-loop turn
// than another.
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 1);
const BODY = Number(process.env.BODY ?? 0);
const BASELINE_ROW = `${PRODUCT}, baseline build`;

/** Rows: [name, forwarder, env]. */
const VARIANTS = [
  [FLOOR, FLOOR, {}],
  [PRODUCT, PRODUCT, {}],
  [PRODUCT_OUTBOUND, PRODUCT_OUTBOUND, {}],
  ...(process.env.BASELINE
    ? [[BASELINE_ROW, PRODUCT, { GRAYLANE_PROXY_DIST: process.env.BASELINE }]]
    : []),
].filter(([name]) => !process.env.ONLY || process.env.ONLY.split(',').includes(name));

requireValgrind();

async function startUpstream() {
  const child = fork(join(root, 'bench/forwarders/upstream.mjs'), [], { stdio: 'ignore' });
  const [{ port }] = await once(child, 'message');
  return { child, url: `http://127.0.0.1:${port}` };
}

/** One forwarder under callgrind; returns the callgrind file of its counted requests. */
async function run([name, forwarder, env], upstreamUrl, dir, round) {
  const out = join(dir, `${round}-${name.replace(/\W+/g, '_')}.cg`);
  await instructionsFor({
    out,
    script: 'bench/forwarders/serve.mjs',
    args: [forwarder, upstreamUrl],
    env: process.env.TABLE ? { ...env, GRAYLANE_BENCH_TABLE: process.env.TABLE } : env,
    warmup: WARMUP,
    connections: CONNECTIONS,
    collectGarbage: true,
    requests: REQUESTS,
    ...(BODY ? { method: 'POST', body: 'x'.repeat(BODY), path: '/echo' } : { path: '/small' }),
    headers: [
      ...(forwarder === PRODUCT_OUTBOUND ? ['host=bench'] : []),
      ...(process.env.LANE ? [`x-lane=${process.env.LANE}`] : []),
    ],
  });
  return out;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const total = (buckets) => Object.values(buckets).reduce((a, b) => a + b, 0);

const started = Date.now();
const upstream = await startUpstream();
const dir = mkdtempSync(join(tmpdir(), 'graylane-callgrind-'));
const results = VARIANTS.map(() => []);
try {
  for (let round = 0; round < RUNS; round++) {
    // Rotated order, so no variant always runs first (or last) in a round.
    for (let k = 0; k < VARIANTS.length; k++) {
      const i = (k + round) % VARIANTS.length;
      const file = await run(VARIANTS[i], upstream.url, dir, round);
      const buckets = breakdown(file, REQUESTS);
      results[i].push(buckets);
      process.stderr.write(
        `${VARIANTS[i][0]}: ${total(buckets).toFixed(0)} instructions/request\n`,
      );
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  upstream.child.kill();
}

const rows = VARIANTS.map(([name], i) => ({
  name,
  runs: results[i].map(total),
  buckets: Object.fromEntries(
    BUCKETS.map(([bucket]) => [bucket, median(results[i].map((b) => b[bucket]))]),
  ),
}));
const floor = rows.find((r) => r.name === FLOOR);
const vsFloor = (x) => (floor ? `${(x / median(floor.runs)).toFixed(2)}×` : '—');
const shownEnv = [
  'ONLY',
  'LANE',
  'TABLE',
  'BODY',
  'RUNS',
  'WARMUP',
  'REQUESTS',
  'CONNECTIONS',
  'BASELINE',
]
  .filter((k) => process.env[k])
  .map((k) => `${k}=${process.env[k]} `)
  .join('');
const lines = [
  '# Instructions per forwarded request',
  '',
  `Generated by \`${shownEnv}node bench/proxy-instructions.mjs\` on ${new Date().toISOString()}, Node ${process.version}.`,
  `Each forwarder runs under \`valgrind --tool=callgrind\`: ${WARMUP} ${BODY ? `POSTs of ${BODY} bytes` : 'small GETs'} with instrumentation off, a`,
  'full GC, warm-up runs of 2000 on fresh connections until one passes with no V8 (de)optimization,',
  `then ${REQUESTS} counted (autocannon, ${CONNECTIONS} connection(s)${process.env.LANE ? `, \`x-lane: ${process.env.LANE}\`` : ''}). ${RUNS} runs each, in rotated`,
  'order; median and spread (min–max). Kernel time is not in these counts.',
  '',
  `| forwarder | instructions / request | spread | vs ${FLOOR} (the floor) |`,
  '|---|--:|--:|--:|',
  ...rows.map((r) => {
    const m = median(r.runs);
    const spread = `${((Math.min(...r.runs) / m - 1) * 100).toFixed(1)} / +${((Math.max(...r.runs) / m - 1) * 100).toFixed(1)} %`;
    return `| ${r.name} | ${m.toFixed(0)} | ${spread} | ${vsFloor(m)} |`;
  }),
  '',
  'Where the instructions go (median per request, by the function callgrind names; JIT-compiled',
  'JavaScript has no name there, so all of it is one bucket):',
  '',
  `| forwarder | ${BUCKETS.map(([b]) => b).join(' | ')} |`,
  `|---|${BUCKETS.map(() => '---:').join('|')}|`,
  ...rows.map(
    (r) => `| ${r.name} | ${BUCKETS.map(([b]) => r.buckets[b].toFixed(0)).join(' | ')} |`,
  ),
  '',
  `Run took ${((Date.now() - started) / 1000).toFixed(0)} s.`,
  '',
];
process.stdout.write(lines.join('\n'));
if (process.env.OUT) writeFileSync(process.env.OUT, lines.join('\n'));
