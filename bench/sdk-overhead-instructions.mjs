// SDK overhead in instructions, not seconds: each Express variant of bench/sdk-overhead-server.mjs
// runs under `valgrind --tool=callgrind`, which counts the instructions the server executes. Each
// server first gets WARMUP requests with instrumentation off (start-up, JIT compilation, first GCs),
// then counting starts and REQUESTS more are sent: instructions / REQUESTS is the steady-state cost
// of one request. Every variant runs RUNS times, in a rotated order, each time in a fresh process of
// the same layout (one server, autocannon in another process); the table gives the median and the
// spread. Between warm-up and counting the server collects its garbage (a major GC left over from
// the warm-up would land in one variant's window and not another's), then gets more warm-up runs on
// fresh connections until one passes with no V8 (de)optimization (bench/callgrind.mjs): before
// that, every count held a TurboFan recompilation that a new connection or the GC set off.
//
//   node bench/sdk-overhead-instructions.mjs          (needs valgrind: apt-get install valgrind)
//   BEFORE=<git ref>: adds "SDK before", the SDK built from that commit's source, in the same run.
//   writes bench/results/sdk-overhead-instructions.md (REPORT=<path> for another, e.g. a run on
//   Node 24: `REPORT=bench/results/sdk-overhead-instructions-node24.md npx -y node@24 bench/…`);
//   about 4 minutes per variant (5 runs).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUCKETS, breakdown, instructionsFor, requireValgrind } from './callgrind.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const WARMUP = Number(process.env.WARMUP ?? 20000);
const REQUESTS = Number(process.env.REQUESTS ?? 1500);
const RUNS = Number(process.env.RUNS ?? 5);
// One connection: requests arrive one at a time, so no run batches more of them per event-loop turn
// than another (with 8, runs of the same build differed by 5 %).
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 1);
const BEFORE = process.env.BEFORE;
const REPORT = process.env.REPORT ?? 'bench/results/sdk-overhead-instructions.md';
const sdkDir = join(root, 'packages/propagation-sdk');

/**
 * The SDK as it was at `ref`, compiled into the package (so that its imports resolve from the
 * package's node_modules, as the current build's do). Returns its index.js.
 */
function buildBefore(ref) {
  const dir = join(sdkDir, '.bench-before');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const tar = execFileSync('git', ['archive', ref, 'packages/propagation-sdk/src'], { cwd: root });
  execFileSync('tar', ['-x', '--strip-components=2', '-C', dir], { input: tar });
  const config = {
    extends: '../../../tsconfig.base.json',
    compilerOptions: {
      rootDir: 'src',
      outDir: 'dist',
      composite: false,
      declaration: false,
      declarationMap: false,
      sourceMap: false,
    },
    include: ['src'],
  };
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(config));
  execFileSync(join(root, 'node_modules/.bin/tsc'), ['-p', dir], { stdio: 'inherit' });
  return join(dir, 'dist/index.js');
}

const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root }).toString().trim();
const beforeDist = BEFORE ? buildBefore(BEFORE) : undefined;
/** The SDK's rows over one server: built from BEFORE (when given), then as it is now. */
const sdkRows = (name, server, setup) => [
  ...(BEFORE
    ? [
        [
          `${name} before`,
          server,
          `${setup}, SDK built from ${BEFORE}`,
          { BENCH_SDK_MIDDLEWARE: '0', BENCH_SDK_DIST: beforeDist },
        ],
      ]
    : []),
  [name, server, `${setup}, SDK at ${head}`, { BENCH_SDK_MIDDLEWARE: '0' }],
];
const VARIANTS = [
  ['bare', 'hello', 'Express 5, no context propagation'],
  ['ALS only', 'hello-als', 'a middleware doing asyncLocalStorage.run(store, next): the floor'],
  ...sdkRows('SDK', 'hello-sdk', "the register hook's setup (install())"),
  ['node:http bare', 'node-hello', 'node:http alone, no Express, no context propagation'],
  ['node:http ALS only', 'node-hello-als', 'node:http, the handler inside asyncLocalStorage.run'],
  ...sdkRows('node:http SDK', 'node-hello-sdk', "node:http, the register hook's setup (install())"),
  // Not run unless named in ONLY: for finding where a cost comes from.
  ['SDK + middleware', 'hello-sdk', `install() and laneMiddleware(), SDK at ${head}`, {}, true],
  [
    'SDK without library hooks',
    'hello-sdk',
    `install({ libraries: false }), SDK at ${head}`,
    { BENCH_SDK_MIDDLEWARE: '0', BENCH_SDK_INSTALL: '{"libraries":false}' },
    true,
  ],
].filter(([name, , , , optional]) =>
  process.env.ONLY ? process.env.ONLY.split(',').includes(name) : !optional,
);

requireValgrind();

function instructions([variant, env], dir, run) {
  return instructionsFor({
    out: join(dir, `${variant}-${run}.cg`),
    script: 'bench/sdk-overhead-server.mjs',
    args: [variant, ''],
    env,
    warmup: WARMUP,
    connections: CONNECTIONS,
    collectGarbage: true,
    requests: REQUESTS,
    path: '/',
    headers: ['x-lane=gray'],
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function main() {
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'graylane-callgrind-'));
  const perRequest = VARIANTS.map(() => []);
  const buckets = VARIANTS.map(() => []);
  try {
    for (let run = 0; run < RUNS; run++) {
      // Rotated, so that no variant always runs first or last.
      for (let k = 0; k < VARIANTS.length; k++) {
        const i = (k + run) % VARIANTS.length;
        const [name, variant, , env = {}] = VARIANTS[i];
        const total = await instructions([variant, env], dir, run);
        perRequest[i].push(total / REQUESTS);
        buckets[i].push(breakdown(join(dir, `${variant}-${run}.cg`), REQUESTS));
        rmSync(join(dir, `${variant}-${run}.cg`), { force: true });
        process.stderr.write(`run ${run + 1}/${RUNS} ${name}: ${(total / REQUESTS).toFixed(0)}\n`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const rows = VARIANTS.map(([name, , what], i) => ({
    name,
    what,
    runs: perRequest[i],
    buckets: Object.fromEntries(
      BUCKETS.map(([bucket]) => [bucket, median(buckets[i].map((b) => b[bucket]))]),
    ),
  }));
  // Express rows compare with bare Express, node:http rows with bare node:http.
  const baseOf = (r) =>
    rows.find((b) => b.name === (r.name.startsWith('node:http') ? 'node:http bare' : 'bare')) ??
    rows[0];
  const delta = (r, bucket) => {
    const d = r.buckets[bucket] - baseOf(r).buckets[bucket];
    return `${d >= 0 ? '+' : ''}${d.toFixed(0)}`;
  };
  const pct = (r, x) => {
    const base = median(baseOf(r).runs);
    return `${x >= base ? '+' : ''}${(((x - base) / base) * 100).toFixed(1)} %`;
  };
  const shownEnv = ['BEFORE', 'RUNS', 'WARMUP', 'REQUESTS', 'REPORT']
    .filter((k) => process.env[k])
    .map((k) => `${k}=${process.env[k]} `)
    .join('');
  const lines = [
    '# SDK overhead in instructions',
    '',
    `Generated by \`${shownEnv}node bench/sdk-overhead-instructions.mjs\` on ${new Date().toISOString()}, Node ${process.version}.`,
    `Each server runs under \`valgrind --tool=callgrind\`: ${WARMUP} warm-up requests with instrumentation`,
    'off, a full GC, warm-up runs of 2000 requests on fresh connections until one passes with no V8',
    `(de)optimization (\`--trace-opt --trace-deopt\`), then ${REQUESTS} counted requests (autocannon, ${CONNECTIONS} connection(s), \`x-lane: gray\`, from another`,
    `process). ${RUNS} runs per variant, each a fresh process, in rotated order; median and spread`,
    "(min–max) of instructions per request. Instruction counts do not depend on the machine's load.",
    '',
    '| variant | what | instructions / request (median) | spread | vs its bare row (median) | vs its bare row, each run |',
    '|---|---|---:|---:|---:|---|',
    ...rows.map((r) => {
      const m = median(r.runs);
      const spread = `${((Math.min(...r.runs) / m - 1) * 100).toFixed(1)} / +${((Math.max(...r.runs) / m - 1) * 100).toFixed(1)} %`;
      return `| ${r.name} | ${r.what} | ${m.toFixed(0)} | ${spread} | ${pct(r, m)} | ${r.runs.map((x) => pct(r, x)).join(', ')} |`;
    }),
    '',
    'Where the instructions go (median per request, by the function callgrind names; JIT-compiled',
    'JavaScript has no name there, so the JS of Express, Node and the SDK is one bucket). In',
    'parentheses, the difference from its bare row:',
    '',
    `| variant | ${BUCKETS.map(([b]) => b).join(' | ')} |`,
    `|---|${BUCKETS.map(() => '---:').join('|')}|`,
    ...rows.map(
      (r) =>
        `| ${r.name} | ${BUCKETS.map(([b]) => `${r.buckets[b].toFixed(0)} (${delta(r, b)})`).join(' | ')} |`,
    ),
    '',
    `Run took ${((Date.now() - started) / 1000).toFixed(0)} s.`,
    '',
  ];
  if (!process.env.ONLY) {
    mkdirSync(join(root, 'bench/results'), { recursive: true });
    writeFileSync(join(root, REPORT), lines.join('\n'));
  }
  process.stdout.write(lines.join('\n'));
}

await main();
