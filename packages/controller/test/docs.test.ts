import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ControllerErrors } from '../src/errors.js';

const script = fileURLToPath(new URL('../scripts/controller-docs.mjs', import.meta.url));
const doc = fileURLToPath(new URL('../../../docs/controller.md', import.meta.url));

describe('docs/controller.md', () => {
  it('has field tables generated from the current document schemas (run `pnpm run docs` when this fails)', async () => {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [script, '--check']);
    expect(stderr).toBe('');
    expect(stdout).toContain('up to date');
  });

  it('lists every error code the controller answers with, and no other', () => {
    const text = readFileSync(doc, 'utf8');
    const documented = new Set(text.match(/GRAYLANE_ERR_[A-Z_]+/g));
    const codes = new Set(Object.values(ControllerErrors).map((e) => e.code));
    for (const code of codes) expect(documented).toContain(code);
    for (const code of documented) expect(codes).toContain(code);
  });
});
