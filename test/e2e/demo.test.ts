import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DEMO = fileURLToPath(new URL('../../examples/demo/main.mjs', import.meta.url));

/** Live processes (not zombies) whose command line or environment names `text`. */
function processesNaming(text: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const seen =
        readFileSync(`/proc/${entry}/environ`, 'utf8') +
        readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (seen.includes(text)) found.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

const stateDirOf = (stdout: string) => /state (\/\S+)/.exec(stdout)?.[1];

/** The README's first command runs this demo: one whole release, each stage checked as it is told. */
describe('pnpm demo', () => {
  it('walks one release through its six stages and exits 0 with nothing left running', async () => {
    const { stdout, stderr, code } = await new Promise<{
      stdout: string;
      stderr: string;
      code: number;
    }>((resolve) => {
      execFile(process.execPath, [DEMO], { timeout: 170_000 }, (error, out, err) =>
        resolve({ stdout: out, stderr: err, code: error ? Number(error.code ?? 1) : 0 }),
      );
    });
    expect(code, `${stdout}\n${stderr}`).toBe(0);
    expect(stderr).toBe('');
    const lines = stdout.split('\n');
    // Not a terminal: plain text, no colour codes.
    expect(stdout).not.toContain('\x1b[');
    expect(lines.filter((l) => /^\[\d\/6\] /.test(l))).toHaveLength(6);
    // Every check the demo makes (17 claims over the six stages) was printed as passed.
    expect(lines.filter((l) => l.startsWith('  ✓ ')).length).toBe(17);
    // The split is sticky by x-user and the 20 users are the same every run, so the counts are exact.
    expect(stdout).toContain(
      '  20 users               frontend v1 -> backend v1: 14, frontend v2 -> backend v2: 6\n',
    );
    expect(stdout).toMatch(
      /x-lane: gray {11}frontend v2 -> backend v1 {3}x-lane-served: frontend=gray, backend=stable;fallback=\w+/,
    );
    expect(stdout).toMatch(/during the promotion: \d+ requests, 0 failed/);
    expect(stdout).toMatch(/nothing left running \(3 processes stopped\)\n$/);
    const stateDir = stateDirOf(stdout)!;
    expect(processesNaming(stateDir)).toEqual([]);
  }, 180_000);

  it('stops every process it started on Ctrl-C, in the middle of a stage', async () => {
    const demo = spawn(process.execPath, [DEMO], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    demo.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = once(demo, 'exit');
    // Stage 2 starts the canaries: by then the controller runs the proxy and both stable versions.
    while (!stdout.includes('[2/6]')) {
      if (demo.exitCode !== null) throw new Error(`demo ended early:\n${stdout}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const stateDir = stateDirOf(stdout)!;
    expect(processesNaming(stateDir).length).toBeGreaterThanOrEqual(4);
    demo.kill('SIGINT');
    const [code] = await exited;
    expect(code).toBe(130);
    expect(stdout).toContain('interrupted: stopping every process the demo started');
    expect(processesNaming(stateDir)).toEqual([]);
  }, 120_000);
});
