import type { IncomingMessage } from 'node:http';
import { SETTINGS_DEFAULTS } from '../settings.js';

/** Why a request body was given up on: too long in all, or nothing new for too long. */
export type BodyExpiry = 'body_timeout' | 'body_idle';

export interface BodyLimits {
  /** The whole request body must have arrived this long after its head. */
  requestBodyTimeoutMs: number;
  /** The client may send nothing for this long while the proxy waits for its body. */
  requestBodyIdleTimeoutMs: number;
}

export const DEFAULT_BODY_LIMITS: BodyLimits = {
  requestBodyTimeoutMs: SETTINGS_DEFAULTS.server.requestBodyTimeoutMs,
  requestBodyIdleTimeoutMs: SETTINGS_DEFAULTS.server.requestBodyIdleTimeoutMs,
};

interface Watched {
  req: IncomingMessage;
  started: number;
  bytes: number;
  changed: number;
  onExpire(reason: BodyExpiry): void;
}

/**
 * Deadlines for request bodies, on one shared timer (Node's own `requestTimeout` answers with a
 * raw 408 behind the handler's back, and cannot tell an idle client). Progress is read from the
 * socket's `bytesRead`, which counts bytes the parser took whether or not anyone reads the body, so
 * watching costs no `data` listener. While bytes wait in the request's buffer the slow side is the
 * proxy (an upstream not reading), not the client, and the idle clock does not run.
 */
export class BodyWatcher {
  private readonly watched = new Set<Watched>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly limits: BodyLimits) {}

  /** Calls `onExpire` once if the body is not complete in time; returns the function to stop. */
  watch(req: IncomingMessage, onExpire: (reason: BodyExpiry) => void): () => void {
    if (req.complete) return () => {};
    const now = Date.now();
    const entry: Watched = {
      req,
      started: now,
      bytes: req.socket?.bytesRead ?? 0,
      changed: now,
      onExpire,
    };
    this.watched.add(entry);
    this.timer ??= setInterval(() => this.check(), this.interval()).unref();
    return () => this.forget(entry);
  }

  get size(): number {
    return this.watched.size;
  }

  private interval(): number {
    const shortest = Math.min(
      this.limits.requestBodyTimeoutMs,
      this.limits.requestBodyIdleTimeoutMs,
    );
    return Math.min(1_000, Math.max(25, shortest / 4));
  }

  private forget(entry: Watched): void {
    // The timer stays until a tick finds nothing to watch: stopping it whenever the last body
    // arrived cost a timer per request on a quiet listener (issue 21).
    this.watched.delete(entry);
  }

  private check(): void {
    if (this.watched.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    const now = Date.now();
    for (const entry of this.watched) {
      const { req } = entry;
      if (req.complete || req.destroyed) {
        this.forget(entry);
        continue;
      }
      const bytes = req.socket?.bytesRead ?? entry.bytes;
      if (bytes !== entry.bytes || req.readableLength > 0) {
        entry.bytes = bytes;
        entry.changed = now;
      }
      let reason: BodyExpiry | undefined;
      if (now - entry.started >= this.limits.requestBodyTimeoutMs) reason = 'body_timeout';
      else if (now - entry.changed >= this.limits.requestBodyIdleTimeoutMs) reason = 'body_idle';
      if (reason) {
        this.forget(entry);
        entry.onExpire(reason);
      }
    }
  }
}
