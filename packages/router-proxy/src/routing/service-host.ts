import { isIP } from 'node:net';
import type { CompiledTable, ServiceView } from './compiled-table.js';
import { hostWithoutPort } from './entrypoint.js';

export interface ServiceHostOptions {
  /** Suffixes (`.corp.internal`) under which `<service>.<suffix>` names a service. */
  serviceDomains?: readonly string[];
  /** Host names the table gives services (`hosts:`), lower case, to the service's name. */
  hosts?: ReadonlyMap<string, string>;
}

/**
 * The service a host names, if any: the bare name (`backend`), the Kubernetes forms
 * (`backend.shop`, `backend.shop.svc`, `backend.shop.svc.cluster.local`), a host the table gives
 * the service, or `<service>.<domain>` for a configured service domain. Anything else is a host
 * outside the mesh: `api.github.com` is not service `api`, and neither is an IP literal.
 */
export function serviceFromHost(
  host: string | undefined,
  options: ServiceHostOptions = {},
): string | undefined {
  const bare = hostWithoutPort(host)?.replace(/\.$/, '');
  if (!bare || bare.startsWith('[') || isIP(bare) !== 0) return undefined;
  const named = options.hosts?.get(bare);
  if (named !== undefined) return named;
  const labels = bare.split('.');
  if (labels[0] === '') return undefined;
  if (labels.length <= 2 || labels[2] === 'svc') return labels[0];
  for (const domain of options.serviceDomains ?? []) {
    const suffix = domain.startsWith('.') ? domain.toLowerCase() : `.${domain.toLowerCase()}`;
    if (bare.endsWith(suffix) && bare.length > suffix.length) return labels[0];
  }
  return undefined;
}

/**
 * The table's service for a host, per `serviceFromHost`. Answers are kept per table and service
 * domains, by host: a sidecar is asked on every call, mostly for the same few hosts, and working it
 * out (lower case, IP test, labels) was 2 % of a call (issue 21).
 */
export function serviceForHost(
  table: CompiledTable,
  host: string | undefined,
  serviceDomains: readonly string[],
): ServiceView | undefined {
  if (host === undefined) return undefined;
  const memo = table.hostMemo;
  if (memo.serviceDomains !== serviceDomains) {
    memo.serviceDomains = serviceDomains;
    memo.services.clear();
  }
  let service = memo.services.get(host);
  if (service === undefined) {
    const name = serviceFromHost(host, { serviceDomains, hosts: table.serviceHosts });
    service = memo.services.set(
      host,
      (name === undefined ? undefined : table.services.get(name)) ?? null,
    );
  }
  return service ?? undefined;
}
