import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RouteTable } from '@graylane/lane-core';
import { isLoopbackAddress } from '../http/addresses.js';
import { REDACTED } from '../logger.js';
import type { ProxyRuntime } from '../runtime.js';

export interface AdminOptions {
  /** The admin listener answers loopback clients only unless this is set. */
  allowRemote: boolean;
  isDraining(): boolean;
  /** Whether the proxy is ready only once a route table is loaded (not so for inbound alone). */
  needsTable?: boolean;
}

export { isLoopbackAddress };

/** The table as the admin listener shows it: every secret replaced, the rest as loaded. */
export function redactTable(table: RouteTable): RouteTable {
  return {
    ...table,
    entrypoints: table.entrypoints.map((entry) =>
      entry.clientLanesSecret
        ? { ...entry, clientLanesSecret: { ...entry.clientLanesSecret, value: REDACTED } }
        : entry,
    ),
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** `/metrics`, `/healthz`, `/readyz` and `/routetable`: what operators and the controller read. */
export function createAdminHandler(runtime: ProxyRuntime, options: AdminOptions) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (!options.allowRemote && !isLoopbackAddress(req.socket.remoteAddress)) {
      json(res, 403, { error: 'the admin listener answers loopback clients only' });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      json(res, 405, { error: 'admin endpoints are read-only' });
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    switch (path) {
      case '/healthz': {
        json(res, 200, { status: 'ok' });
        return;
      }
      case '/readyz': {
        const loaded = runtime.tables.loaded;
        if (options.isDraining()) {
          json(res, 503, { status: 'draining' });
          return;
        }
        if (!loaded) {
          if (options.needsTable === false) json(res, 200, { status: 'ready' });
          else json(res, 503, { status: 'no route table loaded' });
          return;
        }
        json(res, 200, { status: 'ready', revision: loaded.revision });
        return;
      }
      case '/routetable': {
        const current = runtime.tables.current;
        if (!current) {
          json(res, 503, { error: 'no route table loaded' });
          return;
        }
        json(res, 200, { ...runtime.tables.loaded, table: redactTable(current.table) });
        return;
      }
      case '/metrics': {
        runtime.metrics.registry
          .metrics()
          .then((text) => {
            res.writeHead(200, { 'content-type': runtime.metrics.registry.contentType });
            res.end(text);
          })
          .catch((error: unknown) => json(res, 500, { error: String(error) }));
        return;
      }
      default: {
        json(res, 404, { error: `no admin endpoint ${path}` });
        return;
      }
    }
  };
}
