import { type CompiledEntrypoint, type CompiledTable, HostRank } from './compiled-table.js';

/** `/api` matches `/api`, `/api/x` and `/api?q`, but not `/apix`: prefixes match whole path segments. */
export function pathHasPrefix(path: string, prefix: string): boolean {
  if (prefix === '/' || prefix === '') return true;
  if (!path.startsWith(prefix)) return false;
  if (prefix.endsWith('/')) return true;
  const next = path.charAt(prefix.length);
  return next === '' || next === '/' || next === '?';
}

/** The host without port, lower case; `[::1]:80` keeps its brackets. */
export function hostWithoutPort(host: string | undefined): string | undefined {
  if (!host) return undefined;
  const lower = host.toLowerCase();
  if (lower.startsWith('[')) {
    const end = lower.indexOf(']');
    return end === -1 ? lower : lower.slice(0, end + 1);
  }
  const colon = lower.indexOf(':');
  return colon === -1 ? lower : lower.slice(0, colon);
}

/** `*.example.com` matches one or more labels before `.example.com`, not `example.com` itself. */
function hostMatches(entry: CompiledEntrypoint, bareHost: string | undefined): boolean {
  if (entry.host === undefined) return true;
  if (bareHost === undefined) return false;
  if (entry.hostRank === HostRank.wildcard) {
    const suffix = entry.host.slice(1);
    return bareHost.length > suffix.length && bareHost.endsWith(suffix);
  }
  return entry.host === bareHost;
}

/** The entrypoint for a request; the table keeps them in precedence order (see compiled-table.ts). */
export function matchEntrypoint(
  table: CompiledTable,
  host: string | undefined,
  path: string,
): CompiledEntrypoint | undefined {
  const bareHost = hostWithoutPort(host);
  return table.entrypoints.find(
    (entry) => hostMatches(entry, bareHost) && pathHasPrefix(path, entry.pathPrefix),
  );
}
