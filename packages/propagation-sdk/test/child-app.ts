import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The SDK package's directory: child apps run here, so `@graylane/sdk/register` resolves. */
export const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');

/** A fixture app in its own process, which prints `{"port": N}` on stdout once it listens. */
export interface ChildApp {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  /** The JSON lines the SDK logged on stderr. */
  warnings: () => Array<Record<string, unknown>>;
  stop: () => Promise<void>;
}

export async function startChildApp(
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<ChildApp> {
  const child = spawn(process.execPath, args, {
    cwd: packageDir,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`app did not start: ${stderr}`)), 15_000);
    child.stdout?.once('data', (d: Buffer) => {
      clearTimeout(timer);
      resolve((JSON.parse(d.toString()) as { port: number }).port);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`app exited with ${code}: ${stderr}`));
    });
  });
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    stderr: () => stderr,
    warnings: () =>
      stderr
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    stop: () =>
      child.exitCode !== null
        ? Promise.resolve()
        : new Promise((resolve) => {
            child.once('exit', () => resolve());
            child.kill();
          }),
  };
}
