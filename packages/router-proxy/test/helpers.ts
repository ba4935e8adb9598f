import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RouteTableInput } from '@graylane/lane-core';
import { parseRouteTable } from '@graylane/lane-core';
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
