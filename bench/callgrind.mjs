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
 * sends `requests` to `path` over `connections` connections (8) with `headers`, stops it with SIGTERM and returns
 * the instructions it executed.
 *
 * With `warmup`, the server starts with instrumentation off, gets `warmup` requests first (start-up,
 * JIT compilation and the first GCs happen then), and counting starts only after them
 * (`callgrind_control -i on`): the count is then the steady state of `requests` requests alone.
 * With `collectGarbage` too, the server (run with `--expose-gc`) is sent SIGUSR2 after the warm-up
 * and counting starts once it answers `{"gc":true}`: a full collection of the warm-up's garbage, so
 * that a major GC left over from it does not land in one variant's window and not another's.
 */
export async function instructionsFor({
  out,
  script,
  args = [],
  env = {},
  requests,
  path,
  headers = [],
  warmup = 0,
  connections = 8,
  collectGarbage = false,
}) {
  const server = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      ...(warmup > 0 ? ['--instr-atstart=no'] : []),
      '--smc-check=all-non-file',
      `--callgrind-out-file=${out}`,
      process.execPath,
      ...(collectGarbage ? ['--expose-gc'] : []),
      script,
      ...args,
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, ...env } },
  );
  const [chunk] = await once(server.stdout, 'data');
  const { port } = JSON.parse(chunk.toString());
  const send = async (count) => {
    const load = spawn(
      `${root}node_modules/.bin/autocannon`,
      [
        '-c',
        String(connections),
        '-a',
        String(count),
        ...headers.flatMap((h) => ['-H', h]),
        `http://127.0.0.1:${port}${path}`,
      ],
      { stdio: 'ignore' },
    );
    await once(load, 'exit');
  };
  if (warmup > 0) {
    await send(warmup);
    if (collectGarbage) {
      const collected = once(server.stdout, 'data');
      server.kill('SIGUSR2');
      await collected;
    }
    execFileSync('callgrind_control', ['-i', 'on', String(server.pid)], { stdio: 'ignore' });
  }
  await send(requests);
  server.kill('SIGTERM');
  await once(server, 'exit');
  const summary = readFileSync(out, 'utf8').match(/^summary: (\d+)/m);
  if (!summary) throw new Error(`no callgrind summary in ${out}`);
  return Number(summary[1]);
}
