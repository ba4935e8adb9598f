import { request as httpRequest, type IncomingMessage } from 'node:http';
import { parseRouteTable, type RouteTable } from '@graylane/lane-core';

/** A valid route table whose one service routes to `endpoint`. */
export function routeTable(revision: number, endpoint = 'http://127.0.0.1:9001'): RouteTable {
  return parseRouteTable({
    apiVersion: 'graylane/v1',
    revision,
    services: { web: { stable: { endpoints: [endpoint] } } },
    entrypoints: [{ name: 'web', service: 'web' }],
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` returns true; throws with `what` when it has not within `withinMs`. */
export async function waitFor(check: () => boolean, what: string, withinMs = 5_000) {
  const deadline = Date.now() + withinMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${withinMs} ms: ${what}`);
    await sleep(5);
  }
}

export interface WatchClient {
  response: IncomingMessage;
  /** Every line received, heartbeats as ''. */
  lines: string[];
  revisions(): number[];
  heartbeats(): number;
  ended: Promise<void>;
  close(): void;
}

/** A watch over plain node:http: what a proxy receives, line by line. */
export function openWatch(url: string, query: Record<string, string> = {}): Promise<WatchClient> {
  const target = new URL(url);
  target.search = new URLSearchParams({ watch: 'true', ...query }).toString();
  return new Promise((resolve, reject) => {
    const req = httpRequest(target, { agent: false }, (response) => {
      const lines: string[] = [];
      let pending = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        pending += chunk;
        for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
          lines.push(pending.slice(0, nl));
          pending = pending.slice(nl + 1);
        }
      });
      const ended = new Promise<void>((done) => {
        response.once('end', done);
        response.once('close', done);
      });
      resolve({
        response,
        lines,
        revisions: () =>
          lines.filter((l) => l !== '').map((l) => (JSON.parse(l) as RouteTable).revision),
        heartbeats: () => lines.filter((l) => l === '').length,
        ended,
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** POSTs JSON text (or nothing) to the acks route. */
export async function postAck(url: string, body: unknown) {
  const res = await fetch(`${url}/acks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? '' : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text ? (JSON.parse(text) as { error?: Record<string, string> }) : undefined,
  };
}
