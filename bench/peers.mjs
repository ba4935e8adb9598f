#!/usr/bin/env node
// graylane-proxy side by side with the proxies users pick instead, all in front of one nginx
// upstream answering a fixed 100-byte body (and 1 KiB, 1 MiB ones). The proxy under test is pinned
// alone to core 0 (taskset); the load generators and the upstream share core 1. Per peer, in
// interleaved rounds with rotating order: a closed-loop maximum (wrk, keep-alive, 32 connections:
// req/s, p50/p99, CPU cores per 1000 req/s from /proc, peak RSS), and an open-loop fixed rate
// (vegeta, 1000 req/s: p50/p99/p99.9, added latency vs direct, RSS after). Then: each peer open
// loop at half its own maximum, a CPU profile of the gateway at its maximum, and graylane's extra
// rows: response and request bodies, a 100-service table, node:cluster workers, idle keep-alive
// connections.
//
//   pnpm bench            3 rounds, 5 s per run, writes bench/results/peers.md and peers.json
//   pnpm bench --quick    1 round × 1 s into a temp dir: checks every peer answers, never a number
//   options: --rounds N --duration S --rate N --connections N --out FILE
//
// Needs wrk, nginx and haproxy (Debian's; installed here with apt-get when missing, as root) and
// vegeta (built with the machine's Go into ~/.cache/graylane-bench).
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { summarize as summarizeProfile } from './cpu-profile.mjs';
import {
  cpuSeconds,
  ensureTools,
  ensureVegeta,
  failures,
  freePort,
  LOAD_CORE,
  machine,
  median,
  nginx,
  nodePeer,
  PROXY_CORE,
  pidsOf,
  pinned,
  rssMb,
  settled,
  stop,
  stopAll,
  waitForPort,
} from './peers/harness.mjs';
import { fixedRate, idleConnections, wrk } from './peers/load.mjs';
import { report } from './peers/report.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BODY = `${'ok '.repeat(33)}\n`; // 100 bytes
const KIB_BODY = `${'x'.repeat(1023)}\n`;
const LARGE_TABLE = { services: 100, lanes: 10 };
/** The body rows: larger answers (GET), and request bodies (POST, the small answer back). */
const BODIES = [
  { name: '1 KiB response body', path: '/1k', bytes: 1024 },
  { name: '1 MiB response body', path: '/1m', bytes: 1024 * 1024 },
  { name: 'POST 1 KiB request body', path: '/upload', method: 'POST', request: true, bytes: 1024 },
  {
    name: 'POST 1 MiB request body',
    path: '/upload',
    method: 'POST',
    request: true,
    bytes: 1024 * 1024,
  },
];
const LOOPBACKS = Array.from({ length: LARGE_TABLE.lanes + 1 }, (_, i) => i + 1);

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    rate: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '32' },
    out: { type: 'string' },
  },
});
const quick = values.quick;
const settings = {
  quick,
  rounds: Number(values.rounds ?? (quick ? 1 : 3)),
  seconds: Number(values.duration ?? (quick ? 1 : 5)),
  rate: Number(values.rate),
  connections: Number(values.connections),
  idle: quick ? [100] : [1000, 10_000],
  bodyBytes: 100,
};
const OUT =
  values.out ??
  (quick
    ? path.join(mkdtempSync(path.join(os.tmpdir(), 'graylane-peers-')), 'peers.md')
    : path.join(HERE, 'results', 'peers.md'));
const WORK = mkdtempSync(path.join(os.tmpdir(), 'graylane-peers-run-'));

const NAMES = {
  direct: 'direct (no proxy)',
  nginx: 'nginx 1 worker',
  floor: 'minimal node:http + undici Pool.dispatch (the floor)',
  stream: 'node:http + undici stream()',
  fastify: '@fastify/http-proxy',
  gateway: 'graylane gateway, untagged',
  tagged: 'graylane gateway, x-lane: gray',
  outbound: 'graylane outbound sidecar (Host:)',
  named: 'graylane outbound, endpoint http://localhost:PORT',
  absolute: 'graylane outbound as HTTP_PROXY (absolute-form)',
  inbound: 'graylane inbound sidecar',
  twoHops: 'graylane two hops (gateway → outbound)',
  large: 'graylane gateway, 100-service / 10-lane table, x-lane: lane-7',
};

// ---------------------------------------------------------------------------------------------
// Peers

async function startUpstream() {
  const port = await freePort();
  const large = path.join(WORK, '1m');
  writeFileSync(large, Buffer.alloc(1024 * 1024, 'x'), { mode: 0o644 });
  chmodSync(WORK, 0o755); // nginx's worker runs as nobody
  nginx(
    WORK,
    LOAD_CORE,
    'upstream',
    // The request-body rows: nginx reads the whole body, then answers the small body (from itself,
    // without the body). Answered before it is read (`return` drops it as it comes), wrk would send
    // its next request while the last body is still going out, and connections stall.
    `  upstream self { server 127.0.0.1:${port}; keepalive 16; }\n` +
      // 127.0.0.2 and up stand for other endpoints: a lane's, each of the large table's lanes.
      `  server { ${LOOPBACKS.map((n) => `listen 127.0.0.${n}:${port};`).join(' ')}\n` +
      `    location = /1k { default_type text/plain; return 200 "${KIB_BODY.replace('\n', '\\n')}"; }\n` +
      `    location = /1m { default_type application/octet-stream; alias ${large}; }\n` +
      '    location = /upload { client_max_body_size 2m; client_body_buffer_size 2m; proxy_pass http://self/;' +
      ' proxy_pass_request_body off; proxy_set_header Content-Length ""; proxy_http_version 1.1;' +
      ' proxy_set_header Connection ""; }\n' +
      `    location / { default_type text/plain; return 200 "${BODY.replace('\n', '\\n')}"; } }`,
  );
  await waitForPort(port);
  return port;
}

async function startPeers(upstreamPort) {
  const upstream = `http://127.0.0.1:${upstreamPort}`;
  const peers = [{ name: NAMES.direct, port: upstreamPort, fixed: true }];

  const nginxPort = await freePort();
  const nginxProxy = nginx(
    WORK,
    PROXY_CORE,
    'nginx-proxy',
    `  upstream up { server 127.0.0.1:${upstreamPort}; keepalive 64; }\n` +
      `  server { listen 127.0.0.1:${nginxPort};\n` +
      `    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }`,
  );
  peers.push({ name: NAMES.nginx, port: nginxPort, child: nginxProxy, fixed: true, idle: true });

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
    fixed: true,
  });

  const serve = path.join(HERE, 'forwarders', 'serve.mjs');
  const fastify = await nodePeer(path.join(HERE, 'peers', 'fastify-proxy.mjs'), [upstream]);
  peers.push({ name: NAMES.fastify, port: fastify.ports.port, child: fastify.child, fixed: true });
  const httpProxy = await nodePeer(serve, ['http-proxy', upstream]);
  peers.push({
    name: 'http-proxy + keep-alive agent',
    port: httpProxy.ports.port,
    child: httpProxy.child,
    fixed: true,
  });
  const floor = await nodePeer(serve, ['undici-dispatch', upstream]);
  peers.push({ name: NAMES.floor, port: floor.ports.port, child: floor.child, fixed: true });
  const stream = await nodePeer(serve, ['undici-stream', upstream]);
  peers.push({ name: NAMES.stream, port: stream.ports.port, child: stream.child, fixed: true });

  const gray = `http://127.0.0.2:${upstreamPort}`;
  const graylane = await nodePeer(path.join(HERE, 'peers', 'graylane.mjs'), [
    JSON.stringify({ stable: upstream, gray, named: `http://localhost:${upstreamPort}` }),
  ]);
  const { gateway, outbound, inbound } = graylane.ports;
  const child = graylane.child;
  peers.push(
    { name: NAMES.gateway, port: gateway, child, served: 'bench=stable', fixed: true },
    {
      name: NAMES.tagged,
      port: gateway,
      child,
      headers: ['x-lane: gray'],
      served: 'bench=gray',
      fixed: true,
    },
    {
      name: NAMES.outbound,
      port: outbound,
      child,
      headers: ['Host: bench'],
      served: 'bench=stable',
      fixed: true,
    },
    {
      name: NAMES.named,
      port: outbound,
      child,
      headers: ['Host: named'],
      served: 'named=stable',
      fixed: true,
    },
    {
      name: NAMES.absolute,
      port: outbound,
      child,
      absolute: 'http://bench/',
      served: 'bench=stable',
      fixed: true,
    },
    { name: NAMES.inbound, port: inbound, child, served: 'bench=stable', fixed: true },
    {
      name: NAMES.twoHops,
      port: gateway,
      child,
      path: '/hop/',
      headers: ['Host: bench'],
      served: 'hop=stable, bench=stable',
      fixed: true,
    },
  );

  const large = await nodePeer(path.join(HERE, 'peers', 'graylane.mjs'), [
    JSON.stringify({ stable: upstream, gray, ...LARGE_TABLE }),
  ]);
  peers.push({
    name: NAMES.large,
    port: large.ports.gateway,
    child: large.child,
    headers: ['x-lane: lane-7'],
    served: 'svc-50=lane-7',
    fixed: true,
  });

  // Bodies: the same peers, a larger answer, then a request body (POST) and the small answer.
  for (const body of BODIES) {
    for (const base of [NAMES.direct, NAMES.floor, NAMES.gateway]) {
      const peer = peers.find((p) => p.name === base);
      peers.push({
        ...peer,
        name: `${base}, ${body.name}`,
        path: body.path,
        method: body.method,
        requestBytes: body.request ? body.bytes : undefined,
        body,
        fixed: false,
      });
    }
  }

  // What node:cluster workers would lift (graylane-proxy has none): the gateway as 1 and as 2
  // workers behind one port, primary and workers all on the proxy core.
  for (const workers of [1, 2]) {
    const wrapped = await nodePeer(path.join(HERE, 'peers', 'graylane-cluster.mjs'), [
      String(workers),
      JSON.stringify({ stable: upstream, gray }),
    ]);
    peers.push({
      name: `${NAMES.gateway}, node:cluster ${workers} worker${workers > 1 ? 's' : ''} on core ${PROXY_CORE}`,
      port: wrapped.ports.gateway,
      child: wrapped.child,
      served: 'bench=stable',
      cluster: workers,
      fixed: false,
    });
  }
  for (const peer of peers) await waitForPort(peer.port);
  return peers;
}

/** A broken peer would only look fast: each must answer the upstream's body, graylane its lanes. */
async function check(peer) {
  const headers = Object.fromEntries(peer.headers?.map((h) => h.split(': ')) ?? []);
  const target = peer.absolute
    ? { host: '127.0.0.1', port: peer.port, path: peer.absolute, headers: { host: 'bench' } }
    : { host: '127.0.0.1', port: peer.port, path: peer.path ?? '/', headers };
  const res = await new Promise((resolve, reject) => {
    const req = http.request({ ...target, method: peer.method ?? 'GET', agent: false });
    req.on('error', reject);
    req.on('response', (r) => {
      let length = 0;
      let body = '';
      r.on('data', (chunk) => {
        length += chunk.length;
        if (body.length < 2048) body += chunk;
      });
      r.on('end', () => resolve({ status: r.statusCode, headers: r.headers, body, length }));
    });
    req.end(peer.requestBytes ? Buffer.alloc(peer.requestBytes, 'x') : undefined);
  });
  const expected = peer.body?.request ? BODY.length : (peer.body?.bytes ?? BODY.length);
  if (res.status !== 200 || res.length !== expected || (expected === 100 && res.body !== BODY)) {
    throw new Error(`${peer.name} answered ${res.status} with a ${res.length}-byte body`);
  }
  if (peer.served && res.headers['x-lane-served'] !== peer.served) {
    throw new Error(
      `${peer.name} served x-lane-served: ${res.headers['x-lane-served']}, not ${peer.served}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Runs

async function maxThroughput(peer) {
  const pids = peer.child ? pidsOf(peer.child) : [];
  const before = cpuSeconds(pids);
  const started = process.hrtime.bigint();
  const result = await wrk(WORK, peer, settings);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cores = (cpuSeconds(pids) - before) / seconds;
  return { ...result, coresPer1000: peer.child ? cores / (result.rps / 1000) : Number.NaN };
}

async function atFixedRate(vegeta, peer) {
  const result = await fixedRate(vegeta, WORK, peer, settings);
  return { ...result, rssMb: peer.child ? rssMb(pidsOf(peer.child), 'VmRSS') : Number.NaN };
}

/** A fresh graylane process (nothing else served by it) holding idle client connections. */
async function idleRows(upstream, nginxPeer) {
  const graylane = await nodePeer(path.join(HERE, 'peers', 'graylane.mjs'), [
    JSON.stringify({
      stable: upstream,
      gray: upstream.replace('127.0.0.1', '127.0.0.2'),
      // Idle connections must outlive the measurement, and 10 000 of them fit under the cap.
      server: { keepAliveTimeoutMs: 600_000, maxConnections: 20_000 },
    }),
  ]);
  const subjects = [
    { name: 'graylane gateway', port: graylane.ports.gateway, child: graylane.child },
    { name: nginxPeer.name, port: nginxPeer.port, child: nginxPeer.child },
  ];
  const rows = [];
  for (const subject of subjects) {
    await waitForPort(subject.port);
    // Warm: what the first requests allocate once (JIT, pools, buffers) is not per connection.
    (await idleConnections(subject.port, 200))();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    for (const count of settings.idle) {
      const pids = pidsOf(subject.child);
      const before = rssMb(pids, 'VmRSS');
      const close = await idleConnections(subject.port, count);
      const after = rssMb(pids, 'VmRSS');
      close();
      rows.push({
        name: subject.name,
        count,
        before,
        after,
        kbPer: ((after - before) * 1024) / count,
      });
      process.stderr.write(`idle: ${subject.name} ${count} connections ${after.toFixed(0)} MB\n`);
      // The closed sockets' memory goes back before the next count is measured from its own start.
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  return rows;
}

/**
 * Open-loop runs at half of each peer's own maximum (the median of its closed-loop runs), in
 * interleaved rounds: each peer at the same share of what it can do, where the fixed rate is an
 * easy load for some and a heavy one for others.
 */
async function atHalfMax(vegeta, peers, runs, proxyPids) {
  const fixed = peers.filter((p) => p.fixed);
  const halfRuns = new Map(fixed.map((p) => [p.name, []]));
  for (let round = 0; round < settings.rounds; round++) {
    const shift = round % fixed.length;
    for (const peer of [...fixed.slice(shift), ...fixed.slice(0, shift)]) {
      const rate = Math.max(1, Math.round(median(runs.get(peer.name).map((r) => r.rps)) / 2));
      await settled(proxyPids);
      const result = await fixedRate(vegeta, WORK, peer, { ...settings, rate });
      halfRuns.get(peer.name).push({ ...result, rate });
      process.stderr.write(
        `half max, round ${round + 1}: ${peer.name} at ${rate} req/s, p99 ${result.p99.toFixed(2)} ms\n`,
      );
    }
  }
  return halfRuns;
}

/**
 * A CPU profile of the gateway (untagged) at its one-core maximum: a fresh graylane process, warmed
 * up, then profiled while wrk loads it as in the rounds.
 */
async function profileGateway(upstream) {
  const file = path.join(WORK, 'gateway.cpuprofile');
  const gateway = await nodePeer(path.join(HERE, 'peers', 'graylane.mjs'), [
    JSON.stringify({
      stable: upstream,
      gray: upstream.replace('127.0.0.1', '127.0.0.2'),
      profile: file,
    }),
  ]);
  const peer = { name: 'profiled gateway', port: gateway.ports.gateway };
  await waitForPort(peer.port);
  await wrk(WORK, peer, { ...settings, seconds: Math.max(1, settings.seconds / 2) });
  gateway.child.kill('SIGUSR2');
  const result = await wrk(WORK, peer, settings);
  await stop(gateway.child);
  process.stderr.write(`profile: gateway at ${Math.round(result.rps)} req/s\n`);
  return { rps: result.rps, ...summarizeProfile(JSON.parse(readFileSync(file, 'utf8'))) };
}

const medians = (fs) =>
  fs.length
    ? {
        rate: median(fs.map((f) => f.rate)),
        sentPerS: median(fs.map((f) => f.sentPerS)),
        p50: median(fs.map((f) => f.p50)),
        p99: median(fs.map((f) => f.p99)),
        p999: median(fs.map((f) => f.p999)),
        rssMb: median(fs.map((f) => f.rssMb)),
        p99Min: Math.min(...fs.map((f) => f.p99)),
        p99Max: Math.max(...fs.map((f) => f.p99)),
        failedShare: Math.max(...fs.map((f) => f.failedShare)),
      }
    : undefined;

function summarize(peers, runs, fixedRuns, halfRuns) {
  return peers.map((peer) => {
    const rs = runs.get(peer.name);
    const fs = fixedRuns.get(peer.name) ?? [];
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
      peakRssMb: peer.child ? rssMb(pidsOf(peer.child)) : Number.NaN,
      fixed: medians(fs),
      half: medians(halfRuns.get(peer.name) ?? []),
      body: peer.body,
      cluster: peer.cluster,
    };
  });
}

async function main() {
  ensureTools();
  const vegeta = ensureVegeta();
  const upstreamPort = await startUpstream();
  const peers = await startPeers(upstreamPort);
  for (const peer of peers) await check(peer);
  const runs = new Map(peers.map((p) => [p.name, []]));
  const fixedRuns = new Map(peers.filter((p) => p.fixed).map((p) => [p.name, []]));
  const loads = [];
  const proxyPids = [...new Set(peers.flatMap((p) => (p.child ? pidsOf(p.child) : [])))];
  for (let round = 0; round < settings.rounds; round++) {
    loads.push(os.loadavg()[0]);
    const shift = round % peers.length;
    const order = [...peers.slice(shift), ...peers.slice(0, shift)];
    for (const peer of order) {
      await settled(proxyPids);
      if (!quick) await wrk(WORK, peer, { ...settings, seconds: 1 }); // warm-up: JIT, pools
      runs.get(peer.name).push(await maxThroughput(peer));
      let line = `round ${round + 1}: ${peer.name} ${Math.round(runs.get(peer.name).at(-1).rps)} req/s`;
      if (peer.fixed) {
        await settled(proxyPids);
        fixedRuns.get(peer.name).push(await atFixedRate(vegeta, peer));
        line += `, p99 at ${settings.rate} req/s ${fixedRuns.get(peer.name).at(-1).p99.toFixed(2)} ms`;
      }
      process.stderr.write(`${line}\n`);
    }
  }
  const halfRuns = await atHalfMax(vegeta, peers, runs, proxyPids);
  loads.push(os.loadavg()[0]);
  const profile = await profileGateway(`http://127.0.0.1:${upstreamPort}`);
  const idle = await idleRows(
    `http://127.0.0.1:${upstreamPort}`,
    peers.find((p) => p.name === NAMES.nginx),
  );
  if (failures.length > 0) throw new Error(failures.join('\n'));
  const rows = summarize(peers, runs, fixedRuns, halfRuns);
  const text = report({ rows, idle, profile, loads, settings, machine: machine(), names: NAMES });
  mkdirSync(path.dirname(OUT), { recursive: true });
  writeFileSync(OUT, text);
  writeFileSync(
    OUT.replace(/\.md$/, '.json'),
    `${JSON.stringify({ date: new Date().toISOString(), machine: machine(), settings, loads, rows, idle, profile: { ...profile, frames: profile.frames.slice(0, 100) }, runs: Object.fromEntries(runs), fixedRuns: Object.fromEntries(fixedRuns), halfRuns: Object.fromEntries(halfRuns) }, null, 2)}\n`,
  );
  process.stdout.write(`${text}\nwritten to ${OUT}\n`);
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(stopAll);
