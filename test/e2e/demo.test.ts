import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const DEMO = fileURLToPath(new URL('../../examples/proxy-demo/main.mjs', import.meta.url));

/** The README's first command runs this demo: it must keep telling the story it tells. */
describe('pnpm demo', () => {
  it('shows each request served by the lane it asked for, or by stable where there is none', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [DEMO], { timeout: 30_000 });
    const served = (label: string) =>
      stdout
        .split('\n')
        .find((line) => line.startsWith(label))
        ?.replace(label, '')
        .trim();
    expect(served('untagged')).toBe('200  frontend=stable, backend=stable');
    expect(served('x-lane: gray')).toBe('200  frontend=gray, backend=gray');
    expect(served('baggage: lane=gray')).toBe('200  frontend=gray, backend=gray');
    expect(served('user-agent: graylane-tester (assign rule)')).toBe(
      '200  frontend=gray, backend=gray',
    );
    expect(served('x-lane: strict (no endpoints, fallback none)')).toBe(
      '503  frontend=stable;fallback=absent, backend=none',
    );
    expect(served('x-lane: Not_A_Lane (invalid: dropped)')).toBe(
      '200  frontend=stable, backend=stable',
    );
    expect(stdout).toContain('frontend v2 -> backend v2 (x-lane: gray)');
  });
});
