// Smoke test for bench/forwarding.mjs: runs the --quick variant (1 round x 1 s) as a child
// process and checks that every forwarder passed the correctness checks and carried real load.
// No timing assertions: CI machines are far too noisy for those. The graylane-proxy row runs
// packages/router-proxy/dist, so build first (`npx tsc -b`; `pnpm test` does).
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..');
const FORWARDERS = [
  'undici-request+pipeline',
  'undici-request+pipe',
  'undici-dispatch',
  'undici-stream',
  'http-proxy',
  'node-http',
  'graylane-proxy (gateway)',
];

interface Row {
  variant: string;
  rps: number;
  errors: number;
}

interface BenchJson {
  validation: { forwarder: string; checks: Record<string, string[]> }[];
  results: { scenario: { id: string }; rows: Row[] }[];
}

describe('bench/forwarding.mjs --quick', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'graylane-bench-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('validates every forwarder and measures non-zero throughput for each', async () => {
    const json = path.join(dir, 'forwarding.json');
    const out = path.join(dir, 'forwarding.md');
    await run(process.execPath, ['bench/forwarding.mjs', '--quick', '--out', out, '--json', json], {
      cwd: ROOT,
      timeout: 55_000,
    });
    const report: BenchJson = JSON.parse(readFileSync(json, 'utf8'));

    expect(report.validation.map((v) => v.forwarder)).toEqual(FORWARDERS);
    for (const { forwarder, checks } of report.validation) {
      for (const [check, problems] of Object.entries(checks)) {
        expect(problems, `${forwarder}: ${check}`).toEqual([]);
      }
    }

    expect(report.results.map((r) => r.scenario.id)).toEqual(['small-get', 'echo-64k']);
    for (const { scenario, rows } of report.results) {
      expect(rows.map((r) => r.variant).sort()).toEqual(
        ['direct (no proxy)', ...FORWARDERS].sort(),
      );
      for (const row of rows) {
        expect(row.rps, `${scenario.id} ${row.variant} req/s`).toBeGreaterThan(0);
        expect(row.errors, `${scenario.id} ${row.variant} errors`).toBe(0);
      }
    }
    expect(readFileSync(out, 'utf8')).toContain('| direct (no proxy) |');
  }, 60_000);
});
