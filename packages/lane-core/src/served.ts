/**
 * `x-lane-served`: the path a request took, one hop per proxy, `service=lane` with
 * `;fallback=<reason>` when the hop left the requested lane (`=none`: nothing could serve it). Each
 * hop puts its own before what its upstream reported, so the value reads in call order:
 * `frontend=gray, backend=stable;fallback=absent`. The proxy writes it, the SDK relays it through
 * apps; both use this one format.
 */
export const LANE_SERVED_HEADER = 'x-lane-served';

/** One hop: `service=lane`, or `service=lane;fallback=reason`. */
export function formatHop(service: string, lane: string, fallbackReason?: string): string {
  return fallbackReason ? `${service}=${lane};fallback=${fallbackReason}` : `${service}=${lane}`;
}

/** Printable ASCII without leading or trailing space: what can go back on the wire as is. */
const HOP = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

/** The hops of a header value (one line or several), in order; empty or unprintable ones dropped. */
export function parseServed(value: string | readonly string[] | undefined): string[] {
  if (value === undefined) return [];
  const hops: string[] = [];
  for (const line of typeof value === 'string' ? [value] : value) {
    for (const part of line.split(',')) {
      const hop = part.trim();
      if (hop !== '' && HOP.test(hop)) hops.push(hop);
    }
  }
  return hops;
}

/** `hop` first, then the hops the upstream reported. */
export function prependServed(
  hop: string,
  downstream: string | readonly string[] | undefined,
): string {
  const rest = typeof downstream === 'string' ? downstream : downstream?.join(', ');
  return rest ? `${hop}, ${rest}` : hop;
}
