// One server run under `valgrind --tool=callgrind` while autocannon sends it a fixed number of
// requests from another process; shared by the benches that count instructions per request.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

export function requireValgrind() {
  try {
    execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
  } catch {
    console.error('valgrind is needed: apt-get install -y valgrind');
    process.exit(2);
  }
}

/** Warm-up runs on fresh connections before V8 is taken to be still compiling. */
const MAX_SETTLE_RUNS = 12;

/**
 * Starts `node script ...args` under callgrind (it prints `{"port": N}` on its first stdout line),
 * sends `requests` to `path` over `connections` connections (8) with `headers` (and `method`, `body`),
 * stops it with SIGTERM and returns
 * the instructions it executed.
 *
 * With `warmup`, the server starts with instrumentation off, gets `warmup` requests first (start-up,
 * JIT compilation and the first GCs happen then), and counting starts only after them
 * (`callgrind_control -i on`): the count is then the steady state of `requests` requests alone.
 * With `collectGarbage` too, the server (run with `--expose-gc`) is sent SIGUSR2 after the warm-up
 * and counting starts once it answers `{"gc":true}`: a full collection of the warm-up's garbage, so
 * that a major GC left over from it does not land in one variant's window and not another's.
 * Then warm-up goes on, on fresh connections, until a run of 2000 requests passes with no V8
 * (de)optimization, so that no recompilation lands in the count.
 */
export async function instructionsFor({
  out,
  script,
  args = [],
  env = {},
  requests,
  path,
  headers = [],
  method = 'GET',
  body,
  warmup = 0,
  connections = 8,
  collectGarbage = false,
}) {
  const server = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      ...(warmup > 0 ? ['--instr-atstart=no'] : []),
      '--smc-check=all-non-file',
      `--callgrind-out-file=${out}`,
      process.execPath,
      ...(collectGarbage ? ['--expose-gc'] : []),
      // V8 says when it optimizes or deoptimizes: warm-up goes on until it stops (below).
      ...(warmup > 0 ? ['--trace-opt', '--trace-deopt'] : []),
      script,
      ...args,
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, ...env } },
  );
  const lines = createInterface({ input: server.stdout });
  let jitEvents = 0;
  const answers = [];
  let answered;
  lines.on('line', (line) => {
    // V8 prints its traces through C stdio, so a line of the server's may land inside one.
    const json = /\{"\w+":[^{}]*\}/.exec(line);
    if (json) {
      answers.push(JSON.parse(json[0]));
      answered?.();
    }
    if (/\[(marking|compiling|completed|bailout|optimizing)/.test(line)) jitEvents++;
  });
  const answer = async () => {
    while (answers.length === 0) await new Promise((resolve) => (answered = resolve));
    return answers.shift();
  };
  const { port } = await answer();
  const send = async (count) => {
    const load = spawn(
      `${root}node_modules/.bin/autocannon`,
      [
        '-c',
        String(connections),
        '-a',
        String(count),
        ...headers.flatMap((h) => ['-H', h]),
        ...(method === 'GET' ? [] : ['-m', method]),
        ...(body === undefined ? [] : ['-b', body]),
        `http://127.0.0.1:${port}${path}`,
      ],
      { stdio: 'ignore' },
    );
    await once(load, 'exit');
  };
  if (warmup > 0) {
    await send(warmup);
    if (collectGarbage) {
      server.kill('SIGUSR2');
      await answer();
    }
    // The counted run comes on connections of its own. The first requests of a new connection
    // deoptimize Node's socket and stream code ("wrong map") and have it recompiled, and so does a
    // full GC: without more warm-up the count held whole TurboFan recompilations (two to four times
    // a node:http request's own instructions). Warm-up runs on fresh connections until one passes
    // with no optimization or deoptimization at all.
    for (let run = 1; ; run++) {
      const before = jitEvents;
      await send(Math.min(warmup, 2000));
      if (jitEvents === before) break;
      if (run === MAX_SETTLE_RUNS) {
        process.stderr.write(`callgrind: V8 still (de)optimizing after ${run} warm-up runs\n`);
        break;
      }
    }
    execFileSync('callgrind_control', ['-i', 'on', String(server.pid)], { stdio: 'ignore' });
  }
  await send(requests);
  server.kill('SIGTERM');
  await once(server, 'exit');
  const summary = readFileSync(out, 'utf8').match(/^summary: (\d+)/m);
  if (!summary) throw new Error(`no callgrind summary in ${out}`);
  return Number(summary[1]);
}

/** Where a function's instructions go, by its name in callgrind's annotation. First match wins. */
export const BUCKETS = [
  [
    'GC',
    /Heap|Scaveng|Marking|Sweep|Evacuat|MarkCompact|heap::|Visitor|IteratePointers|MemoryChunk|SizeFromMap|SlotSet/,
  ],
  ['JIT compiler', /compiler::|turboshaft|[Mm]aglev|Compil|Pipeline|Deoptimiz/],
  [
    'lookups (IC misses, map changes)',
    /IC\b|IC_|IC::|LookupIterator|MigrateToMap|DescriptorArray|Map::|FieldIndex|StubCache|Feedback|Runtime_/,
  ],
  ['JS code (JIT-compiled)', /^\?\?\?:0x/],
  ['other (interpreter, builtins, Node, libc)', /./],
];

/** Instructions per request in each bucket, from a callgrind output file of `requests` requests. */
export function breakdown(file, requests) {
  const text = execFileSync('callgrind_annotate', ['--threshold=100', file], {
    maxBuffer: 256 * 1024 * 1024,
  }).toString();
  const sums = Object.fromEntries(BUCKETS.map(([name]) => [name, 0]));
  for (const line of text.split('\n')) {
    const m = /^\s*([\d,]+) \([^)]*\)\s+(.*)$/.exec(line);
    if (!m || m[2].includes('PROGRAM TOTALS')) continue;
    const bucket = BUCKETS.find(([, re]) => re.test(m[2]))?.[0];
    sums[bucket] += Number(m[1].replaceAll(',', '')) / requests;
  }
  return sums;
}
