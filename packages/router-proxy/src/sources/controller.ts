import {
  GraylaneError,
  parseRouteTable,
  type RouteTable,
  RouteTableParseError,
} from '@graylane/lane-core';
import { Agent, request } from 'undici';
import type { Logger } from '../logger.js';
import type { RouteTableEvents, RouteTableSource } from './source.js';

export interface ControllerSourceOptions {
  /** Names this proxy to the controller, which waits for the proxies it knows by id. */
  proxyId: string;
  /** Sent as `authorization: Bearer <token>` on the watch and the acks. */
  token?: string;
  logger: Logger;
  /** How long `start` waits for the first table; past it the proxy starts without one. */
  startTimeoutMs?: number;
  /** Reconnect delays: full jitter over `baseMs` doubling per failure, capped at `maxMs`. */
  backoff?: { baseMs?: number; maxMs?: number };
  /** A line (one table) past this size ends the connection instead of being buffered. */
  maxLineBytes?: number;
}

/** The controller says its heartbeat in `x-graylane-heartbeat-ms`; this is assumed when it does not. */
const DEFAULT_HEARTBEAT_MS = 5_000;
/** Silence for this many heartbeats means the connection is dead (a half-open TCP connection is silent). */
const MISSED_HEARTBEATS = 3;

export const SourceErrorCodes = {
  /** The controller answered with an error status, or the stream broke its framing. */
  watch: 'GRAYLANE_ERR_ROUTE_TABLE_WATCH',
} as const;

/**
 * The route table from the controller's watch (`GET <url>?watch=true`): newline-delimited whole
 * tables, empty lines as heartbeats. Each table is validated before it is applied, a refused one
 * leaves the last good table in place, and a revision at or below the applied one is never applied,
 * so a proxy never goes back even when a restarted controller or a replayed line offers it. Each
 * applied revision is acknowledged (`POST <url>/acks`) so the controller knows when every proxy
 * serves it. While the controller is away the proxy serves what it has and reconnects with
 * exponential backoff and full jitter (the AWS Architecture Blog's "Exponential Backoff and
 * Jitter"), so many proxies do not reconnect in step after a controller restart.
 */
export class ControllerRouteTableSource implements RouteTableSource {
  private readonly url: URL;
  private readonly ackUrl: URL;
  private readonly agent: Agent;
  private applied = -1;
  private failures = 0;
  private stopped = false;
  private connection: AbortController | undefined;
  private pause: { timer: NodeJS.Timeout; resolve(): void } | undefined;
  private firstTable: (() => void) | undefined;

  constructor(
    url: string | URL,
    private readonly events: RouteTableEvents,
    private readonly options: ControllerSourceOptions,
  ) {
    this.url = new URL(url);
    this.ackUrl = new URL(this.url);
    this.ackUrl.pathname = `${this.url.pathname.replace(/\/$/, '')}/acks`;
    this.ackUrl.search = '';
    // The watch is bounded by the heartbeat check below, not by undici's body timeout.
    this.agent = new Agent({ connect: { timeout: 2_000 }, headersTimeout: 10_000, bodyTimeout: 0 });
  }

  /** The revision applied last, or undefined before the first table. */
  get appliedRevision(): number | undefined {
    return this.applied < 0 ? undefined : this.applied;
  }

  async start(): Promise<void> {
    const first = new Promise<void>((resolve) => {
      this.firstTable = resolve;
    });
    void this.run();
    const bound = this.options.startTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, bound);
    });
    await Promise.race([first, waited]);
    clearTimeout(timer);
    if (this.applied < 0 && !this.stopped) {
      this.options.logger.warn(
        { source: this.url.href, waitedMs: bound },
        'no route table from the controller yet; serving 503 until one arrives',
      );
    }
  }

  stop(): void {
    this.stopped = true;
    this.connection?.abort();
    if (this.pause) {
      clearTimeout(this.pause.timer);
      this.pause.resolve();
    }
    this.firstTable?.();
    void this.agent.destroy().catch(() => {});
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.watch();
        if (!this.stopped) {
          this.options.logger.warn(
            { source: this.url.href },
            'route table watch ended by the controller',
          );
        }
      } catch (error) {
        if (this.stopped) return;
        this.options.logger.warn(
          { source: this.url.href, err: error, failures: this.failures + 1 },
          'route table watch failed; serving the last good table',
        );
      }
      if (this.stopped) return;
      await this.backoff();
    }
  }

  private backoff(): Promise<void> {
    const base = this.options.backoff?.baseMs ?? 100;
    const max = this.options.backoff?.maxMs ?? 5_000;
    const ceiling = Math.min(max, base * 2 ** Math.min(this.failures, 30));
    this.failures += 1;
    return new Promise((resolve) => {
      this.pause = { timer: setTimeout(resolve, Math.random() * ceiling), resolve };
    });
  }

  /** One watch connection, until the controller ends it, it breaks, or it goes silent. */
  private async watch(): Promise<void> {
    const connection = new AbortController();
    this.connection = connection;
    const url = new URL(this.url);
    url.searchParams.set('watch', 'true');
    if (this.applied >= 0) url.searchParams.set('sinceRevision', String(this.applied));
    url.searchParams.set('proxy', this.options.proxyId);
    const { statusCode, headers, body } = await request(url, {
      dispatcher: this.agent,
      signal: connection.signal,
      headers: this.headers(),
    });
    const type = String(headers['content-type'] ?? '');
    if (statusCode !== 200 || !type.startsWith('application/x-ndjson')) {
      // Not a watch (an error, or a URL that is something else): a failed attempt, backed off.
      const text = await body.text().catch(() => '');
      throw new GraylaneError(
        SourceErrorCodes.watch,
        `${this.url.href} answered ${statusCode} ${type || 'without a content-type'}: ${text.slice(0, 200).trim()}`,
      );
    }
    this.failures = 0;
    this.options.logger.info(
      { source: this.url.href, sinceRevision: this.appliedRevision },
      'route table watch connected',
    );
    const heartbeatMs = Number(headers['x-graylane-heartbeat-ms']) || DEFAULT_HEARTBEAT_MS;
    const silence = setTimeout(
      () => connection.abort(new Error(`no heartbeat for ${MISSED_HEARTBEATS * heartbeatMs} ms`)),
      MISSED_HEARTBEATS * heartbeatMs,
    );
    const maxLine = this.options.maxLineBytes ?? 16 * 1024 * 1024;
    body.setEncoding('utf8');
    let pending = '';
    try {
      for await (const chunk of body as AsyncIterable<string>) {
        silence.refresh();
        pending += chunk;
        for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          if (line.trim() !== '') this.receive(line);
        }
        if (pending.length > maxLine) {
          throw new GraylaneError(
            SourceErrorCodes.watch,
            `${this.url.href}: a route table line over ${maxLine} bytes`,
          );
        }
      }
    } finally {
      clearTimeout(silence);
      if (!connection.signal.aborted) connection.abort();
    }
  }

  private receive(line: string): void {
    let table: RouteTable;
    try {
      let document: unknown;
      try {
        document = JSON.parse(line);
      } catch (error) {
        throw new RouteTableParseError(`${this.url.href}: ${(error as Error).message}`, {
          cause: error,
        });
      }
      table = parseRouteTable(document, this.url.href);
    } catch (error) {
      this.events.onError(error as GraylaneError);
      return;
    }
    if (table.revision <= this.applied) {
      this.options.logger.warn(
        { source: this.url.href, revision: table.revision, applied: this.applied },
        'route table revision not above the applied one; ignored',
      );
      return;
    }
    try {
      this.events.onTable(table);
    } catch (error) {
      this.events.onError(
        error instanceof GraylaneError
          ? error
          : new GraylaneError(SourceErrorCodes.watch, String(error), { cause: error }),
      );
      return;
    }
    this.applied = table.revision;
    this.firstTable?.();
    void this.acknowledge(table.revision);
  }

  private async acknowledge(revision: number): Promise<void> {
    try {
      const { statusCode, body } = await request(this.ackUrl, {
        method: 'POST',
        dispatcher: this.agent,
        headers: { ...this.headers(), 'content-type': 'application/json' },
        body: JSON.stringify({ proxy: this.options.proxyId, revision }),
      });
      await body.dump();
      if (statusCode >= 300) {
        this.options.logger.warn({ source: this.ackUrl.href, statusCode, revision }, 'ack refused');
      }
    } catch (error) {
      // The next watch says the applied revision (sinceRevision), which stands for a lost ack.
      if (!this.stopped) {
        this.options.logger.debug({ source: this.ackUrl.href, err: error, revision }, 'ack failed');
      }
    }
  }

  private headers(): Record<string, string> {
    return this.options.token ? { authorization: `Bearer ${this.options.token}` } : {};
  }
}
