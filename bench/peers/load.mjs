// The load bench/peers.mjs puts on a peer: wrk's closed-loop maximum, vegeta's open-loop fixed
// rate, and idle keep-alive connections. The generators run on the load core.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { LOAD_CORE } from './harness.mjs';

/**
 * What wrk sends a peer beyond its path: for the outbound sidecar as `HTTP_PROXY` the absolute form
 * (`GET http://bench/ HTTP/1.1`), for the request-body rows a POST of `requestBytes`; both from a
 * Lua script.
 */
function wrkScript(work, peer) {
  const lines = [];
  if (peer.absolute) lines.push(`wrk.path = "${peer.absolute}"`);
  if (peer.method) lines.push(`wrk.method = "${peer.method}"`);
  if (peer.requestBytes) {
    lines.push(`wrk.body = string.rep("x", ${peer.requestBytes})`);
    lines.push('wrk.headers["Content-Type"] = "application/octet-stream"');
  }
  if (lines.length === 0) return [];
  const file = path.join(
    work,
    `wrk-${peer.port}-${peer.method ?? 'GET'}-${peer.requestBytes ?? 0}.lua`,
  );
  writeFileSync(file, `${lines.join('\n')}\n`);
  return ['-s', file];
}

export async function wrk(work, peer, { seconds, connections }) {
  const args = ['-c', LOAD_CORE, 'wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--latency'];
  for (const header of peer.headers ?? []) args.push('-H', header);
  args.push(...wrkScript(work, peer), `http://127.0.0.1:${peer.port}${peer.path ?? '/'}`);
  const child = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk) => (out += chunk));
  await once(child, 'exit');
  const rps = Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
  const bad = Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  const errors = out.match(/Socket errors: (.*)/)?.[1];
  if (!Number.isFinite(rps) || bad > 0) {
    throw new Error(
      `${peer.name}: wrk saw ${bad} non-2xx responses${errors ? `, ${errors}` : ''}\n${out}`,
    );
  }
  const ms = (label) => {
    const m = out.match(new RegExp(`^\\s+${label}%\\s+([\\d.]+)(us|ms|s)`, 'm'));
    if (!m) return Number.NaN;
    return Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]];
  };
  return { rps, p50: ms('50'), p99: ms('99') };
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/**
 * An open-loop run at `rate` req/s: vegeta sends on schedule whether or not earlier answers came
 * (it adds workers rather than wait), so a stall shows in the latencies instead of lowering the
 * rate. The outbound sidecar as `HTTP_PROXY` is reached the way Go's clients reach one: the target
 * is `http://bench/` and HTTP_PROXY names the listener.
 */
export async function fixedRate(vegeta, work, peer, { rate, seconds }) {
  const base = `vegeta-${peer.port}-${(peer.path ?? '/').replace(/\W/g, '')}`;
  const targets = path.join(work, `${base}.txt`);
  const results = path.join(work, `${base}.bin`);
  const url = peer.absolute ?? `http://127.0.0.1:${peer.port}${peer.path ?? '/'}`;
  writeFileSync(targets, `GET ${url}\n${(peer.headers ?? []).join('\n')}\n`);
  const env = peer.absolute
    ? { ...process.env, HTTP_PROXY: `http://127.0.0.1:${peer.port}`, NO_PROXY: '' }
    : { ...process.env, HTTP_PROXY: '', NO_PROXY: '*' };
  const attack = spawn(
    'taskset',
    [
      '-c',
      LOAD_CORE,
      vegeta,
      'attack',
      `-rate=${rate}/1s`,
      `-duration=${seconds}s`,
      '-keepalive=true',
      // Bounds the backlog a peer that cannot keep up piles: what is left of it when the run ends
      // would still burn the shared proxy core while the next peer is measured.
      '-timeout=2s',
      '-max-workers=512',
      `-targets=${targets}`,
      `-output=${results}`,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'], env },
  );
  await once(attack, 'exit');
  const csv = execFileSync(vegeta, ['encode', '--to=csv', results], {
    maxBuffer: 256 * 1024 * 1024,
  }).toString();
  const latencies = [];
  let failed = 0;
  for (const line of csv.split('\n')) {
    if (!line) continue;
    const [, code, latency] = line.split(',', 3);
    if (code !== '200') failed++;
    latencies.push(Number(latency) / 1e6);
  }
  if (latencies.length === 0) throw new Error(`${peer.name}: vegeta recorded no answer`);
  // A peer past its capacity times out or refuses some requests: a figure of the row (their time
  // to fail is in the latencies), not a broken peer, which the checks before the runs catch.
  latencies.sort((a, b) => a - b);
  return {
    sentPerS: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    p999: percentile(latencies, 99.9),
    failedShare: failed / latencies.length,
  };
}

/**
 * `count` client connections, each after one keep-alive GET answered, then left idle: what a
 * proxy holds for clients that keep connections open. Opened in batches, as a listen backlog of
 * 511 would drop a burst of thousands of SYNs.
 */
export async function idleConnections(port, count, headers = []) {
  const sockets = [];
  const request = `GET / HTTP/1.1\r\nHost: bench\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`;
  for (let start = 0; start < count; start += 200) {
    const batch = [];
    for (let i = start; i < Math.min(count, start + 200); i++) {
      batch.push(
        new Promise((resolve, reject) => {
          const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
          socket.once('data', (chunk) => {
            if (!chunk.toString('latin1').startsWith('HTTP/1.1 200')) {
              reject(new Error(`idle connection ${i}: ${chunk.toString('latin1').slice(0, 40)}`));
            } else resolve(socket);
          });
          socket.once('error', reject);
        }),
      );
    }
    sockets.push(...(await Promise.all(batch)));
  }
  return () => {
    for (const socket of sockets) socket.destroy();
  };
}
