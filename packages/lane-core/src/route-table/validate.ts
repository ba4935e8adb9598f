import safeRegex from 'safe-regex2';
import type { z } from 'zod';
import { type Problem, RouteTableError } from '../errors.js';
import { isValidLaneName, STABLE } from '../lane.js';
import { type RouteTable, RouteTableSchema, type Service } from './schema.js';

/** Formats a zod path the way a user writes it: `entrypoints[0].assign[1].weight`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

function structuralProblems(error: z.ZodError): Problem[] {
  return error.issues.map((issue) => ({ path: formatPath(issue.path), message: issue.message }));
}

function endpointProblems(path: string, endpoints: readonly string[], seen: Map<string, string>) {
  const problems: Problem[] = [];
  endpoints.forEach((endpoint, i) => {
    const at = `${path}.endpoints[${i}]`;
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      problems.push({ path: at, message: `not a URL: ${JSON.stringify(endpoint)}` });
      return;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      problems.push({ path: at, message: `endpoint must be http or https, not ${url.protocol}` });
      return;
    }
    if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '') {
      problems.push({ path: at, message: 'endpoint is an origin only (no path, query or user)' });
      return;
    }
    const key = url.origin;
    const first = seen.get(key);
    if (first !== undefined)
      problems.push({ path: at, message: `duplicate endpoint (also ${first})` });
    else seen.set(key, at);
  });
  return problems;
}

function fallbackProblems(serviceName: string, service: Service): Problem[] {
  const problems: Problem[] = [];
  for (const [lane, set] of Object.entries(service.lanes)) {
    const at = `services.${serviceName}.lanes.${lane}.fallback`;
    const target = set.fallback;
    if (target === STABLE || target === 'none') continue;
    if (!Object.hasOwn(service.lanes, target)) {
      problems.push({ path: at, message: `fallback to unknown lane "${target}"` });
      continue;
    }
    const chain = [lane];
    let next: string = target;
    while (next !== STABLE && next !== 'none' && Object.hasOwn(service.lanes, next)) {
      if (chain.includes(next)) {
        if (next === lane)
          problems.push({ path: at, message: `cycle ${[...chain, next].join(' -> ')}` });
        break;
      }
      chain.push(next);
      next = service.lanes[next]?.fallback ?? STABLE;
    }
  }
  return problems;
}

function serviceProblems(name: string, service: Service): Problem[] {
  const problems: Problem[] = [];
  if (!isValidLaneName(name)) {
    problems.push({ path: `services.${name}`, message: 'invalid service name (a DNS label)' });
  }
  const seen = new Map<string, string>();
  problems.push(...endpointProblems(`services.${name}.stable`, service.stable.endpoints, seen));
  for (const [lane, set] of Object.entries(service.lanes)) {
    const at = `services.${name}.lanes.${lane}`;
    if (lane === STABLE)
      problems.push({ path: at, message: '"stable" is the stable set, not a lane' });
    else if (!isValidLaneName(lane)) problems.push({ path: at, message: 'invalid lane name' });
    problems.push(...endpointProblems(at, set.endpoints, seen));
  }
  problems.push(...fallbackProblems(name, service));
  return problems;
}

/**
 * A regex runs on every request's header, in the proxy's one thread: one that can backtrack
 * catastrophically (`^(a+)+$` took 9 s on 28 bytes) would stall every request. Nested quantifiers
 * are refused with safe-regex2 (fastify's check, star height at most 1), since Node's engine
 * backtracks and a linear-time engine (re2) needs a native build.
 */
function regexProblem(regex: string): string | undefined {
  try {
    new RegExp(regex);
  } catch (error) {
    return `invalid regex: ${(error as Error).message}`;
  }
  if (!safeRegex(regex)) {
    return 'regex with nested quantifiers may backtrack catastrophically; rewrite it without';
  }
  return undefined;
}

function entrypointProblems(table: RouteTable, definedLanes: Set<string>): Problem[] {
  const problems: Problem[] = [];
  const names = new Set<string>();
  table.entrypoints.forEach((entry, i) => {
    const at = `entrypoints[${i}]`;
    if (names.has(entry.name))
      problems.push({ path: `${at}.name`, message: `duplicate entrypoint "${entry.name}"` });
    names.add(entry.name);
    if (!Object.hasOwn(table.services, entry.service)) {
      problems.push({ path: `${at}.service`, message: `unknown service "${entry.service}"` });
    }
    entry.assign.forEach((rule, j) => {
      const ruleAt = `${at}.assign[${j}]`;
      if (rule.lane !== STABLE && !definedLanes.has(rule.lane)) {
        const message = isValidLaneName(rule.lane)
          ? `lane "${rule.lane}" is not defined by any service`
          : 'invalid lane name';
        problems.push({ path: `${ruleAt}.lane`, message });
      }
      if (rule.sticky !== undefined && rule.weight === undefined) {
        problems.push({ path: `${ruleAt}.sticky`, message: 'sticky needs a weight' });
      }
      for (const [header, match] of Object.entries(rule.when?.headers ?? {})) {
        if (!('regex' in match)) continue;
        const problem = regexProblem(match.regex);
        if (problem)
          problems.push({ path: `${ruleAt}.when.headers.${header}.regex`, message: problem });
      }
    });
  });
  return problems;
}

export type ValidationResult = { ok: true; table: RouteTable } | { ok: false; problems: Problem[] };

/** Validates a parsed document; every problem is listed with its path, and nothing is partly accepted. */
export function validateRouteTable(document: unknown): ValidationResult {
  const parsed = RouteTableSchema.safeParse(document);
  if (!parsed.success) return { ok: false, problems: structuralProblems(parsed.error) };
  const table = parsed.data;
  const problems: Problem[] = [];
  const definedLanes = new Set<string>();
  const hostOwners = new Map<string, string>();
  for (const [name, service] of Object.entries(table.services)) {
    problems.push(...serviceProblems(name, service));
    for (const lane of Object.keys(service.lanes)) definedLanes.add(lane);
    service.hosts.forEach((host, i) => {
      const owner = hostOwners.get(host.toLowerCase());
      if (owner !== undefined && owner !== name) {
        problems.push({
          path: `services.${name}.hosts[${i}]`,
          message: `host "${host}" also names service "${owner}"`,
        });
      } else hostOwners.set(host.toLowerCase(), name);
    });
  }
  problems.push(...entrypointProblems(table, definedLanes));
  return problems.length === 0 ? { ok: true, table } : { ok: false, problems };
}

/** Like validateRouteTable, but throws a RouteTableError (code GRAYLANE_ERR_ROUTE_TABLE). */
export function parseRouteTable(document: unknown, source?: string): RouteTable {
  const result = validateRouteTable(document);
  if (!result.ok)
    throw new RouteTableError(result.problems, source === undefined ? {} : { source });
  return result.table;
}
