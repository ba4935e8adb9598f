import { LANE_SERVED_HEADER, parseServed, STABLE } from '@graylane/lane-core';
import { request } from 'undici';
import { isActive, laneRouted } from '../release/phases.js';
import type { Release } from '../release/status.js';

/**
 * `graylane check`: did my tagged request stay in my lane? Tagged requests go through the entry;
 * each response's `x-lane-served` is the path it took, one hop per proxy, in call order. The verdict
 * is pure (`judge`), the requests are the thin shell around it (`runCheck`).
 */

/** The lane each named service must have served: `stable` or a lane name. */
export type Expectation = Record<string, string>;

/** One hop as `x-lane-served` reports it: `backend=stable;fallback=connect_error`. */
export interface Hop {
  service: string;
  lane: string;
  fallback?: string;
}

export function parseHop(text: string): Hop | undefined {
  const match = /^([^=;\s]+)=([^;\s]+)(?:;fallback=(\S+))?$/.exec(text);
  if (!match) return undefined;
  return { service: match[1]!, lane: match[2]!, ...(match[3] ? { fallback: match[3] } : {}) };
}

/**
 * What is wrong with one path for a request tagged `lane`, or nothing. Without an expectation, a
 * hop may be served by the lane, or by stable because the service has no such lane (the proxy says
 * `fallback=absent`); any other fallback means the service has the lane and did not serve it, and a
 * hop on stable without a fallback means the tag was gone by the time the request got there.
 */
export function problemsOf(served: string, lane: string, expect?: Expectation): string[] {
  const hops = parseServed(served);
  if (hops.length === 0) return [`no ${LANE_SERVED_HEADER} header: the path cannot be checked`];
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const text of hops) {
    const hop = parseHop(text);
    if (!hop) {
      problems.push(`unreadable hop "${text}"`);
      continue;
    }
    seen.add(hop.service);
    const why = hop.fallback ? ` (fallback: ${hop.fallback})` : '';
    const wanted = expect?.[hop.service];
    if (wanted !== undefined) {
      if (hop.lane !== wanted)
        problems.push(`${hop.service} was served by ${hop.lane}${why}, expected ${wanted}`);
    } else if (hop.lane === lane) {
      // in the lane
    } else if (hop.fallback === undefined) {
      if (lane !== STABLE) problems.push(`${hop.service} got the request without the lane tag`);
    } else if (hop.fallback !== 'absent') {
      problems.push(`${hop.service} has lane ${lane} but was served by ${hop.lane}${why}`);
    }
  }
  for (const service of Object.keys(expect ?? {}))
    if (!seen.has(service)) problems.push(`${service} is not on the path`);
  return problems;
}

export interface PathCount {
  served: string;
  statuses: Record<string, number>;
  count: number;
  problems: string[];
}

export interface CheckReport {
  entry: string;
  lane: string;
  requests: number;
  expect?: Expectation;
  paths: PathCount[];
  /** Requests whose path has a problem. */
  failed: number;
  ok: boolean;
}

/** Groups the responses by path and judges each path once. */
export function judge(
  responses: ReadonlyArray<{ status: number; served: string }>,
  options: { entry: string; lane: string; expect?: Expectation },
): CheckReport {
  const paths = new Map<string, PathCount>();
  for (const { status, served } of responses) {
    let path = paths.get(served);
    if (!path) {
      path = {
        served,
        statuses: {},
        count: 0,
        problems: problemsOf(served, options.lane, options.expect),
      };
      paths.set(served, path);
    }
    path.count += 1;
    path.statuses[status] = (path.statuses[status] ?? 0) + 1;
  }
  const sorted = [...paths.values()].sort((a, b) => b.count - a.count);
  const failed = sorted.filter((p) => p.problems.length > 0).reduce((n, p) => n + p.count, 0);
  return {
    entry: options.entry,
    lane: options.lane,
    requests: responses.length,
    ...(options.expect ? { expect: options.expect } : {}),
    paths: sorted,
    failed,
    ok: failed === 0 && responses.length > 0,
  };
}

/** `frontend=gray,backend=stable` → an expectation; a usage error names the bad part. */
export function parseExpectation(text: string): Expectation | string {
  const expectation: Expectation = {};
  for (const part of text.split(',')) {
    const match = /^\s*([a-z0-9-]+)=([a-z0-9-]+)\s*$/.exec(part);
    if (!match) return `--expect: "${part}" is not SERVICE=LANE`;
    expectation[match[1]!] = match[2]!;
  }
  return expectation;
}

/**
 * The path a release promises for its lane right now: the lane at every service whose canary is
 * routed, stable at its other services. An ended release promises nothing in its lane.
 */
export function expectationOf(release: Release): Expectation | string {
  if (!isActive(release.status.phase))
    return `release ${release.metadata.name} is ${release.status.phase}; its lane is not routed`;
  const expectation: Expectation = {};
  for (const { name } of release.spec.services) {
    const canary = release.status.services[name]?.canary;
    expectation[name] = canary !== undefined && laneRouted(canary) ? release.spec.lane : STABLE;
  }
  return expectation;
}

export interface CheckOptions {
  entry: string;
  lane: string;
  requests: number;
  laneHeader: string;
  headers: Record<string, string>;
  expect?: Expectation;
}

/** Sends the tagged requests one after another and judges their paths. */
export async function runCheck(options: CheckOptions): Promise<CheckReport> {
  const responses: Array<{ status: number; served: string }> = [];
  for (let i = 0; i < options.requests; i++) {
    const res = await request(options.entry, {
      headers: { ...options.headers, [options.laneHeader]: options.lane },
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
    });
    await res.body.dump();
    const served = res.headers[LANE_SERVED_HEADER];
    responses.push({
      status: res.statusCode,
      served: Array.isArray(served) ? served.join(', ') : (served ?? ''),
    });
  }
  return judge(responses, options);
}

export function renderCheck(report: CheckReport): string {
  const width = String(Math.max(...report.paths.map((p) => p.count), 1)).length;
  const lines = [
    `${report.requests} requests to ${report.entry} in lane ${report.lane}${
      report.expect
        ? `, expecting ${Object.entries(report.expect)
            .map(([s, l]) => `${s}=${l}`)
            .join(',')}`
        : ''
    }`,
  ];
  for (const path of report.paths) {
    const statuses = Object.entries(path.statuses)
      .map(([status, n]) => (Object.keys(path.statuses).length > 1 ? `${status}×${n}` : status))
      .join(' ');
    const mark = path.problems.length > 0 ? 'FAIL' : 'ok  ';
    lines.push(
      `  ${mark} ${String(path.count).padStart(width)}  ${path.served || '(no x-lane-served)'}  [${statuses}]`,
    );
    for (const problem of path.problems) lines.push(`         ${problem}`);
  }
  lines.push(
    report.ok
      ? `ok: every request stayed in lane ${report.lane} wherever a service has it`
      : `FAIL: ${report.failed} of ${report.requests} requests left lane ${report.lane}`,
  );
  return lines.join('\n');
}
