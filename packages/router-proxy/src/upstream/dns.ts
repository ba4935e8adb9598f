import { type LookupAddress, lookup as systemLookup } from 'node:dns';
import { isIP } from 'node:net';

/** Resolves a host name to all its addresses, as `dns.lookup(name, { all: true })` does. */
export type ResolveHost = (
  hostname: string,
  options: { all: true },
  callback: (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

type Answer = (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void;

/** net.connect's `lookup` option. */
type ConnectLookup = (
  hostname: string,
  options: { family?: number | string; all?: boolean },
  callback: (...args: never[]) => void,
) => void;

interface Entry {
  addresses: LookupAddress[];
  /** When a connection must look the name up again; never for a route table's names, refreshed apart. */
  expires: number;
}

/**
 * Bounds the names an outbound sidecar passing arbitrary hosts through can make us keep; a route
 * table's own names are never dropped for it.
 */
const MAX_PASSING_HOSTS = 1024;

function familyOf(option: number | string | undefined): 0 | 4 | 6 {
  if (option === 4 || option === 'IPv4') return 4;
  if (option === 6 || option === 'IPv6') return 6;
  return 0;
}

/**
 * The addresses of host-name endpoints, kept off the request path: a connection to
 * `http://backend:8080` takes them from here instead of asking the system resolver each time.
 * getaddrinfo (what `dns.lookup` and so Node's own connections use: /etc/hosts, search domains,
 * nsswitch) gives no TTL, so an address lives `ttlMs`. The route table's names are resolved when
 * the table is applied and refreshed every `ttlMs` in the background, keeping the last good
 * addresses when a refresh fails (as Envoy's strict DNS clusters do); other names (hosts an outbound
 * sidecar passes through) are looked up on their first connection and again once expired.
 *
 * undici's `interceptors.dns` was not used: it resolves on the request that finds the cache empty
 * or expired, and rewrites each request's origin to an address (a URL parsed per request, pools
 * per address). cacheable-lookup does not cache names it falls back to getaddrinfo for: 100
 * lookups of `localhost` made 101 getaddrinfo calls.
 */
export class HostResolver {
  private readonly cache = new Map<string, Entry>();
  private readonly pending = new Map<string, Answer[]>();
  private tracked = new Set<string>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly ttlMs: number,
    private readonly resolve: ResolveHost = systemLookup,
  ) {
    this.timer = setInterval(() => this.refresh(), ttlMs);
    this.timer.unref();
  }

  /** For undici's `connect` options: net.connect calls it for each new connection to a host name. */
  readonly lookup: ConnectLookup = (hostname, options, callback) => {
    const family = familyOf(options.family);
    this.addresses(hostname, (error, all) => {
      const addresses = family === 0 ? all : all.filter((a) => a.family === family);
      const answer = callback as unknown as (...args: unknown[]) => void;
      if (error) return answer(error);
      if (addresses.length === 0) return answer(notFound(hostname));
      if (options.all) return answer(null, addresses);
      answer(null, addresses[0]!.address, addresses[0]!.family);
    });
  };

  /**
   * The host names of a route table's endpoints: resolved now, kept fresh from now on. Names no
   * longer in the table become ordinary cache entries that expire.
   */
  track(endpoints: Iterable<string>): void {
    const names = new Set<string>();
    for (const endpoint of endpoints) {
      const { hostname } = new URL(endpoint);
      const bare = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
      if (isIP(bare) === 0) names.add(bare);
    }
    const now = Date.now();
    for (const name of this.tracked) {
      const entry = this.cache.get(name);
      if (!names.has(name) && entry) entry.expires = now + this.ttlMs;
    }
    this.tracked = names;
    for (const name of names) if (!this.cache.has(name)) this.fetch(name, () => {});
  }

  close(): void {
    clearInterval(this.timer);
  }

  private addresses(hostname: string, answer: Answer): void {
    const entry = this.cache.get(hostname);
    if (entry && (this.tracked.has(hostname) || entry.expires > Date.now())) {
      // Asynchronous, as net.connect expects of a lookup.
      process.nextTick(answer, null, entry.addresses);
      return;
    }
    this.fetch(hostname, answer);
  }

  /** One system lookup per name at a time; every connection waiting for it gets its answer. */
  private fetch(hostname: string, answer: Answer): void {
    const waiting = this.pending.get(hostname);
    if (waiting) {
      waiting.push(answer);
      return;
    }
    this.pending.set(hostname, [answer]);
    this.resolve(hostname, { all: true }, (error, addresses) => {
      const answers = this.pending.get(hostname) ?? [];
      this.pending.delete(hostname);
      // A failed lookup leaves the last good addresses in place: the table's names go on being
      // served from them until a refresh succeeds.
      if (!error && addresses.length > 0) this.store(hostname, addresses);
      for (const each of answers) each(error, addresses ?? []);
    });
  }

  private store(hostname: string, addresses: LookupAddress[]): void {
    this.cache.delete(hostname); // re-inserted last: the Map's order is the eviction order
    this.cache.set(hostname, { addresses, expires: Date.now() + this.ttlMs });
    if (this.cache.size <= MAX_PASSING_HOSTS + this.tracked.size) return;
    for (const name of this.cache.keys()) {
      if (this.tracked.has(name)) continue;
      this.cache.delete(name);
      break;
    }
  }

  private refresh(): void {
    for (const name of this.tracked) this.fetch(name, () => {});
  }
}

function notFound(hostname: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
    code: 'ENOTFOUND',
    hostname,
  });
}
