import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import { freePort, sleep, tempDir } from '../graylane.js';

export interface RunningPrometheus {
  url: string;
  stop(): Promise<void>;
}

/** The admin address of the proxy a controller runs, from the config it wrote for it. */
export function managedProxyMetrics(stateDir: string): string {
  const config = JSON.parse(readFileSync(join(stateDir, 'proxy', 'config.json'), 'utf8')) as {
    admin: string;
  };
  return `http://${config.admin}/metrics`;
}

/**
 * A real Prometheus server (Debian's `prometheus` package) on 127.0.0.1, scraping `targets` every
 * `scrapeMs`, with its data in a temporary directory.
 */
export async function startPrometheus(
  targets: string[],
  scrapeMs = 500,
): Promise<RunningPrometheus> {
  if (spawnSync('prometheus', ['--version']).error) {
    throw new Error(
      'prometheus is not installed: apt-get update && apt-get install -y prometheus (.ci/run does this)',
    );
  }
  const dir = tempDir('graylane-prom-');
  const port = await freePort();
  const config = {
    global: { scrape_interval: `${scrapeMs}ms`, scrape_timeout: `${scrapeMs}ms` },
    scrape_configs: targets.map((target, i) => {
      const url = new URL(target);
      return {
        job_name: `graylane-${i}`,
        metrics_path: url.pathname,
        static_configs: [{ targets: [url.host] }],
      };
    }),
  };
  writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
  let output = '';
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 30_000;
  // Ready, and every target scraped at least once.
  for (;;) {
    const up = await request(`${url}/api/v1/query?query=up`)
      .then(
        async (res) =>
          (await res.body.json()) as { data?: { result: Array<{ value: [number, string] }> } },
      )
      .catch(() => undefined);
    const results = up?.data?.result ?? [];
    if (results.length === targets.length && results.every((r) => r.value[1] === '1')) break;
    if (child.exitCode !== null) throw new Error(`prometheus exited:\n${output.slice(-3000)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`prometheus did not scrape ${targets.join(', ')}:\n${output.slice(-3000)}`);
    }
    await sleep(100);
  }
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
