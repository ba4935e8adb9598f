import type { LoadBalancing } from '@graylane/lane-core';

/**
 * Endpoint choice within a set. Least-request uses two random choices (Envoy's default): nearly as good
 * as scanning every endpoint, with no herd onto the one that just went idle.
 */
export class Balancer {
  private readonly inFlight = new Map<string, number>();
  private readonly cursors = new Map<string, number>();

  pick(
    endpoints: readonly string[],
    policy: LoadBalancing,
    cursorKey: string,
    exclude?: ReadonlySet<string>,
  ): string | undefined {
    const candidates = exclude?.size ? endpoints.filter((e) => !exclude.has(e)) : endpoints;
    if (candidates.length <= 1) return candidates[0];
    if (policy === 'round-robin') {
      const cursor = this.cursors.get(cursorKey) ?? 0;
      this.cursors.set(cursorKey, (cursor + 1) % candidates.length);
      return candidates[cursor % candidates.length];
    }
    const first = Math.floor(Math.random() * candidates.length);
    let second = Math.floor(Math.random() * (candidates.length - 1));
    if (second >= first) second++;
    const a = candidates[first]!;
    const b = candidates[second]!;
    return this.load(b) < this.load(a) ? b : a;
  }

  load(endpoint: string): number {
    return this.inFlight.get(endpoint) ?? 0;
  }

  /** Marks a request as started on `endpoint`; the returned function marks it done (idempotent). */
  begin(endpoint: string): () => void {
    this.inFlight.set(endpoint, this.load(endpoint) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = this.load(endpoint) - 1;
      if (left <= 0) this.inFlight.delete(endpoint);
      else this.inFlight.set(endpoint, left);
    };
  }
}
