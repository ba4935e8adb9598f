import { performance } from 'node:perf_hooks';

/** A deadline in a DeadlineQueue; `clear` it when what it guards is over. */
export interface Deadline {
  clear(): void;
}

class Entry implements Deadline {
  prev: Entry | undefined;
  next: Entry | undefined;
  queued = true;

  constructor(
    readonly at: number,
    readonly onExpire: () => void,
    private readonly queue: DeadlineQueue,
  ) {}

  clear(): void {
    this.queue.remove(this);
  }
}

/**
 * Deadlines of one length: they expire in the order they were set, so a list and one timer armed
 * for its first keep them all, and setting or clearing one is a few pointer moves. Two Node timers
 * per forwarded request (the request's deadline, the attempt's response-head deadline) cost about
 * 6 % of the gateway's instructions: a Timeout each, and Node's list per duration created and
 * dropped in a dictionary whenever it empties (issue 21). The timer is unref'd: what a deadline
 * guards (a request, its sockets) keeps the process alive, not the deadline.
 */
export class DeadlineQueue {
  private first: Entry | undefined;
  private last: Entry | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly fire = () => this.expire();

  constructor(readonly ms: number) {}

  /** `onExpire` runs `ms` from now, unless the deadline is cleared first. */
  add(onExpire: () => void): Deadline {
    const entry = new Entry(performance.now() + this.ms, onExpire, this);
    if (this.last) {
      this.last.next = entry;
      entry.prev = this.last;
    } else {
      this.first = entry;
    }
    this.last = entry;
    if (!this.timer) this.arm(entry.at);
    return entry;
  }

  remove(entry: Entry): void {
    if (!entry.queued) return;
    entry.queued = false;
    if (entry.prev) entry.prev.next = entry.next;
    else this.first = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else this.last = entry.prev;
    entry.prev = undefined;
    entry.next = undefined;
    // An armed timer is left: when it fires with nothing due it re-arms for the new first, or
    // stops when there is none. Clearing it here would cost a timer per request again.
  }

  /** Deadlines set and not yet expired or cleared. */
  get size(): number {
    let n = 0;
    for (let entry = this.first; entry; entry = entry.next) n++;
    return n;
  }

  private arm(at: number): void {
    // Node's clock may run a little behind performance.now(): a timer that fires early re-arms.
    this.timer = setTimeout(this.fire, Math.max(1, Math.ceil(at - performance.now())));
    this.timer.unref();
  }

  private expire(): void {
    this.timer = undefined;
    const now = performance.now();
    try {
      while (this.first && this.first.at <= now) {
        const entry = this.first;
        this.remove(entry);
        entry.onExpire();
      }
    } finally {
      if (this.first && !this.timer) this.arm(this.first.at);
    }
  }
}

/** One queue per deadline length, made when a length is first used. */
export class Deadlines {
  private readonly queues = new Map<number, DeadlineQueue>();

  after(ms: number, onExpire: () => void): Deadline {
    let queue = this.queues.get(ms);
    if (!queue) {
      queue = new DeadlineQueue(ms);
      this.queues.set(ms, queue);
    }
    return queue.add(onExpire);
  }
}
