import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RouteTable } from '@graylane/lane-core';
import { type Logger, pino } from 'pino';
import { ControllerErrors } from '../errors.js';
import { AckSchema, badRequest, respondError, WatchQuerySchema } from './publisher-input.js';

export interface PublisherOptions {
  /** An empty line this often on every watch stream, so that a proxy notices a dead connection. */
  heartbeatMs?: number;
  logger?: Logger;
  /** How long `waitApplied` waits when not told otherwise. */
  ackTimeoutMs?: number;
}

export interface WatcherInfo {
  proxy: string | undefined;
  remote: string;
  connectedAt: string;
  sentRevision: number;
  appliedRevision: number | undefined;
}

export interface AppliedResult {
  applied: string[];
  missing: string[];
}

interface Watcher {
  readonly proxy: string | undefined;
  readonly remote: string;
  readonly connectedAt: string;
  readonly res: ServerResponse;
  /** The newest revision written to the socket (-1: none yet). */
  sentRevision: number;
  /** The socket's buffer is full: tables wait for `drain`, and only the newest is then sent. */
  blocked: boolean;
}

interface Waiter {
  revision: number;
  /** The watching proxies yet to acknowledge `revision`, kept up to date so an ack costs O(1). */
  missing: Set<string>;
  settle(): void;
}

/**
 * Serves route tables to proxies: `GET /v1/routetable` (the current table) and its watch, a stream of
 * newline-delimited whole tables, first the current one, then one per `publish`. A proxy says which
 * revision it applied (`POST /v1/routetable/acks`), so a release can wait until every watching proxy
 * serves a revision before it stops what the previous one routed to.
 *
 * Each table is serialised once per publish, not once per watcher. Since every line is a whole table,
 * a watcher whose socket is not draining may skip to the newest one: it holds at most one table in
 * its socket buffer and none here, however slowly it reads (Kubernetes' watch cache drops slow
 * watchers instead; skipping is possible here because nothing is a delta).
 */
export class RouteTablePublisher {
  readonly heartbeatMs: number;
  private readonly ackTimeoutMs: number;
  private readonly logger: Logger;
  private table: RouteTable | undefined;
  /** The current table as one ndjson line, encoded once: every watcher gets the same bytes. */
  private line = Buffer.alloc(0);
  private readonly streams = new Set<Watcher>();
  /** The newest revision each watching proxy acknowledged (or said it had when it connected). */
  private readonly applied = new Map<string, number>();
  private readonly waiters = new Set<Waiter>();
  private heartbeat: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: PublisherOptions = {}) {
    this.heartbeatMs = options.heartbeatMs ?? 5_000;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 30_000;
    this.logger = options.logger ?? pino({ level: 'silent' });
  }

  get current(): RouteTable | undefined {
    return this.table;
  }

  /** Sends a table (validated by the caller) to every watcher. Revisions only go up. */
  publish(table: RouteTable): void {
    if (this.table && table.revision <= this.table.revision) {
      throw new RangeError(
        `route table revision ${table.revision} is not above the current ${this.table.revision}`,
      );
    }
    this.table = table;
    this.line = Buffer.from(`${JSON.stringify(table)}\n`);
    for (const watcher of this.streams) this.send(watcher);
    this.logger.info(
      { revision: table.revision, watchers: this.streams.size },
      'route table published',
    );
  }

  handleGet(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void {
    const parsed = WatchQuerySchema.safeParse(Object.fromEntries(query));
    if (!parsed.success) {
      badRequest(res, parsed.error, 'query');
      return;
    }
    const { watch, sinceRevision, proxy } = parsed.data;
    if (!watch) {
      if (!this.table) {
        respondError(
          res,
          ControllerErrors.noRouteTable.status,
          ControllerErrors.noRouteTable.code,
          'no route table published yet',
        );
        return;
      }
      res.writeHead(200, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': this.line.length,
        'cache-control': 'no-store',
      });
      res.end(this.line);
      return;
    }
    if (this.closed) {
      respondError(
        res,
        ControllerErrors.shuttingDown.status,
        ControllerErrors.shuttingDown.code,
        'the controller is shutting down',
      );
      return;
    }
    this.openWatch(req, res, proxy, sinceRevision);
  }

  handleAck(_req: IncomingMessage, res: ServerResponse, body: unknown): void {
    const parsed = AckSchema.safeParse(body);
    if (!parsed.success) {
      badRequest(res, parsed.error, 'body');
      return;
    }
    const { proxy, revision } = parsed.data;
    // Only proxies that are watching are waited for, so an ack from any other is not kept.
    const known = this.applied.get(proxy);
    if (known !== undefined && revision > known) {
      this.logger.debug({ proxy, revision }, 'route table applied by proxy');
      this.record(proxy, revision);
    }
    res.writeHead(204);
    res.end();
  }

  watchers(): WatcherInfo[] {
    return [...this.streams].map((w) => ({
      proxy: w.proxy,
      remote: w.remote,
      connectedAt: w.connectedAt,
      sentRevision: w.sentRevision,
      appliedRevision: w.proxy === undefined ? undefined : this.applied.get(w.proxy),
    }));
  }

  /**
   * Resolves once every proxy watching with a proxy id has acknowledged `revision` or a later one, or
   * at the timeout, saying which have and which have not. A proxy that stops watching is no longer
   * waited for. Rejects with the signal's reason when aborted.
   */
  waitApplied(
    revision: number,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<AppliedResult> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const finish = (outcome: () => void) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(waiter);
        outcome();
      };
      const waiter: Waiter = {
        revision,
        missing: new Set(this.appliedState(revision).missing),
        settle: () => {
          if (waiter.missing.size === 0) finish(() => resolve(this.appliedState(revision)));
        },
      };
      const timer = setTimeout(
        () => finish(() => resolve(this.appliedState(revision))),
        options.timeoutMs ?? this.ackTimeoutMs,
      );
      const onAbort = () => finish(() => reject(signal?.reason));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
      waiter.settle();
    });
  }

  /** Ends every watch stream; proxies reconnect to whatever serves the route table next. */
  close(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    for (const watcher of this.streams) watcher.res.end();
  }

  private openWatch(
    req: IncomingMessage,
    res: ServerResponse,
    proxy: string | undefined,
    sinceRevision: number | undefined,
  ): void {
    const watcher: Watcher = {
      proxy,
      remote: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
      connectedAt: new Date().toISOString(),
      res,
      sentRevision: sinceRevision ?? -1,
      blocked: false,
    };
    res.writeHead(200, {
      'content-type': 'application/x-ndjson',
      'cache-control': 'no-store',
      'x-graylane-heartbeat-ms': String(this.heartbeatMs),
    });
    // Headers go out now, not with the first table, so a proxy knows at once it is watching.
    res.flushHeaders();
    req.socket.setNoDelay(true);
    res.on('drain', () => {
      watcher.blocked = false;
      this.send(watcher);
    });
    res.once('close', () => this.closeWatch(watcher));
    this.streams.add(watcher);
    // A proxy that says which revision it has, has applied it.
    if (proxy !== undefined) {
      this.record(proxy, Math.max(this.applied.get(proxy) ?? -1, sinceRevision ?? -1));
    }
    this.startHeartbeat();
    this.logger.info(
      { proxy, remote: watcher.remote, sinceRevision, watchers: this.streams.size },
      'route table watch opened',
    );
    this.send(watcher);
  }

  private closeWatch(watcher: Watcher): void {
    this.streams.delete(watcher);
    const { proxy } = watcher;
    if (proxy !== undefined && ![...this.streams].some((w) => w.proxy === proxy)) {
      this.record(proxy, undefined);
    }
    if (this.streams.size === 0) {
      clearInterval(this.heartbeat);
      this.heartbeat = undefined;
    }
    this.logger.info(
      { proxy, remote: watcher.remote, watchers: this.streams.size },
      'route table watch closed',
    );
  }

  /** Writes the current table to a watcher that lacks it, unless its socket is still full. */
  private send(watcher: Watcher): void {
    const table = this.table;
    if (!table || watcher.blocked || watcher.sentRevision >= table.revision) return;
    watcher.sentRevision = table.revision;
    watcher.blocked = !watcher.res.write(this.line);
  }

  private startHeartbeat(): void {
    if (this.heartbeat) return;
    // One timer for every stream: a heartbeat that finds a full socket is not needed there.
    this.heartbeat = setInterval(() => {
      for (const watcher of this.streams) {
        if (!watcher.blocked) watcher.blocked = !watcher.res.write('\n');
      }
    }, this.heartbeatMs);
    this.heartbeat.unref();
  }

  private appliedState(revision: number): AppliedResult {
    const applied: string[] = [];
    const missing: string[] = [];
    for (const [proxy, known] of this.applied) (known >= revision ? applied : missing).push(proxy);
    return { applied, missing };
  }

  /** What a watching proxy has applied (undefined: it stopped watching), and who waits on it. */
  private record(proxy: string, applied: number | undefined): void {
    if (applied === undefined) this.applied.delete(proxy);
    else this.applied.set(proxy, applied);
    for (const waiter of [...this.waiters]) {
      if (applied === undefined || applied >= waiter.revision) waiter.missing.delete(proxy);
      else waiter.missing.add(proxy);
      waiter.settle();
    }
  }
}
