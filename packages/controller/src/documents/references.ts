import { type Problem, STABLE } from '@graylane/lane-core';
import { ControllerError, invalid } from '../errors.js';
import { orderProblems } from '../release/order.js';
import { isActive } from '../release/phases.js';
import type { ControllerState } from '../state/store.js';
import type { AnyDocument } from './parse.js';
import type { EntrypointDocument, ReleaseDocument, ServiceDocument, Workload } from './schema.js';

/**
 * Checks a document against what the controller already holds: names that must exist, and the
 * rules that keep releases apart (one lane per release, one release per service at a time).
 * Throws GRAYLANE_ERR_INVALID_DOCUMENT (a bad reference) or GRAYLANE_ERR_CONFLICT (another release).
 */
export function checkReferences(
  state: ControllerState,
  doc: AnyDocument,
  platform = 'local',
): void {
  if (platform === 'local') checkLocalWorkloads(doc);
  if (doc.kind === 'Service') checkService(state, doc);
  else if (doc.kind === 'Entrypoint') checkEntrypoint(state, doc);
  else checkRelease(state, doc);
}

/** Local mode runs processes or routes to endpoints; an image is for Kubernetes mode. */
function checkLocalWorkloads(doc: AnyDocument): void {
  const workloads: Array<[string, Workload]> =
    doc.kind === 'Service'
      ? [['spec.stable', doc.spec.stable]]
      : doc.kind === 'Release'
        ? doc.spec.services.map((s, i) => [`spec.services[${i}].canary`, s.canary])
        : [];
  const problems = workloads
    .filter(([, w]) => w.image !== undefined || w.patch !== undefined)
    .map(([path, w]) => ({
      path: `${path}.${w.image !== undefined ? 'image' : 'patch'}`,
      message: 'image and patch are for Kubernetes mode; local mode takes run or endpoints',
    }));
  if (problems.length > 0) throw invalid(problems);
}

function activeReleases(state: ControllerState, except?: string) {
  return Object.values(state.releases).filter(
    (r) => isActive(r.status.phase) && r.metadata.name !== except,
  );
}

function checkService(state: ControllerState, doc: ServiceDocument): void {
  const name = doc.metadata.name;
  const holder = activeReleases(state).find((r) => r.spec.services.some((s) => s.name === name));
  const existing = state.services[name];
  if (holder && existing && JSON.stringify(existing.spec) !== JSON.stringify(doc.spec)) {
    throw new ControllerError(
      'conflict',
      `service ${name} is in release ${holder.metadata.name} (${holder.status.phase}); change it after that release ends`,
      { path: 'spec' },
    );
  }
}

function checkEntrypoint(state: ControllerState, doc: EntrypointDocument): void {
  if (!Object.hasOwn(state.services, doc.spec.service)) {
    throw invalid([{ path: 'spec.service', message: `unknown service "${doc.spec.service}"` }]);
  }
}

function checkRelease(state: ControllerState, doc: ReleaseDocument): void {
  const name = doc.metadata.name;
  const { spec } = doc;
  const problems: Problem[] = [];
  if (!Object.hasOwn(state.entrypoints, spec.entrypoint)) {
    problems.push({ path: 'spec.entrypoint', message: `unknown entrypoint "${spec.entrypoint}"` });
  }
  spec.services.forEach((service, i) => {
    if (!Object.hasOwn(state.services, service.name)) {
      problems.push({
        path: `spec.services[${i}].name`,
        message: `unknown service "${service.name}"`,
      });
    }
  });
  problems.push(...orderProblems(spec.services));
  if (problems.length > 0) throw invalid(problems);

  const existing = state.releases[name];
  if (
    existing &&
    isActive(existing.status.phase) &&
    JSON.stringify(existing.spec) !== JSON.stringify(spec)
  ) {
    throw new ControllerError(
      'conflict',
      `release ${name} is ${existing.status.phase}; its spec cannot change now (roll it back first, then apply again)`,
      { path: 'spec' },
    );
  }
  for (const other of activeReleases(state, name)) {
    if (other.spec.lane === spec.lane) {
      throw new ControllerError(
        'conflict',
        `lane ${spec.lane} is already used by release ${other.metadata.name} (${other.status.phase})`,
        { path: 'spec.lane' },
      );
    }
    const shared = spec.services.find((s) => other.spec.services.some((o) => o.name === s.name));
    if (shared) {
      throw new ControllerError(
        'conflict',
        `service ${shared.name} is in releases ${other.metadata.name} (${other.status.phase}) and ${name}; one release per service at a time`,
        { path: 'spec.services' },
      );
    }
  }
  for (const [i, service] of spec.services.entries()) {
    const stable = state.services[service.name]?.spec.stable.endpoints ?? [];
    const clash = (service.canary.endpoints ?? []).find((e) =>
      stable.some((s) => new URL(s).origin === safeOrigin(e)),
    );
    if (clash) {
      throw invalid([
        {
          path: `spec.services[${i}].canary.endpoints`,
          message: `${clash} is also a ${STABLE} endpoint of ${service.name}`,
        },
      ]);
    }
  }
}

function safeOrigin(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/** What depends on a document that is about to be deleted; an empty list means it may go. */
export function dependents(
  state: ControllerState,
  kind: AnyDocument['kind'],
  name: string,
): string[] {
  if (kind === 'Service') {
    return [
      ...Object.values(state.entrypoints)
        .filter((e) => e.spec.service === name)
        .map((e) => `entrypoint ${e.metadata.name}`),
      ...activeReleases(state)
        .filter((r) => r.spec.services.some((s) => s.name === name))
        .map((r) => `release ${r.metadata.name}`),
    ];
  }
  if (kind === 'Entrypoint') {
    return activeReleases(state)
      .filter((r) => r.spec.entrypoint === name)
      .map((r) => `release ${r.metadata.name}`);
  }
  return [];
}
