#!/usr/bin/env node
// Which library should graylane-proxy forward with? Runs the same hot-path work (hop-by-hop
// filtering, x-forwarded-*, a lane response header, bodies streamed both ways, keep-alive
// upstream) on undici, http-proxy and plain node:http, side by side with a no-proxy baseline.
//
//   node bench/forwarding.mjs            full run (~3 min), writes bench/results/forwarding.md
//   node bench/forwarding.mjs --quick    1 round x 1 s smoke run, writes to a temp dir
//   options: --rounds N --duration S --warmup S --connections N --out FILE --json FILE
//
// Process layout: the upstream and every forwarder run in their own child process; this process
// only validates, drives autocannon and reports, so no forwarder shares an event loop with the
// load generator or with another forwarder.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { expectedLaneServed } from './forwarders/graylane-proxy.mjs';
import { LANE } from './forwarders/headers.mjs';
import { FORWARDER_NAMES, PRODUCT } from './forwarders/serve.mjs';
import { INSPECT_RESPONSE_HOPS, SMALL_BODY } from './forwarders/upstream.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const HOST = '127.0.0.1';
const DIRECT = 'direct (no proxy)';
/** The minimal forwarder the real proxy forwards with, which its row is compared to. */
const BASE = 'undici-stream';
const ECHO_BYTES = 64 * 1024;

/** Headers a lane-aware client typically sends; the forwarders copy all of them. */
const CLIENT_HEADERS = {
  accept: '*/*',
  'user-agent': 'graylane-bench/1',
  'x-lane': 'canary',
  baggage: 'graylane.lane=canary',
  connection: 'keep-alive',
};

const SCENARIOS = [
  {
    id: 'small-get',
    title: 'GET, ~100 B response',
    summary: 'small GETs',
    method: 'GET',
    path: '/small',
  },
  {
    id: 'echo-64k',
    title: 'POST 64 KiB body, echoed back (64 KiB response)',
    summary: '64 KiB echoes',
    method: 'POST',
    path: '/echo',
    body: Buffer.alloc(ECHO_BYTES, 'graylane'),
    headers: { 'content-type': 'application/octet-stream' },
  },
];

// ---------------------------------------------------------------------------------------------
// Options

function readOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'string' },
    },
  });
  const defaults = values.quick
    ? { rounds: 1, duration: 1, warmup: 0 }
    : { rounds: 3, duration: 5, warmup: 1 };
  return {
    quick: values.quick,
    rounds: Number(values.rounds ?? defaults.rounds),
    duration: Number(values.duration ?? defaults.duration),
    warmup: Number(values.warmup ?? defaults.warmup),
    connections: Number(values.connections ?? 32),
    out:
      values.out ??
      (values.quick ? quickOutputPath() : path.join(HERE, 'results', 'forwarding.md')),
    json: values.json,
    command: ['node', 'bench/forwarding.mjs', ...argv].join(' '),
  };
}

/** Quick runs are smoke tests (CI); they must not overwrite the committed report. */
function quickOutputPath() {
  return path.join(mkdtempSync(path.join(os.tmpdir(), 'graylane-bench-')), 'forwarding.md');
}

// ---------------------------------------------------------------------------------------------
// Child processes

const children = [];

/** Forks a child and resolves with its port once it reports listening over IPC. */
function startChild(script, args) {
  const child = fork(path.join(HERE, 'forwarders', script), args, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    const onExit = (code) =>
      reject(new Error(`${script} ${args} exited (${code}) before listening`));
    child.once('exit', onExit);
    child.once('message', ({ port }) => {
      child.off('exit', onExit);
      resolve({ child, port });
    });
  });
}

function stopChildren() {
  for (const child of children) child.kill();
}

/** Number of TCP connections the upstream has accepted so far. */
async function upstreamConnections(upstream) {
  upstream.child.send({ type: 'stats' });
  const [message] = await once(upstream.child, 'message');
  return message.connections;
}

// ---------------------------------------------------------------------------------------------
// Correctness: a broken forwarder would otherwise just look fast.

/** One request on a fresh connection; resolves with status, headers and the whole body. */
function request(port, { method = 'GET', path: urlPath, headers = {}, body }) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port, method, path: urlPath, headers, agent: false });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
    req.end(body);
  });
}

/**
 * What a forwarder must answer beyond the shared checks. The minimal forwarders stamp a fixed
 * `x-lane-served`; graylane-proxy reports its provenance (service, serving lane, fallback) and
 * adds itself to Via on the way up.
 */
const MINIMAL = { laneServed: () => LANE, via: undefined };
const PROFILES = { [PRODUCT]: { laneServed: expectedLaneServed, via: /^1\.1 graylane-\S+$/ } };

/** Collects a readable list of what is wrong; an empty list means the check passed. */
function expect(problems, condition, message) {
  if (!condition) problems.push(message);
}

/** The x-lane-served check, naming what came back when it is not what the forwarder owes. */
function expectLaneServed(problems, res, expected) {
  const served = res.headers['x-lane-served'];
  expect(problems, served === expected, `x-lane-served is ${served}, not ${expected}`);
}

async function checkSmall(port, profile) {
  const problems = [];
  const res = await request(port, { path: '/small', headers: CLIENT_HEADERS });
  expect(problems, res.status === 200, `status ${res.status}`);
  expect(problems, res.body.toString() === SMALL_BODY, 'body differs from upstream');
  expectLaneServed(problems, res, profile.laneServed(CLIENT_HEADERS['x-lane']));
  return problems;
}

async function checkEcho(port, profile) {
  const problems = [];
  const body = Buffer.alloc(ECHO_BYTES);
  for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
  const res = await request(port, { method: 'POST', path: '/echo', body });
  expect(problems, res.status === 200, `status ${res.status}`);
  expect(problems, res.body.equals(body), `echoed ${res.body.length} bytes that differ`);
  expectLaneServed(problems, res, profile.laneServed(undefined));
  return problems;
}

/**
 * Sends the first request chunk and only sends the rest once that chunk has come back through
 * the forwarder. A forwarder that buffers either body (or cannot take chunked bodies) stalls.
 */
function checkStreaming(port) {
  return new Promise((resolve) => {
    const req = http.request({ host: HOST, port, method: 'POST', path: '/echo', agent: false });
    const timer = setTimeout(() => {
      req.destroy();
      resolve(['first chunk did not come back before the body ended: something buffers']);
    }, 3000);
    const finish = (problems) => {
      clearTimeout(timer);
      resolve(problems);
    };
    req.on('error', (err) => finish([`request failed: ${err.message}`]));
    req.on('response', (res) => {
      let echoed = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        echoed += chunk;
        if (echoed === 'ping ') req.end('pong');
      });
      res.on('end', () => finish(echoed === 'ping pong' ? [] : [`echoed "${echoed}"`]));
    });
    req.write('ping ');
  });
}

async function checkHeaders(port, profile) {
  const problems = [];
  const res = await request(port, {
    method: 'POST',
    path: '/inspect',
    body: 'x',
    headers: {
      host: 'graylane.test',
      connection: 'keep-alive, x-hop-custom',
      'keep-alive': 'timeout=99',
      'proxy-connection': 'keep-alive',
      te: 'trailers',
      trailer: 'x-sentinel-trailer',
      upgrade: 'x-sentinel',
      'x-hop-custom': 'must-not-reach-upstream',
      'x-lane': 'canary',
      'x-forwarded-for': '203.0.113.7',
    },
  });
  expect(problems, res.status === 200, `status ${res.status}`);
  const seen = res.status === 200 ? JSON.parse(res.body.toString()) : {};
  for (const name of ['x-hop-custom', 'proxy-connection', 'te', 'trailer', 'upgrade']) {
    expect(problems, seen[name] === undefined, `upstream received ${name}`);
  }
  expect(problems, seen['keep-alive'] !== 'timeout=99', 'upstream received client keep-alive');
  expect(problems, !String(seen.connection).includes('x-hop'), 'client Connection forwarded');
  expect(problems, seen['x-lane'] === 'canary', 'end-to-end x-lane header lost');
  expect(problems, seen.host === 'graylane.test', `host became ${seen.host}`);
  expect(
    problems,
    seen['x-forwarded-for'] === '203.0.113.7, 127.0.0.1',
    `x-forwarded-for is ${seen['x-forwarded-for']}`,
  );
  expect(problems, seen['x-forwarded-proto'] === 'http', 'x-forwarded-proto missing');
  expect(problems, seen['x-forwarded-host'] === 'graylane.test', 'x-forwarded-host missing');
  if (profile.via) expect(problems, profile.via.test(seen.via), `upstream saw Via ${seen.via}`);

  for (const name of Object.keys(INSPECT_RESPONSE_HOPS).filter((n) => n !== 'connection')) {
    expect(problems, res.headers[name] === undefined, `client received ${name}`);
  }
  expect(problems, !String(res.headers.connection).includes('x-upstream-hop'), 'Connection leak');
  expectLaneServed(problems, res, profile.laneServed('canary'));
  return problems;
}

const CHECKS = {
  'small GET': checkSmall,
  '64 KiB echo': checkEcho,
  'streams both ways': checkStreaming,
  'hop-by-hop + x-forwarded': checkHeaders,
};

async function validate(forwarders) {
  const results = [];
  for (const [name, { port }] of forwarders) {
    const profile = PROFILES[name] ?? MINIMAL;
    const checks = {};
    for (const [check, run] of Object.entries(CHECKS)) {
      checks[check] = await run(port, profile).catch((err) => [`threw: ${err.message}`]);
    }
    results.push({ forwarder: name, checks });
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// Load

/** One autocannon run; only 2xx responses count as throughput. */
async function load(port, scenario, seconds, connections) {
  const result = await autocannon({
    url: `http://${HOST}:${port}${scenario.path}`,
    method: scenario.method,
    headers: { ...CLIENT_HEADERS, ...scenario.headers },
    body: scenario.body,
    connections,
    duration: seconds,
  });
  return {
    rps: result['2xx'] / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx + result.mismatches,
  };
}

/**
 * Rounds interleave the variants (A B C, B C A, ...) so slow drift on a shared 2-core machine
 * (thermal, other tenants, GC in the load generator) spreads over all of them; the order rotates
 * so no variant always runs right after the same neighbour.
 */
async function measureScenario(scenario, targets, upstream, options) {
  const runs = new Map(targets.map(([name]) => [name, []]));
  if (options.warmup > 0) {
    for (const [, target] of targets) {
      await load(target.port, scenario, options.warmup, options.connections);
    }
  }
  for (let round = 0; round < options.rounds; round++) {
    const order = targets.map((_, i) => targets[(i + round) % targets.length]);
    for (const [name, target] of order) {
      const before = await upstreamConnections(upstream);
      const run = await load(target.port, scenario, options.duration, options.connections);
      run.newUpstreamConnections = (await upstreamConnections(upstream)) - before;
      runs.get(name).push(run);
      log(`${scenario.id} round ${round + 1} ${name}: ${Math.round(run.rps)} req/s`);
    }
  }
  return summarize(runs);
}

/** A minimal forwarder row: neither the no-proxy baseline nor the real proxy. */
function isMinimal(variant) {
  return variant !== DIRECT && variant !== PRODUCT;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function summarize(runs) {
  const rows = [...runs].map(([variant, list]) => ({
    variant,
    rps: median(list.map((r) => r.rps)),
    minRps: Math.min(...list.map((r) => r.rps)),
    maxRps: Math.max(...list.map((r) => r.rps)),
    p50: median(list.map((r) => r.p50)),
    p99: median(list.map((r) => r.p99)),
    errors: list.reduce((sum, r) => sum + r.errors, 0),
    newUpstreamConnections: Math.max(...list.map((r) => r.newUpstreamConnections)),
  }));
  const direct = rows.find((r) => r.variant === DIRECT);
  // "vs fastest" is against the fastest minimal forwarder, the product row included.
  const fastest = Math.max(...rows.filter((r) => isMinimal(r.variant)).map((r) => r.rps));
  for (const row of rows) {
    row.vsFastest = row === direct ? null : row.rps / fastest;
    row.vsDirect = row.rps / direct.rps;
  }
  // Baseline first, then forwarders fastest first.
  return [direct, ...rows.filter((r) => r !== direct).sort((a, b) => b.rps - a.rps)];
}

// ---------------------------------------------------------------------------------------------
// Report

const fmt = {
  int: (n) => Math.round(n).toLocaleString('en-US'),
  ms: (n) => (Number.isInteger(n) ? String(n) : n.toFixed(2)),
  ratio: (n) => (n === null ? '—' : `${n.toFixed(2)}×`),
};

function scenarioTable(rows) {
  const lines = [
    '| variant | req/s (median) | req/s min–max | p50 ms | p99 ms | vs fastest | vs direct | errors | new upstream conns/run |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const r of rows) {
    const cells = [
      r.variant,
      fmt.int(r.rps),
      `${fmt.int(r.minRps)}–${fmt.int(r.maxRps)}`,
      fmt.ms(r.p50),
      fmt.ms(r.p99),
      fmt.ratio(r.vsFastest),
      fmt.ratio(r.vsDirect),
      r.errors,
      r.newUpstreamConnections,
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** One sentence per scenario: which minimal forwarder won, and by how much over the others. */
function verdict(rows) {
  const [winner, ...others] = rows.filter((r) => isMinimal(r.variant));
  const margins = others.map((r) => `${(winner.rps / r.rps).toFixed(2)}× ${r.variant}`);
  return `**${winner.variant}** is the fastest minimal forwarder (${fmt.ratio(winner.vsDirect)} of direct); it does ${margins.join(', ')}.`;
}

/** The real proxy's throughput and latency as a share of undici-stream's, which it is built on. */
function productRatio(rows) {
  const product = rows.find((r) => r.variant === PRODUCT);
  const base = rows.find((r) => r.variant === BASE);
  if (product === undefined || base === undefined) return undefined;
  return {
    rps: product.rps / base.rps,
    vsDirect: product.vsDirect,
    p50: `${fmt.ms(product.p50)} vs ${fmt.ms(base.p50)} ms`,
  };
}

/** One sentence over every scenario: what the product's full hot path costs. */
function productSummary(results) {
  const measured = results
    .map(({ scenario, rows }) => ({ scenario, ratio: productRatio(rows) }))
    .filter(({ ratio }) => ratio !== undefined);
  if (measured.length === 0) return undefined;
  const parts = measured.map(({ scenario, ratio }, i) => {
    const what = i === 0 ? `${BASE}'s throughput on` : 'on';
    const of = `${fmt.ratio(ratio.vsDirect)} of direct; p50 ${ratio.p50}`;
    return `${fmt.ratio(ratio.rps)} ${what} ${scenario.summary} (${of})`;
  });
  return `**${PRODUCT}**, the product's full hot path (entrypoint match, lane assignment, route resolution with fallback, retry bookkeeping, metrics, provenance header) on the same \`dispatcher.stream()\` forwarding, does ${parts.join(' and ')}.`;
}

function validationTable(validation) {
  const names = Object.keys(CHECKS);
  const lines = [
    `| forwarder | ${names.join(' | ')} |`,
    `|---|${names.map(() => ':-:').join('|')}|`,
  ];
  for (const { forwarder, checks } of validation) {
    const cells = names.map((n) => (checks[n].length === 0 ? 'ok' : checks[n].join('; ')));
    lines.push(`| ${forwarder} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

function renderReport(meta, validation, results) {
  const product = productSummary(results);
  const summary = [
    ...results.map(({ scenario, rows }) => `${scenario.title}: ${verdict(rows)}`),
    ...(product === undefined ? [] : [product]),
  ];
  const sections = [
    '# Forwarding benchmark: undici vs http-proxy vs node:http, and graylane-proxy',
    [
      `- Date: ${meta.date}`,
      `- Node ${meta.node} on ${meta.platform}, ${meta.cores} cores (${meta.cpu})`,
      `- Command: \`${meta.command}\``,
      `- Load: autocannon ${meta.connections} connections; ${meta.rounds} round(s) × ${meta.duration} s per variant per scenario, variants interleaved with rotating order, ${meta.warmup} s warm-up each; medians over rounds.`,
      '- Each forwarder runs in its own process behind node:http, upstream in another, load generator in a third, all on 127.0.0.1. Upstream keep-alive for all (Pool / keep-alive Agent).',
      `- The minimal forwarders do only the shared header work (bench/forwarders/headers.mjs). **${PRODUCT}** is the real proxy (packages/router-proxy/dist, CLI defaults, log level silent) with a table of one service whose only (stable) endpoint is the upstream, entrypoint \`/\` with \`clientLanes: any\`: the bench's \`x-lane: canary\` is accepted and falls back to stable (\`x-lane-served: bench=stable;fallback=absent\`), the path of a service without a canary.`,
    ].join('\n'),
    `> Absolute numbers are noisy: the load generator, the forwarder and the upstream share ${meta.cores} cores, so every variant is CPU-bound together with its own load. Compare ratios, not req/s, and treat differences under ~5 % as a tie.`,
    '## Summary',
    summary.map((line) => `- ${line}`).join('\n'),
    ...results.flatMap(({ scenario, rows }) => [
      `## ${scenario.title} (\`${scenario.method} ${scenario.path}\`)`,
      scenarioTable(rows),
    ]),
    '## Correctness (checked once before measuring)',
    validationTable(validation),
    `"vs fastest" compares every row, ${PRODUCT}'s too, with the fastest minimal forwarder. "new upstream conns/run" counts TCP connections the upstream accepted during a measured run: a handful (or 0, once pooled) means keep-alive works; thousands would mean a connection per request. The direct row is the load generator's own connections. ${PRODUCT} keeps idle upstream connections for 4 s (its default, under Node's 5 s server timeout), shorter than the other variants' runs in between, so it reconnects at the start of each of its runs.`,
  ];
  return `${sections.join('\n\n')}\n`;
}

// ---------------------------------------------------------------------------------------------

function log(message) {
  process.stderr.write(`[bench] ${message}\n`);
}

async function main() {
  const options = readOptions(process.argv.slice(2));
  const upstream = await startChild('upstream.mjs', []);
  const upstreamUrl = `http://${HOST}:${upstream.port}`;
  const forwarders = [];
  for (const name of FORWARDER_NAMES) {
    forwarders.push([name, await startChild('serve.mjs', [name, upstreamUrl])]);
  }

  const validation = await validate(forwarders);
  const failed = validation.filter((v) => Object.values(v.checks).some((p) => p.length > 0));
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    cores: os.availableParallelism(),
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown CPU',
    ...options,
  };
  if (failed.length > 0) {
    log(`forwarder(s) failed validation, not measuring:\n${validationTable(validation)}`);
    writeJson(options.json, { meta, validation, results: [] });
    process.exitCode = 1;
    return;
  }
  log('all forwarders passed validation');

  const targets = [[DIRECT, upstream], ...forwarders];
  const results = [];
  for (const scenario of SCENARIOS) {
    results.push({ scenario, rows: await measureScenario(scenario, targets, upstream, options) });
  }

  const report = renderReport(meta, validation, results);
  mkdirSync(path.dirname(options.out), { recursive: true });
  writeFileSync(options.out, report);
  writeJson(options.json, { meta, validation, results: results.map(withoutBody) });
  process.stdout.write(report);
  log(`report written to ${options.out}`);
}

/** Machine-readable results for the CI smoke test. */
function writeJson(file, data) {
  if (file !== undefined) writeFileSync(file, JSON.stringify(data, null, 2));
}

function withoutBody({ scenario: { body, ...scenario }, rows }) {
  return { scenario, rows };
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(stopChildren);
