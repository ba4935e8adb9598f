import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../scripts/route-table-docs.mjs', import.meta.url));

async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [script, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

// The script reads the built package (dist/); `pnpm test` builds first.
describe('docs/route-table.md', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'graylane-docs-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('has field tables generated from the current schema (run `pnpm run docs` when this fails)', async () => {
    const result = await run('--check');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('documents every field of the schema', async () => {
    const doc = await readFile(
      fileURLToPath(new URL('../../../docs/route-table.md', import.meta.url)),
      'utf8',
    );
    for (const field of [
      'apiVersion',
      'revision',
      'laneHeader',
      'baggageKey',
      'loadBalancing',
      'fallback',
      'clientLanes',
      'clientLanesSecret',
      'pathPrefix',
      'sticky',
      'weight',
      'regex',
    ]) {
      expect(doc).toContain(`| \`${field}\``);
    }
  });

  it('fails --check on a stale copy and names the stale table; --write repairs it', async () => {
    const source = await readFile(
      fileURLToPath(new URL('../../../docs/route-table.md', import.meta.url)),
      'utf8',
    );
    const copy = join(dir, 'route-table.md');
    await writeFile(copy, source.replace('The lane header.', 'An old description.'));
    const stale = await run('--check', '--doc', copy);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain('stale: Top level');
    expect(stale.stderr).not.toContain('stale: `entrypoints[]`');
    expect((await run('--write', '--doc', copy)).code).toBe(0);
    expect(await readFile(copy, 'utf8')).toBe(source);
    expect((await run('--check', '--doc', copy)).code).toBe(0);
  });

  it('refuses to run without a mode', async () => {
    expect((await run()).code).toBe(2);
  });
});
