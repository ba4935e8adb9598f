/**
 * Weighted assignment. A sticky key hashes to a bucket in 0..9999 and is in the lane when its bucket is
 * below weight × 100, so raising the weight only ever adds keys (monotone), never reshuffles them.
 * The lane salts the hash so that two rules with the same key do not pick the same slice of users.
 */

export const BUCKETS = 10_000;

/** FNV-1a, 32 bit: fast, well spread for short keys, and the same on every proxy. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  // A final avalanche (murmur3's fmix32): FNV's low bits alone are weak for a modulo.
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

export function stickyBucket(key: string, lane: string): number {
  return fnv1a(`${lane}\u0000${key}`) % BUCKETS;
}

export function inWeight(bucket: number, weightPercent: number): boolean {
  return bucket < Math.round(weightPercent * 100);
}

/**
 * A per-request split without a key. Error diffusion instead of Math.random(): over any N requests the
 * lane gets N × weight / 100 of them to within one request, where a coin flip drifts by √N.
 */
export class WeightedSplitter {
  private credit: number;

  constructor(initialCredit = Math.random()) {
    this.credit = initialCredit;
  }

  next(weightPercent: number): boolean {
    this.credit += weightPercent / 100;
    if (this.credit >= 1) {
      this.credit -= 1;
      return true;
    }
    return false;
  }
}
