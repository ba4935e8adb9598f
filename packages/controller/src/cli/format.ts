import type { Release, ReleaseEvent } from '../release/status.js';
import { releaseSteps } from '../release/steps.js';

/** Columns padded to their widest cell, as kubectl prints them. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function age(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}

export function stepText(release: Release): string {
  const { step } = release.status;
  const total = releaseSteps(release.spec).length;
  if (step < 0) return `-/${total}`;
  return `${Math.min(step + 1, total)}/${total}`;
}

export function eventLines(events: readonly ReleaseEvent[]): string[] {
  return events.map((e) => `${e.time}  ${e.type.padEnd(7)}  ${e.reason.padEnd(18)} ${e.message}`);
}

/** What `graylane status` shows: phase, step, weight, per-service canary health, last events. */
export function renderStatus(
  release: Release & {
    routeTableRevision?: number;
    proxies?: Array<{ id: string; appliedRevision: number | undefined }>;
  },
  eventCount = 8,
  /** Flags the hint's `graylane approve` needs to reach the same release (` --kubernetes`). */
  modeFlags = '',
): string {
  const { status, spec } = release;
  const lines = [
    `Release:     ${release.metadata.name}`,
    `Lane:        ${spec.lane}   Entrypoint: ${spec.entrypoint}`,
    `Phase:       ${status.phase}${status.awaitingApproval ? ` (waiting for approval: graylane approve ${release.metadata.name}${modeFlags})` : ''}${status.pausedFor ? ` (${status.pausedFor})` : ''}`,
    `Step:        ${stepText(release)}   Weight: ${status.weight}%`,
  ];
  if (status.failure) lines.push(`Failure:     ${status.failure}`);
  if (release.routeTableRevision !== undefined) {
    const proxies =
      (release.proxies ?? []).map((p) => `${p.id}@${p.appliedRevision ?? '-'}`).join(', ') ||
      'none watching';
    lines.push(`Route table: revision ${release.routeTableRevision}; proxies: ${proxies}`);
  }
  lines.push(
    '',
    table(
      ['SERVICE', 'VERSION', 'CANARY', 'HEALTH', 'MESSAGE'],
      spec.services.map((s) => {
        const st = status.services[s.name];
        return [
          s.name,
          s.canary.version,
          st?.canary ?? '-',
          st?.health ?? '-',
          (st?.message ?? '').split('\n')[0] ?? '',
        ];
      }),
    ),
  );
  if (spec.analysis) lines.push('', ...analysisLines(release));
  lines.push('', 'Events:', ...eventLines(status.events.slice(-eventCount)).map((l) => `  ${l}`));
  return lines.join('\n');
}

/** The analysis: its settings, and each check's values and verdict in the latest intervals. */
export function analysisLines(release: Release, intervalCount = 4): string[] {
  const { analysis } = release.spec;
  if (!analysis) return [];
  const status = release.status.analysis;
  const lines = [
    `Analysis:    ${analysis.provider.type}, every ${analysis.interval}; failed intervals ${status?.failed ?? 0}/${analysis.threshold}; minSamples ${analysis.minSamples}`,
  ];
  const intervals = (status?.intervals ?? []).slice(-intervalCount);
  if (intervals.length === 0) return [...lines, '  no interval measured yet'];
  const rows = intervals.flatMap((interval) =>
    interval.checks.map((c) => [
      interval.to.slice(11, 19),
      String(interval.step + 1),
      `${interval.weight}%`,
      c.service,
      c.check,
      c.limit,
      String(Math.round(c.samples)),
      c.value === undefined ? '-' : String(c.value),
      c.stable === undefined ? '-' : String(c.stable),
      c.verdict,
      c.reason ?? '',
    ]),
  );
  const header = ['INTERVAL', 'STEP', 'WEIGHT', 'SERVICE', 'CHECK', 'LIMIT', 'SAMPLES'];
  return [...lines, table([...header, 'VALUE', 'STABLE', 'VERDICT', 'REASON'], rows)];
}
