#!/usr/bin/env node
// The data-plane demo: one graylane-proxy (gateway + outbound sidecar, the real bin) in front of two
// services with a stable (v1) and a gray (v2) version each. The frontends run with
// `--import @graylane/sdk/register` and have no lane code at all (frontend.mjs): the SDK carries the
// lane onto their calls to the backend, and the sidecar's provenance back. Each line shows which
// version of each service served a request, as the gateway reports it in `x-lane-served`.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const PROXY_BIN = here('../../packages/router-proxy/dist/main.js');
const SDK_REGISTER = new URL('../../packages/propagation-sdk/dist/register.js', import.meta.url)
  .href;
const FRONTEND = here('./frontend.mjs');

/** A backend version: says who it is and which lane its request carried. */
async function startBackend(version) {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`backend ${version} (x-lane: ${req.headers['x-lane'] ?? '-'})`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

/** Reads one JSON line a child prints on stdout, e.g. its port. */
function jsonLines(child, onLine) {
  let buffer = '';
  child.stdout.on('data', (chunk) => {
    buffer += chunk;
    for (let nl = buffer.indexOf('\n'); nl !== -1; nl = buffer.indexOf('\n')) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      onLine(JSON.parse(line));
    }
  });
}

async function startFrontend(name, sidecar) {
  const child = spawn(process.execPath, ['--import', SDK_REGISTER, FRONTEND, name, sidecar], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve) => jsonLines(child, (line) => resolve(line.port)));
  return { child, url: `http://127.0.0.1:${port}` };
}

async function startProxy(tableFile) {
  const args = ['--route-table', tableFile];
  for (const listener of ['gateway', 'outbound', 'admin'])
    args.push(`--${listener}`, '127.0.0.1:0');
  // Nothing balances traffic onto the demo's proxies, so none needs a deregistration window.
  args.push('--drain-delay-ms', '0');
  const child = spawn(process.execPath, [PROXY_BIN, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const listeners = {};
  await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`graylane-proxy exited with ${code}`)));
    jsonLines(child, (line) => {
      if (line.msg !== 'listening') return;
      listeners[line.listener] = `http://${line.address.host}:${line.address.port}`;
      if (Object.keys(listeners).length === 3) resolve();
    });
  });
  return { child, listeners };
}

function get(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode, served: res.headers['x-lane-served'], body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

function table(revision, frontend, backend) {
  return JSON.stringify({
    apiVersion: 'graylane/v1',
    revision,
    services: {
      frontend: {
        stable: { version: 'v1', endpoints: [frontend.v1] },
        lanes: { gray: { version: 'v2', endpoints: frontend.v2 ? [frontend.v2] : [] } },
      },
      backend: {
        stable: { version: 'v1', endpoints: [backend.v1] },
        lanes: {
          gray: { version: 'v2', endpoints: [backend.v2] },
          strict: { endpoints: [], fallback: 'none' },
        },
      },
    },
    entrypoints: [
      {
        name: 'shop',
        service: 'frontend',
        clientLanes: 'known',
        assign: [
          { lane: 'gray', when: { headers: { 'user-agent': { exact: 'graylane-tester' } } } },
        ],
      },
    ],
  });
}

async function waitForRevision(admin, revision) {
  for (let i = 0; i < 100; i++) {
    const ready = await get(`${admin}/readyz`);
    if (JSON.parse(ready.body).revision === revision) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`route table revision ${revision} was not applied`);
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'graylane-demo-'));
  const tableFile = join(dir, 'routes.json');
  const children = [];
  const backends = [];
  let proxy;
  try {
    const v1 = await startBackend('v1');
    const v2 = await startBackend('v2');
    backends.push(v1.server, v2.server);
    const backend = { v1: v1.url, v2: v2.url };
    // The frontends need the sidecar's address, so the proxy starts first with a placeholder
    // frontend; the table is then rewritten, and the proxy picks it up without a restart.
    writeFileSync(tableFile, table(1, { v1: v1.url }, backend));
    proxy = await startProxy(tableFile);
    children.push(proxy.child);
    const { gateway, outbound, admin } = proxy.listeners;
    const f1 = await startFrontend('frontend v1', outbound);
    const f2 = await startFrontend('frontend v2', outbound);
    children.push(f1.child, f2.child);
    writeFileSync(tableFile, table(2, { v1: f1.url, v2: f2.url }, backend));
    await waitForRevision(admin, 2);
    console.log(`graylane-proxy: gateway ${gateway}, sidecar ${outbound}, admin ${admin}\n`);
    const cases = [
      ['untagged', {}],
      ['x-lane: gray', { 'x-lane': 'gray' }],
      ['baggage: lane=gray', { baggage: 'lane=gray' }],
      ['user-agent: graylane-tester (assign rule)', { 'user-agent': 'graylane-tester' }],
      ['x-lane: strict (no endpoints, fallback none)', { 'x-lane': 'strict' }],
      ['x-lane: Not_A_Lane (invalid: dropped)', { 'x-lane': 'Not_A_Lane' }],
    ];
    for (const [name, headers] of cases) {
      const res = await get(`${gateway}/`, headers);
      const { frontend, backend: answer } = JSON.parse(res.body);
      console.log(`${name.padEnd(46)} ${String(res.status).padEnd(4)} ${res.served ?? ''}`);
      console.log(`${''.padEnd(51)}${frontend} -> ${answer.trim()}`);
    }
    console.log(`\nmetrics: ${admin}/metrics (stopping now)`);
  } finally {
    for (const child of children.reverse()) {
      child.kill('SIGTERM');
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    }
    for (const server of backends) server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
