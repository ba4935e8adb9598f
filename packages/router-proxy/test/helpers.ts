import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import {
  type Agent,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RouteTableInput } from '@graylane/lane-core';
import { parseRouteTable } from '@graylane/lane-core';
import { request as undiciRequest } from 'undici';
import { defaultRuntimeOptions, GraylaneProxy, type ProxyOptions } from '../src/index.js';
import { createLogger } from '../src/logger.js';

export interface Upstream {
  name: string;
  url: string;
  server: Server;
  requests: Array<{ method: string; url: string; headers: IncomingMessage['headers'] }>;
  close(): Promise<void>;
}

/** A real HTTP server that answers with who it is and what it received. */
export async function startUpstream(
  name: string,
  handler?: (req: IncomingMessage, res: ServerResponse, upstream: Upstream) => void,
): Promise<Upstream> {
  const requests: Upstream['requests'] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (handler) return handler(req, res, upstream);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify({
        upstream: name,
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name });
      res.end(body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const upstream: Upstream = {
    name,
    url: `http://127.0.0.1:${port}`,
    server,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return upstream;
}

export function table(input: Omit<RouteTableInput, 'apiVersion'> & { apiVersion?: 'graylane/v1' }) {
  return parseRouteTable({ apiVersion: 'graylane/v1', ...input });
}

type EntrypointInput = NonNullable<RouteTableInput['entrypoints']>[number];

/**
 * A table of one service, `name`, with its stable endpoint, lanes (name → endpoint), and one
 * entrypoint to it for every request (`entrypoint` adds to it: clientLanes, a secret, …).
 */
export function serviceTable(
  name: string,
  stable: string,
  options: { lanes?: Record<string, string>; entrypoint?: Partial<EntrypointInput> } = {},
) {
  const lanes = Object.fromEntries(
    Object.entries(options.lanes ?? {}).map(([lane, url]) => [lane, { endpoints: [url] }]),
  );
  return table({
    revision: 1,
    services: { [name]: { stable: { endpoints: [stable] }, lanes } },
    entrypoints: [{ name, service: name, ...options.entrypoint }],
  });
}

/** Upstream deadlines short enough for a test to wait them out; `overrides` is what it measures. */
export function upstreamTimeouts(
  overrides: Partial<ProxyOptions['runtime']['upstream']> = {},
): ProxyOptions['runtime']['upstream'] {
  return {
    ...defaultRuntimeOptions().upstream,
    connectTimeoutMs: 1_000,
    headersTimeoutMs: 5_000,
    bodyTimeoutMs: 5_000,
    requestTimeoutMs: 5_000,
    keepAliveTimeoutMs: 4_000,
    ...overrides,
  };
}

export async function startProxy(
  options: Partial<Omit<ProxyOptions, 'runtime'>> & { runtime?: Partial<ProxyOptions['runtime']> },
): Promise<GraylaneProxy> {
  const { runtime, ...rest } = options;
  const proxy = new GraylaneProxy({
    gateway: { host: '127.0.0.1', port: 0 },
    outbound: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    drainTimeoutMs: 2_000,
    server: { headersTimeoutMs: 5_000, keepAliveTimeoutMs: 5_000 },
    logger: createLogger((process.env.GRAYLANE_TEST_LOG as 'info') ?? 'silent'),
    ...rest,
    runtime: { ...defaultRuntimeOptions(), ...runtime },
  });
  await proxy.start();
  return proxy;
}

export function tempDir(): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), 'graylane-'));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

export async function getJson(url: string, init?: RequestInit) {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { res, body };
}

/** Reads one sample of a metric from the admin listener's /metrics text. */
export async function metricValue(
  proxy: GraylaneProxy,
  name: string,
  labels: Record<string, string> = {},
) {
  const text = await proxy.metrics.registry.metrics();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const matches = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (matches) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/**
 * An app that calls the next service through the sidecar and forwards the lane header, as a service
 * with the propagation SDK does; it answers with its own name and what the next hop answered.
 */
export async function startChainApp(
  name: string,
  next: string | undefined,
  outbound: () => string,
) {
  return startUpstream(name, (req, res) => {
    const lane = req.headers['x-lane'];
    if (!next) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ path: [name], lane: lane ?? null }));
      return;
    }
    // undici (unlike fetch) may set Host: the app addresses the sidecar by service name.
    undiciRequest(`${outbound()}${req.url}`, {
      headers: { host: next, ...(typeof lane === 'string' ? { 'x-lane': lane } : {}) },
    })
      .then(async (r) => {
        const text = await r.body.text();
        const served = r.headers['x-lane-served'];
        if (r.statusCode !== 200) {
          res.writeHead(r.statusCode, served ? { 'x-lane-served': served } : {});
          res.end(text);
          return;
        }
        const downstream = JSON.parse(text) as { path: string[] };
        res.writeHead(200, {
          'content-type': 'application/json',
          ...(served ? { 'x-lane-served': served } : {}),
        });
        res.end(JSON.stringify({ path: [name, ...downstream.path], lane: lane ?? null }));
      })
      .catch((error: Error) => {
        res.writeHead(500);
        res.end(error.message);
      });
  });
}

export interface Sent {
  status: number;
  headers: IncomingMessage['headers'];
  text: string;
  json<T = Record<string, unknown>>(): T;
}

/** A request over node:http, which (unlike fetch) may send any header: Host, Connection, TE. */
export function send(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; agent?: Agent } = {},
): Promise<Sent> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            json: <T>() => JSON.parse(text) as T,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

export interface BinRun {
  child: ChildProcess;
  listeners: Record<string, string>;
  exit: Promise<{ code: number | null; stderr: string }>;
}

/** Runs the built bin and waits until every listener it was given reports its address. */
export async function runBin(
  args: string[],
  env: Record<string, string> = {},
  expected = 2,
): Promise<BinRun> {
  const child = spawn(process.execPath, [BIN, ...args], {
    // No load balancer stands in front of a test's proxy: no deregistration window to wait out.
    env: { PATH: process.env.PATH ?? '', GRAYLANE_DRAIN_DELAY_MS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exit = once(child, 'exit').then(([code]) => ({ code: code as number | null, stderr }));
  const listeners: Record<string, string> = {};
  await new Promise<void>((resolve, reject) => {
    let buffer = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      for (let nl = buffer.indexOf('\n'); nl !== -1; nl = buffer.indexOf('\n')) {
        const line = JSON.parse(buffer.slice(0, nl)) as {
          msg: string;
          listener?: string;
          address?: { host: string; port: number };
        };
        buffer = buffer.slice(nl + 1);
        if (line.msg === 'listening' && line.listener && line.address) {
          listeners[line.listener] = `http://${line.address.host}:${line.address.port}`;
          if (Object.keys(listeners).length === expected) resolve();
        }
      }
    });
    exit.then(({ code }) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  return { child, listeners, exit };
}
