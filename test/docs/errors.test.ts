import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * docs/errors.md and the code agree, both ways (fastify keeps lib/errors.js and its Errors page so):
 * every `GRAYLANE_ERR_*` code the packages' sources use has a row, and every row is a code in use.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CODE = /GRAYLANE_ERR_[A-Z_]+/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

function codesInSources(): Map<string, string> {
  const found = new Map<string, string>();
  for (const pkg of readdirSync(join(ROOT, 'packages'))) {
    const src = join(ROOT, 'packages', pkg, 'src');
    try {
      statSync(src);
    } catch {
      continue;
    }
    for (const file of sourceFiles(src)) {
      for (const code of readFileSync(file, 'utf8').match(CODE) ?? []) {
        if (!found.has(code)) found.set(code, file.slice(ROOT.length));
      }
    }
  }
  return found;
}

function codesInPage(): Set<string> {
  const page = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8');
  const rows = page.split('\n').filter((line) => /^\| `GRAYLANE_ERR_/.test(line));
  return new Set(rows.map((row) => row.match(CODE)![0]));
}

describe('docs/errors.md', () => {
  it('has a row for every code the sources use', () => {
    const page = codesInPage();
    const missing = [...codesInSources()].filter(([code]) => !page.has(code));
    expect(missing.map(([code, file]) => `${code} (${file})`)).toEqual([]);
  });

  it('lists no code that the sources do not use', () => {
    const used = codesInSources();
    expect([...codesInPage()].filter((code) => !used.has(code))).toEqual([]);
  });

  it('declares each code once per package', async () => {
    const proxy = Object.values(
      (await import('../../packages/router-proxy/src/http/respond.js')).ProxyErrorCodes,
    );
    const lists = [
      Object.values((await import('../../packages/lane-core/src/errors.js')).ErrorCodes),
      Object.values((await import('../../packages/propagation-sdk/src/errors.js')).SdkErrorCodes),
      proxy,
    ];
    // The controller reuses the proxy's codes where the meaning is the same; the rest are its own.
    const { ControllerErrors } = await import('../../packages/controller/src/errors.js');
    const controller = Object.values(ControllerErrors).map((e) => e.code as string);
    const reused = controller.filter((code) => proxy.includes(code));
    expect(reused.sort()).toEqual(['GRAYLANE_ERR_BAD_REQUEST', 'GRAYLANE_ERR_INTERNAL']);
    lists.push(controller.filter((code) => !reused.includes(code)));
    const all = lists.flat();
    expect(all.length).toBe(new Set(all).size);
  });
});
