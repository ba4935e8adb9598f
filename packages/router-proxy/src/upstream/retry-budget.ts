/**
 * A retry budget in the manner of Linkerd: retries may add at most `ratio` of the requests seen over
 * a sliding window, plus a small floor so that a quiet service can still retry. A dead dependency
 * therefore costs at most (1 + ratio) × its traffic, never a retry storm.
 */
export interface RetryBudgetOptions {
  /** Share of requests that may be retried (0.2 = 20 %). */
  ratio: number;
  windowMs: number;
  /** Retries always allowed per window, whatever the traffic. */
  minRetries: number;
}

const BUCKETS = 10;

class Window {
  private readonly requests = new Array<number>(BUCKETS).fill(0);
  private readonly retries = new Array<number>(BUCKETS).fill(0);
  private bucket = 0;
  private bucketStart = 0;

  constructor(private readonly bucketMs: number) {}

  private advance(now: number): void {
    if (this.bucketStart === 0) this.bucketStart = now;
    const steps = Math.floor((now - this.bucketStart) / this.bucketMs);
    if (steps <= 0) return;
    for (let i = 0; i < Math.min(steps, BUCKETS); i++) {
      this.bucket = (this.bucket + 1) % BUCKETS;
      this.requests[this.bucket] = 0;
      this.retries[this.bucket] = 0;
    }
    this.bucketStart += steps * this.bucketMs;
  }

  addRequest(now: number): void {
    this.advance(now);
    this.requests[this.bucket]!++;
  }

  addRetry(now: number): void {
    this.advance(now);
    this.retries[this.bucket]!++;
  }

  totals(now: number): { requests: number; retries: number } {
    this.advance(now);
    const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
    return { requests: sum(this.requests), retries: sum(this.retries) };
  }
}

export class RetryBudget {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly options: RetryBudgetOptions,
    private readonly now: () => number = Date.now,
  ) {}

  private window(service: string): Window {
    let window = this.windows.get(service);
    if (!window) {
      window = new Window(this.options.windowMs / BUCKETS);
      this.windows.set(service, window);
    }
    return window;
  }

  recordRequest(service: string): void {
    this.window(service).addRequest(this.now());
  }

  /** Takes one retry from the budget if there is one left; false means do not retry. */
  tryRetry(service: string): boolean {
    const window = this.window(service);
    const { requests, retries } = window.totals(this.now());
    if (retries >= requests * this.options.ratio + this.options.minRetries) return false;
    window.addRetry(this.now());
    return true;
  }
}
