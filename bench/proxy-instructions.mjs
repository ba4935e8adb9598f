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
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { instructionsFor, requireValgrind } from './callgrind.mjs';
import { PRODUCT } from './forwarders/serve.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
// The floor every graylane figure is held to (bench/README.md).
const FLOOR = 'undici-dispatch';
const FEW = Number(process.env.FEW ?? 1000);
const MANY = Number(process.env.MANY ?? 4000);
const FORWARDERS = process.env.ONLY ? [process.env.ONLY] : [PRODUCT, FLOOR];

requireValgrind();

async function startUpstream() {
  const child = fork(join(root, 'bench/forwarders/upstream.mjs'), [], { stdio: 'ignore' });
  const [{ port }] = await once(child, 'message');
  return { child, url: `http://127.0.0.1:${port}` };
}

/** Runs one forwarder under callgrind for `requests` small GETs; returns its instruction count. */
function instructions(name, upstreamUrl, requests, dir) {
  return instructionsFor({
    out: join(dir, `${requests}.cg`),
    script: 'bench/forwarders/serve.mjs',
    args: [name, upstreamUrl],
    requests,
    path: '/small',
    headers: process.env.LANE ? [`x-lane=${process.env.LANE}`] : [],
  });
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
const floor = rows.find((r) => r.name === FLOOR)?.perRequest;
const lines = [
  `Instructions per small GET under callgrind (${FEW} vs ${MANY} requests, autocannon 8 connections${process.env.LANE ? `, x-lane: ${process.env.LANE}` : ''}), Node ${process.version}`,
  '',
  `| forwarder | instructions / request | vs ${FLOOR} (the floor) |`,
  '|---|--:|--:|',
  ...rows.map(
    (r) =>
      `| ${r.name} | ${r.perRequest.toFixed(0)} | ${floor ? `${(r.perRequest / floor).toFixed(2)}×` : '—'} |`,
  ),
  '',
];
process.stdout.write(lines.join('\n'));
if (process.env.OUT) writeFileSync(process.env.OUT, lines.join('\n'));
