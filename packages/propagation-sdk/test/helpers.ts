import http from 'node:http';
import type https from 'node:https';
import type { AddressInfo } from 'node:net';

/** What an echo server saw: the lane header and the baggage header of one request. */
export interface Seen {
  lane: string | null;
  baggage: string | null;
  id: string | null;
}

/** Listens on 127.0.0.1 on an ephemeral port; resolves to the base URL. */
export async function listen(server: http.Server | https.Server, scheme = 'http'): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return `${scheme}://127.0.0.1:${port}`;
}

export async function close(server: http.Server | https.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

function header(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(',') : value;
}

/** The handler of the last hop: answers with the tag it received. */
export function echo(req: http.IncomingMessage, res: http.ServerResponse): void {
  const seen: Seen = {
    lane: header(req.headers['x-lane']),
    baggage: header(req.headers.baggage),
    id: header(req.headers['x-request-id']),
  };
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(seen));
}

export function readBody(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      body += chunk;
    });
    res.on('end', () => resolve(body));
    res.on('error', reject);
  });
}

/** A GET with node:http that resolves to the parsed JSON body. */
export function getJson<T>(url: string, headers: Record<string, string> = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { headers, agent: false }, (res) => {
      readBody(res).then((body) => resolve(JSON.parse(body) as T), reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export { selfSignedCert } from '../../../test/support/tls.js';
