#!/usr/bin/env node
// Instructions per forwarded request, for graylane-proxy and the minimal undici forwarder it is held
// to: each forwarder (bench/forwarders/serve.mjs) runs under `valgrind --tool=callgrind` twice, for
// FEW and MANY small GETs; the difference divided by the difference in requests is one request's
// cost, start-up and warm-up cancelled out. Instruction counts hardly move with the machine's load,
// so this is the figure to optimise against on a shared machine; kernel time (the socket writes) is
// not in it, which bench/proxy-cpu.mjs measures.
//
//   node bench/proxy-instructions.mjs        (needs valgrind: apt-get install valgrind)
//   env: FEW, MANY (requests), ONLY (one forwarder name), LANE (an x-lane to send), OUT (report file)
import { execFileSync, fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PRODUCT } from './forwarders/serve.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const FEW = Number(process.env.FEW ?? 1000);
const MANY = Number(process.env.MANY ?? 4000);
const FORWARDERS = process.env.ONLY ? [process.env.ONLY] : [PRODUCT, 'undici-stream'];

try {
  execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
} catch {
  console.error('valgrind is needed: apt-get install -y valgrind');
  process.exit(2);
}

async function startUpstream() {
  const child = fork(join(root, 'bench/forwarders/upstream.mjs'), [], { stdio: 'ignore' });
  const [{ port }] = await once(child, 'message');
  return { child, url: `http://127.0.0.1:${port}` };
}

/** Runs one forwarder under callgrind for `requests` small GETs; returns its instruction count. */
async function instructions(name, upstreamUrl, requests, dir) {
  const out = join(dir, `${requests}.cg`);
  const server = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      '--smc-check=all-non-file',
      `--callgrind-out-file=${out}`,
      process.execPath,
      'bench/forwarders/serve.mjs',
      name,
      upstreamUrl,
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const [chunk] = await once(server.stdout, 'data');
  const { port } = JSON.parse(chunk.toString());
  const lane = process.env.LANE ? ['-H', `x-lane=${process.env.LANE}`] : [];
  const load = spawn(
    `${root}node_modules/.bin/autocannon`,
    ['-c', '8', '-a', String(requests), ...lane, `http://127.0.0.1:${port}/small`],
    { stdio: 'ignore' },
  );
  await once(load, 'exit');
  server.kill('SIGTERM');
  await once(server, 'exit');
  const summary = readFileSync(out, 'utf8').match(/^summary: (\d+)/m);
  if (!summary) throw new Error(`no callgrind summary in ${out}`);
  return Number(summary[1]);
}

const upstream = await startUpstream();
const dir = mkdtempSync(join(tmpdir(), 'graylane-callgrind-'));
const rows = [];
try {
  for (const name of FORWARDERS) {
    const few = await instructions(name, upstream.url, FEW, dir);
    const many = await instructions(name, upstream.url, MANY, dir);
    rows.push({ name, perRequest: (many - few) / (MANY - FEW) });
    process.stderr.write(`${name}: ${rows.at(-1).perRequest.toFixed(0)} instructions/request\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  upstream.child.kill();
}
const floor = rows.find((r) => r.name === 'undici-stream')?.perRequest;
const lines = [
  `Instructions per small GET under callgrind (${FEW} vs ${MANY} requests, autocannon 8 connections${process.env.LANE ? `, x-lane: ${process.env.LANE}` : ''}), Node ${process.version}`,
  '',
  '| forwarder | instructions / request | vs undici-stream |',
  '|---|--:|--:|',
  ...rows.map(
    (r) =>
      `| ${r.name} | ${r.perRequest.toFixed(0)} | ${floor ? `${(r.perRequest / floor).toFixed(2)}×` : '—'} |`,
  ),
  '',
];
process.stdout.write(lines.join('\n'));
if (process.env.OUT) writeFileSync(process.env.OUT, lines.join('\n'));
