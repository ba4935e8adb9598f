#!/usr/bin/env node
// CPU time per request of one forwarder process: a load-independent measure of the hot path, for
// optimising on a machine where req/s is noisy (other processes compete for the cores, but the
// CPU a process spends per request barely moves with them). Each forwarder runs in its own child
// (bench/forwarders/serve.mjs) in front of the bench upstream; a fixed number of small GETs is sent
// at a fixed concurrency, and the child's user+system time is read from /proc before and after.
//
//   node bench/proxy-cpu.mjs                       graylane gateway vs the floor (undici Pool.dispatch)
//   options: --requests N --connections N --rounds N --lane LANE --only NAME --out FILE
//            --listener outbound (the sidecar, reached with `Host: bench`, instead of the gateway;
//            gateway,outbound: both, interleaved)
//            --cpu-prof DIR (profile the graylane child; open the .cpuprofile in Chrome DevTools)
//            --baseline DIR (also the (first) listener from another build of packages/router-proxy/dist, e.g.
//            a copy taken before a change, at packages/router-proxy/dist-baseline)
//            --node-flags "FLAGS" (node flags for the graylane child only, e.g. V8 heap settings;
//            with --baseline packages/router-proxy/dist, the same build without them)
//            --upstream-host NAME (graylane's endpoint written with a host name, e.g. localhost;
//            with --baseline packages/router-proxy/dist, the same build with the IP)
//            --table SxL (graylane's table: S services of L lanes, sent `--lane lane-7`; with
//            --baseline packages/router-proxy/dist, the same build with 1 service of L lanes)
import { fork } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { PRODUCT, PRODUCT_OUTBOUND } from './forwarders/serve.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FLOOR = 'undici-dispatch';
const BASELINE = '--baseline build';
const CLOCK_TICKS_PER_S = 100;

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '20000' },
    connections: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '3' },
    lane: { type: 'string' },
    listener: { type: 'string', default: 'gateway' },
    only: { type: 'string' },
    out: { type: 'string' },
    'cpu-prof': { type: 'string' },
    baseline: { type: 'string' },
    'node-flags': { type: 'string' },
    'upstream-host': { type: 'string' },
    table: { type: 'string' },
  },
});

const children = [];

function startChild(script, args, execArgv = [], env = process.env) {
  const child = fork(path.join(HERE, 'forwarders', script), args, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv,
    env,
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${script} ${args} exited (${code})`)));
    child.once('message', ({ port }) => resolve({ child, port }));
  });
}

/** The process's user + system CPU seconds so far, as the kernel counts them. */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
}

function peakRssMb(pid) {
  const kb = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmHWM:\s+(\d+)/m)?.[1];
  return Number(kb) / 1024;
}

/** The graylane forwarders measured: the gateway, or (--listener outbound) the sidecar, or both. */
const LISTENERS = { gateway: PRODUCT, outbound: PRODUCT_OUTBOUND };
const GRAYLANES = values.listener.split(',').map((l) => LISTENERS[l]);
if (GRAYLANES.includes(undefined)) throw new Error(`--listener: gateway, outbound or both`);
const GRAYLANE = GRAYLANES[0];

async function send({ port, sidecar }, amount) {
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/small`,
    connections: Number(values.connections),
    amount,
    headers: {
      ...(values.lane ? { 'x-lane': values.lane } : {}),
      // The sidecar routes by Host; the others are sent the Host a client of theirs would use.
      ...(sidecar ? { host: 'bench' } : {}),
    },
  });
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(`${result.non2xx} non-2xx and ${result.errors} errors on port ${port}`);
  }
  return result;
}

async function measure(target) {
  const requests = Number(values.requests);
  await send(target, Math.min(5000, requests)); // warm-up: JIT, pools
  const before = cpuSeconds(target.child.pid);
  const result = await send(target, requests);
  const cpu = cpuSeconds(target.child.pid) - before;
  return {
    usPerRequest: (cpu / result.requests.total) * 1e6,
    rps: result.requests.average,
    peakRssMb: peakRssMb(target.child.pid),
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const upstream = await startChild('upstream.mjs', []);
  const upstreamUrl = `http://127.0.0.1:${upstream.port}`;
  const names = values.only ? [values.only] : [...GRAYLANES, FLOOR];
  const targets = [];
  for (const name of names) {
    const prof =
      values['cpu-prof'] && (GRAYLANES.includes(name) || values.only)
        ? ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`]
        : [];
    if (GRAYLANES.includes(name) && values['node-flags'])
      prof.push(...values['node-flags'].split(' '));
    // The endpoint as graylane's table writes it: by default the upstream's IP, or a host name.
    const endpoint =
      GRAYLANES.includes(name) && values['upstream-host']
        ? upstreamUrl.replace('127.0.0.1', values['upstream-host'])
        : upstreamUrl;
    const env =
      GRAYLANES.includes(name) && values.table
        ? { ...process.env, GRAYLANE_BENCH_TABLE: values.table }
        : process.env;
    const child = await startChild('serve.mjs', [name, endpoint], prof, env);
    targets.push({ name, sidecar: name === PRODUCT_OUTBOUND, ...child });
  }
  if (values.baseline) {
    // The same gateway from another build (a copy of dist/ from before a change), interleaved
    // with this one: a before/after from one run.
    const env = { ...process.env, GRAYLANE_PROXY_DIST: values.baseline };
    if (values.table) env.GRAYLANE_BENCH_TABLE = `1x${values.table.split('x')[1]}`;
    const child = await startChild('serve.mjs', [GRAYLANE, upstreamUrl], [], env);
    targets.push({ name: BASELINE, sidecar: GRAYLANE === PRODUCT_OUTBOUND, ...child });
    names.push(BASELINE);
  }
  const runs = new Map(names.map((n) => [n, []]));
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const target of round % 2 ? [...targets].reverse() : targets) {
      runs.get(target.name).push(await measure(target));
    }
  }
  const lines = [
    `CPU µs per request, ${values.requests} small GETs × ${values.rounds} rounds at ${values.connections} connections${values.lane ? `, x-lane: ${values.lane}` : ''}; load average ${os.loadavg()[0].toFixed(1)}`,
    '',
    '| forwarder | CPU µs/request (median) | min–max | req/s (noisy) | peak RSS MB |',
    '|---|--:|--:|--:|--:|',
  ];
  for (const [name, rs] of runs) {
    const us = rs.map((r) => r.usPerRequest);
    lines.push(
      `| ${name} | ${median(us).toFixed(1)} | ${Math.min(...us).toFixed(1)}–${Math.max(...us).toFixed(1)} | ${Math.round(median(rs.map((r) => r.rps)))} | ${Math.round(rs.at(-1).peakRssMb)} |`,
    );
  }
  if (values.baseline) {
    // Round by round, the two builds ran next to each other: their ratio is steadier than either
    // figure while the machine's load moves.
    const now = runs.get(GRAYLANE).map((r) => r.usPerRequest);
    const before = runs.get(BASELINE).map((r) => r.usPerRequest);
    const ratios = now.map((us, i) => us / before[i]);
    lines.push(
      '',
      `This build / the baseline, per round: ${ratios.map((r) => r.toFixed(2)).join(', ')} (median ${median(ratios).toFixed(2)})`,
    );
  }
  const text = `${lines.join('\n')}\n`;
  process.stdout.write(text);
  if (values.out) writeFileSync(values.out, text);
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const child of children) {
      child.removeAllListeners('exit');
      // serve.mjs exits on disconnect, which lets --cpu-prof write its profile.
      child.disconnect();
    }
  });
