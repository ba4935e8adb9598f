import type { Problem } from '@graylane/lane-core';
import type { ReleaseService } from '../documents/schema.js';

/**
 * Deploy order: callees first. With `dependsOn`, a service comes after every service it names;
 * without it, after the one listed before it. Stable among equals (list order), so the order a user
 * reads in the spec is the order that happens. Teardown is the reverse.
 */
export function deployOrder(services: readonly ReleaseService[]): string[] {
  const names = services.map((s) => s.name);
  const deps = new Map<string, string[]>();
  services.forEach((service, i) => {
    const previous = names[i - 1];
    deps.set(service.name, service.dependsOn ?? (previous === undefined ? [] : [previous]));
  });
  const done = new Set<string>();
  const order: string[] = [];
  while (order.length < names.length) {
    const next = names.find(
      (name) => !done.has(name) && (deps.get(name) ?? []).every((dep) => done.has(dep)),
    );
    // orderProblems() refuses cycles before a release is accepted; stop rather than loop.
    if (next === undefined) return [...order, ...names.filter((n) => !done.has(n))];
    done.add(next);
    order.push(next);
  }
  return order;
}

/** Unknown, self or cyclic `dependsOn`, and a service listed twice, each with its path. */
export function orderProblems(services: readonly ReleaseService[]): Problem[] {
  const problems: Problem[] = [];
  const names = new Set<string>();
  services.forEach((service, i) => {
    if (names.has(service.name)) {
      problems.push({
        path: `spec.services[${i}].name`,
        message: `service "${service.name}" is listed twice`,
      });
    }
    names.add(service.name);
  });
  services.forEach((service, i) => {
    (service.dependsOn ?? []).forEach((dep, j) => {
      if (!names.has(dep)) {
        problems.push({
          path: `spec.services[${i}].dependsOn[${j}]`,
          message: `"${dep}" is not a service of this release`,
        });
      }
    });
  });
  if (problems.length > 0) return problems;
  const deps = new Map(
    services.map((s, i) => [s.name, s.dependsOn ?? (i > 0 ? [services[i - 1]!.name] : [])]),
  );
  const cycle = findCycle(deps);
  if (cycle) {
    const at = services.findIndex((s) => s.name === cycle[0]);
    problems.push({
      path: `spec.services[${at}].dependsOn`,
      message: `dependency cycle ${cycle.join(' -> ')}`,
    });
  }
  return problems;
}

function findCycle(deps: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'visiting') return [...stack.slice(stack.indexOf(name)), name];
    state.set(name, 'visiting');
    stack.push(name);
    for (const dep of deps.get(name) ?? []) {
      const found = visit(dep);
      if (found) return found;
    }
    stack.pop();
    state.set(name, 'done');
    return undefined;
  };
  for (const name of deps.keys()) {
    const found = visit(name);
    if (found) return found;
  }
  return undefined;
}
