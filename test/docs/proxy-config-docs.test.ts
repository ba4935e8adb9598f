import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(
  new URL('../../packages/router-proxy/scripts/config-docs.mjs', import.meta.url),
);
const README = fileURLToPath(new URL('../../packages/router-proxy/README.md', import.meta.url));

describe('graylane-proxy README: the config block', () => {
  it('is the one the settings schema renders (run `pnpm run docs` when this fails)', () => {
    expect(() =>
      execFileSync(process.execPath, [SCRIPT, '--check'], { stdio: 'pipe' }),
    ).not.toThrow();
  });

  it('shows every default the schema gives', async () => {
    const { SETTINGS_DEFAULTS } = await import('../../packages/router-proxy/src/settings.js');
    const text = readFileSync(README, 'utf8');
    expect(text).toContain(`  maxConnections: ${SETTINGS_DEFAULTS.server.maxConnections} #`);
    expect(text).toContain(`drainDelayMs: ${SETTINGS_DEFAULTS.drainDelayMs} #`);
    expect(text).toContain(`  bufferBytes: ${SETTINGS_DEFAULTS.retry.bufferBytes} #`);
  });

  it('--check fails on a stale block', async () => {
    const { rewrite } = await import('../../packages/router-proxy/scripts/config-docs.mjs');
    const stale = readFileSync(README, 'utf8').replace('loopLimit: 8', 'loopLimit: 9');
    expect(rewrite(stale)).not.toBe(stale);
  });
});
