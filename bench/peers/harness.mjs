// What bench/peers.mjs stands on: the tools it installs, the processes it starts (pinned with
// taskset), and what /proc says of their CPU and memory.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const PROXY_CORE = '0';
export const LOAD_CORE = '1';
const CLOCK_TICKS_PER_S = 100;

// ---------------------------------------------------------------------------------------------
// Tools

function have(tool) {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** wrk, nginx and HAProxy from Debian, installed with apt-get when missing (as root). */
export function ensureTools() {
  const missing = ['wrk', 'nginx', 'haproxy', 'taskset'].filter((tool) => !have(tool));
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`missing ${missing.join(', ')}: apt-get install -y wrk nginx-light haproxy`);
  }
  execFileSync('apt-get', ['update', '-q'], { stdio: 'ignore' });
  execFileSync('apt-get', ['install', '-y', '-q', 'wrk', 'nginx-light', 'haproxy'], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

const VEGETA_MODULE = 'github.com/tsenart/vegeta/v12@v12.13.0';

/**
 * vegeta, the open-loop generator for the fixed-rate rows: built once with the machine's Go from
 * the Go module proxy into a cache directory outside the repository, and reused from there.
 */
export function ensureVegeta() {
  const cache = path.join(
    process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'),
    'graylane-bench',
  );
  const binary = path.join(cache, 'bin', 'vegeta');
  if (existsSync(binary)) return binary;
  if (!have('go')) {
    throw new Error(
      `the fixed-rate rows need vegeta, built with \`go install ${VEGETA_MODULE}\`: install Go (1.22 or later) and run again`,
    );
  }
  try {
    execFileSync('go', ['install', VEGETA_MODULE], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        GOBIN: path.dirname(binary),
        GOPATH: path.join(cache, 'go'),
        GOFLAGS: '-modcacherw',
      },
    });
  } catch (error) {
    throw new Error(`\`go install ${VEGETA_MODULE}\` failed:\n${error.stderr ?? error.message}`);
  }
  return binary;
}

// ---------------------------------------------------------------------------------------------
// Processes

export async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  return port;
}

export async function waitForPort(port, host = '127.0.0.1') {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, host, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`nothing listens on ${host}:${port}`);
}

const processes = [];
let stopping = false;
/** Peers that exited while the bench ran: a crash is a failure, even in --quick. */
export const failures = [];

export function pinned(core, command, args) {
  const child = spawn('taskset', ['-c', core, command, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  processes.push(child);
  child.once('exit', (code, signal) => {
    if (!stopping && !child.stopped) {
      failures.push(`${command} ${args.join(' ')} exited (${code ?? signal})`);
    }
  });
  return child;
}

/** Stops one peer before the others (not a crash); resolves once it exited. */
export async function stop(child) {
  child.stopped = true;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

/** A Node peer prints its ports as one JSON line when it listens. */
export async function nodePeer(script, args) {
  const child = pinned(PROXY_CORE, process.execPath, [script, ...args]);
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`${path.basename(script)} ${args.join(' ')} exited (${code}) before listening`);
  });
  const [line] = await Promise.race([once(child.stdout, 'data'), exited]);
  return { child, ports: JSON.parse(line.toString()) };
}

export function nginx(work, core, name, httpBlock) {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;\ndaemon off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\n` +
      `events { worker_connections 20000; }\n` +
      `http {\n  access_log off;\n  keepalive_requests 1000000;\n  keepalive_timeout 120s;\n` +
      `  client_body_temp_path ${dir}; proxy_temp_path ${dir};\n${httpBlock}\n}\n`,
  );
  return pinned(core, 'nginx', ['-p', dir, '-c', conf]);
}

export function stopAll() {
  stopping = true;
  for (const child of processes) child.kill('SIGTERM');
}

// Stopped by a signal, the peers go too.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    stopAll();
    process.exit(130);
  });
}

// ---------------------------------------------------------------------------------------------
// /proc: CPU and memory of a peer's processes (nginx and haproxy fork workers)

function childrenOf(pid) {
  const pids = [pid];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (pids.includes(ppid)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** The taskset wrapper's child is the peer itself: taskset execs, so the pid is the same. */
export const pidsOf = (child) => childrenOf(child.pid);

export function cpuSeconds(pids) {
  let total = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    total += (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
  }
  return total;
}

/** `VmHWM` (peak) or `VmRSS` (now) of the processes together, in MB. */
export function rssMb(pids, field = 'VmHWM') {
  let kb = 0;
  for (const pid of pids) {
    const match = readFileSync(`/proc/${pid}/status`, 'utf8').match(
      new RegExp(`^${field}:\\s+(\\d+)`, 'm'),
    );
    kb += Number(match?.[1] ?? 0);
  }
  return kb / 1024;
}

/**
 * Waits until a peer's processes are idle (under 5 % of a core over 250 ms, for at most 10 s): a
 * peer still working off a backlog would take the shared proxy core from the next one measured.
 */
export async function settled(pids) {
  for (let i = 0; i < 40; i++) {
    const before = cpuSeconds(pids);
    await new Promise((resolve) => setTimeout(resolve, 250));
    if (cpuSeconds(pids) - before < 0.0125) return;
  }
}

// ---------------------------------------------------------------------------------------------
// Figures

export const median = (xs) => {
  const sorted = [...xs].filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

export const fmt = (x, digits = 0) =>
  Number.isFinite(x)
    ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : '—';

export const ratio = (a, b) => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : '—');

export function machine() {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${cpu}, ${os.cpus().length} cores, Node ${process.version}, ${os.type()} ${os.release()}`;
}
