/**
 * The sticky hash written again from its definitions, in BigInt arithmetic rather than Math.imul,
 * and checked in routing-sticky.test.ts against published vectors: FNV-1a 32 (Fowler, Noll, Vo;
 * over UTF-16 code units, which are the bytes for ASCII keys), then murmur3's fmix32 finaliser.
 * Tests compare `stickyBucket` with it, so a pinned value here never comes from the code itself.
 */
const MASK = 0xffffffffn;
export function referenceFnv1a(text: string): bigint {
  let hash = 2166136261n;
  for (let i = 0; i < text.length; i++)
    hash = ((hash ^ BigInt(text.charCodeAt(i))) * 16777619n) & MASK;
  return hash;
}
export function referenceFmix32(value: bigint): bigint {
  let h = value;
  h ^= h >> 16n;
  h = (h * 0x85ebca6bn) & MASK;
  h ^= h >> 13n;
  h = (h * 0xc2b2ae35n) & MASK;
  h ^= h >> 16n;
  return h;
}
export const referenceBucket = (key: string, laneName: string) =>
  Number(referenceFmix32(referenceFnv1a(`${laneName}\u0000${key}`)) % 10_000n);
