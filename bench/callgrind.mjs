// One server run under `valgrind --tool=callgrind` while autocannon sends it a fixed number of
// requests from another process; shared by the benches that count instructions per request.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

export function requireValgrind() {
  try {
    execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
  } catch {
    console.error('valgrind is needed: apt-get install -y valgrind');
    process.exit(2);
  }
}

/**
 * Starts `node script ...args` under callgrind (it prints `{"port": N}` on its first stdout line),
 * sends `requests` to `path` over 8 connections with `headers`, stops it with SIGTERM and returns
 * the instructions it executed.
 */
export async function instructionsFor({
  out,
  script,
  args = [],
  env = {},
  requests,
  path,
  headers = [],
}) {
  const server = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      '--smc-check=all-non-file',
      `--callgrind-out-file=${out}`,
      process.execPath,
      script,
      ...args,
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, ...env } },
  );
  const [chunk] = await once(server.stdout, 'data');
  const { port } = JSON.parse(chunk.toString());
  const load = spawn(
    `${root}node_modules/.bin/autocannon`,
    [
      '-c',
      '8',
      '-a',
      String(requests),
      ...headers.flatMap((h) => ['-H', h]),
      `http://127.0.0.1:${port}${path}`,
    ],
    { stdio: 'ignore' },
  );
  await once(load, 'exit');
  server.kill('SIGTERM');
  await once(server, 'exit');
  const summary = readFileSync(out, 'utf8').match(/^summary: (\d+)/m);
  if (!summary) throw new Error(`no callgrind summary in ${out}`);
  return Number(summary[1]);
}
