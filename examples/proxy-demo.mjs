#!/usr/bin/env node
// The data-plane demo: one graylane-proxy (gateway + outbound sidecar) in front of two services, each
// with a stable (v1) and a gray (v2) version. Tagged and untagged requests go in at the gateway; each
// line shows which version of each service served it, as the proxy reports in `x-lane-served`.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../packages/router-proxy/dist/main.js', import.meta.url));

function listen(server) {
  server.listen(0, '127.0.0.1');
  return once(server, 'listening').then(() => `http://127.0.0.1:${server.address().port}`);
}

/** A backend version: answers with its name. */
function backend(version) {
  return createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`backend ${version}`);
  });
}

/**
 * A frontend version: calls the backend through the sidecar by service name, forwarding the lane
 * header (what @graylane/sdk does for an app), and relays the backend's `x-lane-served`.
 */
function frontend(version, sidecar) {
  return createServer((req, res) => {
    const lane = req.headers['x-lane'];
    const call = httpRequest(
      `${sidecar()}/`,
      { headers: { host: 'backend', ...(lane ? { 'x-lane': lane } : {}) } },
      (upstream) => {
        let body = '';
        upstream.on('data', (c) => {
          body += c;
        });
        upstream.on('end', () => {
          res.writeHead(upstream.statusCode, {
            'content-type': 'text/plain',
            'x-lane-served': upstream.headers['x-lane-served'] ?? '',
          });
          res.end(`frontend ${version} -> ${body}`);
        });
      },
    );
    call.on('error', (error) => {
      res.writeHead(502);
      res.end(String(error));
    });
    call.end();
  });
}

async function startProxy(tableFile) {
  const child = spawn(
    process.execPath,
    [
      BIN,
      '--route-table',
      tableFile,
      '--gateway',
      '127.0.0.1:0',
      '--outbound',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const listeners = {};
  let buffer = '';
  await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`graylane-proxy exited with ${code}`)));
    child.stdout.on('data', (chunk) => {
      buffer += chunk;
      for (let nl = buffer.indexOf('\n'); nl !== -1; nl = buffer.indexOf('\n')) {
        const line = JSON.parse(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        if (line.msg === 'listening') {
          listeners[line.listener] = `http://${line.address.host}:${line.address.port}`;
          if (Object.keys(listeners).length === 3) resolve();
        }
      }
    });
  });
  return { child, listeners };
}

function get(url, headers) {
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

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'graylane-demo-'));
  let proxy;
  const servers = [];
  const start = async (server) => {
    servers.push(server);
    return listen(server);
  };
  try {
    const urls = {
      backendV1: await start(backend('v1')),
      backendV2: await start(backend('v2')),
      frontendV1: await start(frontend('v1', () => proxy.listeners.outbound)),
      frontendV2: await start(frontend('v2', () => proxy.listeners.outbound)),
    };
    const tableFile = join(dir, 'routes.yaml');
    writeFileSync(
      tableFile,
      `apiVersion: graylane/v1
revision: 1
services:
  frontend:
    stable: { version: v1, endpoints: ["${urls.frontendV1}"] }
    lanes:
      gray: { version: v2, endpoints: ["${urls.frontendV2}"] }
  backend:
    stable: { version: v1, endpoints: ["${urls.backendV1}"] }
    lanes:
      gray: { version: v2, endpoints: ["${urls.backendV2}"] }
      strict: { endpoints: [], fallback: none }
entrypoints:
  - name: shop
    service: frontend
    clientLanes: known
    assign:
      - lane: gray
        when: { headers: { user-agent: { exact: graylane-tester } } }
`,
    );
    proxy = await startProxy(tableFile);
    console.log(
      `graylane-proxy: gateway ${proxy.listeners.gateway}, sidecar ${proxy.listeners.outbound}, admin ${proxy.listeners.admin}\n`,
    );
    const cases = [
      ['untagged', {}],
      ['x-lane: gray', { 'x-lane': 'gray' }],
      ['baggage: lane=gray', { baggage: 'lane=gray' }],
      ['user-agent: graylane-tester (assign rule)', { 'user-agent': 'graylane-tester' }],
      ['x-lane: strict (no endpoints, fallback none)', { 'x-lane': 'strict' }],
      ['x-lane: Not_A_Lane (invalid: dropped)', { 'x-lane': 'Not_A_Lane' }],
    ];
    for (const [name, headers] of cases) {
      const res = await get(`${proxy.listeners.gateway}/`, headers);
      console.log(`${name.padEnd(46)} ${String(res.status).padEnd(4)} ${res.served ?? ''}`);
      console.log(`${''.padEnd(46)}      ${res.body.trim().split('\n')[0]}`);
    }
    console.log(`\nmetrics: ${proxy.listeners.admin}/metrics (stopping now)`);
  } finally {
    proxy?.child.kill('SIGTERM');
    if (proxy) await once(proxy.child, 'exit');
    for (const server of servers) server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
