#!/usr/bin/env node
// graylane-proxy side by side with the proxies users pick instead, all in front of one nginx
// upstream answering a fixed 100-byte body. The proxy under test is pinned alone to core 0
// (taskset); wrk and the upstream share core 1. Closed-loop max throughput (wrk, keep-alive,
// 32 connections), rounds interleaved with rotating order; per peer: req/s, wrk's p50/p99, CPU
// cores per 1000 req/s (from /proc) and peak RSS (VmHWM).
//
//   pnpm bench            3 rounds × 5 s, writes bench/results/peers.md and peers.json
//   pnpm bench --quick    1 round × 1 s into a temp dir: checks every peer answers, never a number
//   options: --rounds N --duration S --connections N --out FILE
//
// Needs wrk, nginx and haproxy (Debian's; installed here with apt-get when missing, as root).
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROXY_CORE = '0';
const LOAD_CORE = '1';
const BODY = `${'ok '.repeat(33)}\n`; // 100 bytes
const CLOCK_TICKS_PER_S = 100;

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    connections: { type: 'string', default: '32' },
    out: { type: 'string' },
  },
});
const quick = values.quick;
const ROUNDS = Number(values.rounds ?? (quick ? 1 : 3));
const DURATION_S = Number(values.duration ?? (quick ? 1 : 5));
const CONNECTIONS = Number(values.connections);
const OUT =
  values.out ??
  (quick
    ? path.join(mkdtempSync(path.join(os.tmpdir(), 'graylane-peers-')), 'peers.md')
    : path.join(HERE, 'results', 'peers.md'));
const WORK = mkdtempSync(path.join(os.tmpdir(), 'graylane-peers-run-'));

// ---------------------------------------------------------------------------------------------
// Tools and processes

function have(tool) {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function ensureTools() {
  const missing = ['wrk', 'nginx', 'haproxy', 'taskset'].filter((tool) => !have(tool));
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`missing ${missing.join(', ')}: apt-get install -y wrk nginx-light haproxy`);
  }
  execFileSync('apt-get', ['update', '-q'], { stdio: 'ignore' });
  execFileSync('apt-get', ['install', '-y', '-q', 'wrk', 'nginx-light', 'haproxy'], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  return port;
}

async function waitForPort(port, host = '127.0.0.1') {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, host, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`nothing listens on ${host}:${port}`);
}

const processes = [];

function pinned(core, command, args) {
  const child = spawn('taskset', ['-c', core, command, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  processes.push(child);
  child.once('exit', (code, signal) => {
    if (!stopping) failures.push(`${command} ${args.join(' ')} exited (${code ?? signal})`);
  });
  return child;
}

/** A Node peer prints its ports as one JSON line when it listens. */
async function nodePeer(script, args) {
  const child = pinned(PROXY_CORE, process.execPath, [script, ...args]);
  const [line] = await once(child.stdout, 'data');
  return { child, ports: JSON.parse(line.toString()) };
}

async function nginx(core, name, httpBlock) {
  const dir = path.join(WORK, name);
  mkdirSync(dir, { recursive: true });
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;\ndaemon off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\n` +
      `events { worker_connections 4096; }\n` +
      `http {\n  access_log off;\n  keepalive_requests 1000000;\n  keepalive_timeout 120s;\n` +
      `  client_body_temp_path ${dir}; proxy_temp_path ${dir};\n${httpBlock}\n}\n`,
  );
  return pinned(core, 'nginx', ['-p', dir, '-c', conf]);
}

let stopping = false;
const failures = [];

function stopAll() {
  stopping = true;
  for (const child of processes) child.kill('SIGTERM');
}

// ---------------------------------------------------------------------------------------------
// /proc: CPU and memory of a peer's processes (nginx and haproxy fork workers)

function childrenOf(pid) {
  const pids = [pid];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (pids.includes(ppid)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function cpuSeconds(pids) {
  let total = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    total += (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
  }
  return total;
}

function peakRssMb(pids) {
  let kb = 0;
  for (const pid of pids) {
    const match = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmHWM:\s+(\d+)/m);
    kb += Number(match?.[1] ?? 0);
  }
  return kb / 1024;
}

// ---------------------------------------------------------------------------------------------
// Peers

/** The taskset wrapper's child is the peer itself: taskset execs, so the pid is the same. */
const pidsOf = (child) => childrenOf(child.pid);

async function startPeers(upstreamPort) {
  const upstream = `http://127.0.0.1:${upstreamPort}`;
  const peers = [{ name: 'direct (no proxy)', port: upstreamPort, pids: [] }];

  const nginxPort = await freePort();
  const nginxProxy = await nginx(
    PROXY_CORE,
    'nginx-proxy',
    `  upstream up { server 127.0.0.1:${upstreamPort}; keepalive 64; }\n` +
      `  server { listen 127.0.0.1:${nginxPort};\n` +
      `    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }`,
  );
  peers.push({ name: 'nginx 1 worker', port: nginxPort, child: nginxProxy });

  const haproxyPort = await freePort();
  const haproxyConf = path.join(WORK, 'haproxy.cfg');
  writeFileSync(
    haproxyConf,
    [
      'global',
      '  nbthread 1',
      'defaults',
      '  mode http',
      '  timeout connect 5s',
      '  timeout client 60s',
      '  timeout server 60s',
      '  option http-keep-alive',
      'frontend f',
      `  bind 127.0.0.1:${haproxyPort}`,
      '  default_backend b',
      'backend b',
      '  http-reuse always',
      `  server s1 127.0.0.1:${upstreamPort}`,
      '',
    ].join('\n'),
  );
  peers.push({
    name: 'HAProxy 1 thread',
    port: haproxyPort,
    child: pinned(PROXY_CORE, 'haproxy', ['-f', haproxyConf, '-db']),
  });

  const serve = path.join(HERE, 'forwarders', 'serve.mjs');
  const fastify = await nodePeer(path.join(HERE, 'peers', 'fastify-proxy.mjs'), [upstream]);
  peers.push({ name: '@fastify/http-proxy', port: fastify.ports.port, child: fastify.child });
  const httpProxy = await nodePeer(serve, ['http-proxy', upstream]);
  peers.push({
    name: 'http-proxy + keep-alive agent',
    port: httpProxy.ports.port,
    child: httpProxy.child,
  });
  const floor = await nodePeer(serve, ['undici-stream', upstream]);
  peers.push({ name: FLOOR, port: floor.ports.port, child: floor.child });

  const gray = `http://127.0.0.2:${upstreamPort}`;
  const graylane = await nodePeer(path.join(HERE, 'peers', 'graylane.mjs'), [upstream, gray]);
  const { gateway, outbound } = graylane.ports;
  peers.push(
    { name: GATEWAY, port: gateway, child: graylane.child, lane: 'stable' },
    {
      name: GATEWAY_TAGGED,
      port: gateway,
      child: graylane.child,
      headers: ['x-lane: gray'],
      lane: 'gray',
    },
    {
      name: OUTBOUND,
      port: outbound,
      child: graylane.child,
      headers: ['Host: bench'],
      lane: 'stable',
    },
  );
  for (const peer of peers) await waitForPort(peer.port);
  return peers;
}

const FLOOR = 'minimal node:http + undici stream()';
const GATEWAY = 'graylane gateway, untagged';
const GATEWAY_TAGGED = 'graylane gateway, x-lane: gray';
const OUTBOUND = 'graylane outbound sidecar (Host:)';
const FASTIFY = '@fastify/http-proxy';

/** A broken peer would only look fast: each must answer the upstream's body, graylane its lane. */
async function check(peer) {
  const headers = Object.fromEntries(peer.headers?.map((h) => h.split(': ')) ?? []);
  const res = await new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: peer.port, path: '/', headers, agent: false });
    req.on('error', reject);
    req.on('response', (r) => {
      let body = '';
      r.on('data', (chunk) => (body += chunk));
      r.on('end', () => resolve({ status: r.statusCode, headers: r.headers, body }));
    });
  });
  if (res.status !== 200 || res.body !== BODY) {
    throw new Error(`${peer.name} answered ${res.status} with a ${res.body.length}-byte body`);
  }
  if (peer.lane && res.headers['x-lane-served'] !== `bench=${peer.lane}`) {
    throw new Error(`${peer.name} served x-lane-served: ${res.headers['x-lane-served']}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Load

async function wrk(peer, seconds) {
  const args = ['-c', LOAD_CORE, 'wrk', '-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency'];
  for (const header of peer.headers ?? []) args.push('-H', header);
  args.push(`http://127.0.0.1:${peer.port}/`);
  const child = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk) => (out += chunk));
  await once(child, 'exit');
  const rps = Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
  const bad = Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  const errors = out.match(/Socket errors: (.*)/)?.[1];
  if (!Number.isFinite(rps) || bad > 0) {
    throw new Error(
      `${peer.name}: wrk saw ${bad} non-2xx responses${errors ? `, ${errors}` : ''}\n${out}`,
    );
  }
  const ms = (label) => {
    const m = out.match(new RegExp(`^\\s+${label}%\\s+([\\d.]+)(us|ms|s)`, 'm'));
    if (!m) return Number.NaN;
    return Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]];
  };
  return { rps, p50: ms('50'), p99: ms('99') };
}

async function measure(peer) {
  const pids = peer.child ? pidsOf(peer.child) : [];
  const before = cpuSeconds(pids);
  const started = process.hrtime.bigint();
  const result = await wrk(peer, DURATION_S);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cores = (cpuSeconds(pids) - before) / seconds;
  return { ...result, coresPer1000: peer.child ? cores / (result.rps / 1000) : Number.NaN };
}

// ---------------------------------------------------------------------------------------------
// Report

const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const fmt = (x, digits = 0) =>
  Number.isFinite(x)
    ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : '—';
const ratio = (a, b) => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : '—');

function summarize(peers, runs) {
  return peers.map((peer) => {
    const rs = runs.get(peer.name);
    const rps = rs.map((r) => r.rps);
    return {
      name: peer.name,
      rps: median(rps),
      rpsMin: Math.min(...rps),
      rpsMax: Math.max(...rps),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      coresPer1000: median(rs.map((r) => r.coresPer1000)),
      // What one whole core would serve at the CPU time each request cost: on a shared machine the
      // pinned core is not the proxy's alone, so this ranks peers where req/s cannot.
      perCore: 1000 / median(rs.map((r) => r.coresPer1000)),
      peakRssMb: peer.child ? peakRssMb(pidsOf(peer.child)) : Number.NaN,
    };
  });
}

function machine() {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${cpu}, ${os.cpus().length} cores, Node ${process.version}, ${os.type()} ${os.release()}`;
}

function report(rows, loads) {
  const row = (name) => rows.find((r) => r.name === name);
  const direct = row('direct (no proxy)');
  const nginxRow = row('nginx 1 worker');
  const floor = row(FLOOR);
  const fastify = row(FASTIFY);
  const met = (ok) => (ok ? 'met' : '**not met**');
  const targets = [GATEWAY, OUTBOUND].flatMap((name) => {
    const r = row(name);
    return [
      `- ${name}: per core (CPU time) ${ratio(r.perCore, floor.perCore)} the minimal undici forwarder (target ≥ 0.90×: ${met(r.perCore >= 0.9 * floor.perCore)}) and ${ratio(r.perCore, fastify.perCore)} @fastify/http-proxy (target ≥ 2.50×: ${met(r.perCore >= 2.5 * fastify.perCore)}); measured req/s ${ratio(r.rps, floor.rps)} and ${ratio(r.rps, fastify.rps)}; ${fmt(r.coresPer1000, 3)} cores per 1000 req/s (target ≤ 0.10: ${met(r.coresPer1000 <= 0.1)}); peak RSS ${fmt(r.peakRssMb)} MB (target ≤ 64 MB: ${met(r.peakRssMb <= 64)})`,
    ];
  });
  const tagged = row(GATEWAY_TAGGED);
  const untagged = row(GATEWAY);
  const laneCost = 1 - tagged.perCore / untagged.perCore;
  const lines = [
    '# graylane-proxy side by side with its peers',
    '',
    `- Date: ${new Date().toISOString()}`,
    `- Machine: ${machine()}`,
    `- Command: \`node bench/peers.mjs${quick ? ' --quick' : ''}\`; ${ROUNDS} round(s) × ${DURATION_S} s per peer, peers interleaved with rotating order; medians over rounds.`,
    `- Placement: the proxy under test alone on core ${PROXY_CORE} (taskset); wrk (1 thread, ${CONNECTIONS} keep-alive connections, closed loop) and the upstream (nginx, 1 worker, a fixed ${BODY.length}-byte body) on core ${LOAD_CORE}. Load average (1 min) at the start of each round: ${loads.map((l) => l.toFixed(1)).join(', ')}; the machine is shared, so req/s is noisy: read the ratios.`,
    "- graylane rows are one graylane-proxy process (gateway and outbound listeners, CLI defaults: metrics, head guards, body deadlines on; log level silent). Its peak RSS is the process's, after all its rows.",
    '',
    'Ratios are of req/s measured; "per core" is 1000 / (CPU cores per 1000 req/s): what one whole core would serve at the CPU each request cost, the fairer ranking while other processes take part of the pinned core.',
    '',
    '| peer | max req/s (median) | min–max | vs direct | vs nginx | vs undici floor | vs @fastify/http-proxy | p50 ms | p99 ms | CPU cores per 1000 req/s | req/s per core (CPU time) | per core vs nginx | per core vs undici floor | per core vs @fastify/http-proxy | peak RSS MB |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${fmt(r.rps)} | ${fmt(r.rpsMin)}–${fmt(r.rpsMax)} | ${ratio(r.rps, direct.rps)} | ${ratio(r.rps, nginxRow.rps)} | ${ratio(r.rps, floor.rps)} | ${ratio(r.rps, fastify.rps)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.coresPer1000, 3)} | ${fmt(r.perCore)} | ${ratio(r.perCore, nginxRow.perCore)} | ${ratio(r.perCore, floor.perCore)} | ${ratio(r.perCore, fastify.perCore)} | ${fmt(r.peakRssMb)} |`,
    ),
    '',
    '## Targets (issue 21)',
    '',
    ...targets,
    `- Lane logic on vs off (gateway, \`x-lane: gray\` vs untagged, per core): ${(laneCost * 100).toFixed(1)} % fewer requests per core (target ≤ 3 %: ${met(Math.abs(laneCost) <= 0.03)}).`,
    '- Added latency at a fixed 1000 req/s (open loop), the 100-service table, 1 KiB/1 MiB bodies, idle-connection memory, inbound sidecar and two-hop rows: not measured by this harness yet.',
    '',
  ];
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main() {
  ensureTools();
  const upstreamPort = await freePort();
  await nginx(
    LOAD_CORE,
    'upstream',
    `  server { listen 127.0.0.1:${upstreamPort}; listen 127.0.0.2:${upstreamPort};\n` +
      `    location / { default_type text/plain; return 200 "${BODY.replace('\n', '\\n')}"; } }`,
  );
  await waitForPort(upstreamPort);
  const peers = await startPeers(upstreamPort);
  for (const peer of peers) await check(peer);
  const runs = new Map(peers.map((p) => [p.name, []]));
  const loads = [];
  for (let round = 0; round < ROUNDS; round++) {
    loads.push(os.loadavg()[0]);
    const shift = round % peers.length;
    const order = [...peers.slice(shift), ...peers.slice(0, shift)];
    for (const peer of order) {
      if (!quick) await wrk(peer, 1); // warm-up: JIT, pools
      runs.get(peer.name).push(await measure(peer));
      process.stderr.write(
        `round ${round + 1}: ${peer.name} ${fmt(runs.get(peer.name).at(-1).rps)} req/s\n`,
      );
    }
  }
  if (failures.length > 0) throw new Error(failures.join('\n'));
  const rows = summarize(peers, runs);
  const text = report(rows, loads);
  mkdirSync(path.dirname(OUT), { recursive: true });
  writeFileSync(OUT, text);
  writeFileSync(
    OUT.replace(/\.md$/, '.json'),
    `${JSON.stringify({ date: new Date().toISOString(), machine: machine(), rounds: ROUNDS, durationS: DURATION_S, connections: CONNECTIONS, loads, rows, runs: Object.fromEntries(runs) }, null, 2)}\n`,
  );
  process.stdout.write(`${text}\nwritten to ${OUT}\n`);
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(stopAll);
