// bench/peers.mjs's report: the tables, the ratios spelled out, and issue 21's targets as met or not.
import { profileTables } from '../cpu-profile.mjs';
import { fmt, LOAD_CORE, PROXY_CORE, ratio } from './harness.mjs';

const met = (ok) => (ok ? 'met' : '**not met**');
const ms = (x) => fmt(x, 2);

function throughputTable(rows, at) {
  const direct = at('direct');
  const nginx = at('nginx');
  const floor = at('floor');
  const fastify = at('fastify');
  return [
    '| peer | max req/s (median) | min–max | vs direct | vs nginx | vs undici floor (Pool.dispatch) | vs @fastify/http-proxy | p50 ms | p99 ms | CPU cores per 1000 req/s | req/s per core (CPU time) | per core vs nginx | per core vs undici floor (Pool.dispatch) | per core vs @fastify/http-proxy | peak RSS MB |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...rows
      .filter((r) => !r.body && !r.cluster)
      .map(
        (r) =>
          `| ${r.name} | ${fmt(r.rps)} | ${fmt(r.rpsMin)}–${fmt(r.rpsMax)} | ${ratio(r.rps, direct.rps)} | ${ratio(r.rps, nginx.rps)} | ${ratio(r.rps, floor.rps)} | ${ratio(r.rps, fastify.rps)} | ${ms(r.p50)} | ${ms(r.p99)} | ${fmt(r.coresPer1000, 3)} | ${fmt(r.perCore)} | ${ratio(r.perCore, nginx.perCore)} | ${ratio(r.perCore, floor.perCore)} | ${ratio(r.perCore, fastify.perCore)} | ${fmt(r.peakRssMb)} |`,
      ),
  ];
}

function fixedRateTable(rows, at, rate) {
  const direct = at('direct').fixed;
  return [
    `| peer | p50 ms | p99 ms | p99 min–max | p99.9 ms | added p50 ms vs direct | added p99 ms vs direct | not 200 (worst round) | RSS after MB |`,
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...rows
      .filter((r) => r.fixed)
      .map(
        (r) =>
          `| ${r.name} | ${ms(r.fixed.p50)} | ${ms(r.fixed.p99)} | ${ms(r.fixed.p99Min)}–${ms(r.fixed.p99Max)} | ${ms(r.fixed.p999)} | ${ms(r.fixed.p50 - direct.p50)} | ${ms(r.fixed.p99 - direct.p99)} | ${(r.fixed.failedShare * 100).toFixed(1)} % | ${fmt(r.fixed.rssMb)} |`,
      ),
    '',
    `Open loop at ${rate} req/s: vegeta sends on schedule whether or not earlier answers came, so a stall shows as latency; a peer that cannot keep up times out or refuses some (vegeta's timeout here is 2 s, at most 512 requests in flight), counted as "not 200". "RSS after" is the peer's resident memory right after its run at ${rate} req/s (the graylane rows share one process, except the 100-service one).`,
  ];
}

function bodyTable(rows, at) {
  const sized = rows.filter((r) => r.body);
  const floorOf = (r) =>
    sized.find((s) => s.body === r.body && s.name.startsWith(at('floor').name));
  return [
    '| peer, body | max req/s | vs undici floor (Pool.dispatch), same body | MB/s of body | CPU cores per 1000 req/s | per core vs the floor, same body |',
    '|---|--:|--:|--:|--:|--:|',
    ...sized.map((r) => {
      const mb = r.body.bytes / (1024 * 1024);
      return `| ${r.name} | ${fmt(r.rps)} | ${ratio(r.rps, floorOf(r)?.rps)} | ${fmt(r.rps * mb, 1)} | ${fmt(r.coresPer1000, 3)} | ${ratio(r.perCore, floorOf(r)?.perCore)} |`;
    }),
    '',
    'Closed loop (wrk, as above). Response bodies: a GET answered with 1 KiB or 1 MiB. Request bodies: a POST of 1 KiB or 1 MiB (`Content-Length`), which the upstream (nginx) reads whole before answering the small body; graylane sends a body that came whole with its head (the 1 KiB one, as wrk writes it) from memory, and streams a larger POST upstream (it keeps only bodies it may send twice).',
  ];
}

function halfMaxTable(rows, at) {
  const direct = at('direct').half;
  return [
    '| peer | rate req/s (half its max) | sent req/s | p50 ms | p99 ms | p99 min–max | p99.9 ms | added p50 ms vs direct | added p99 ms vs direct | not 200 (worst round) |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...rows
      .filter((r) => r.half)
      .map(
        (r) =>
          `| ${r.name} | ${fmt(r.half.rate)} | ${fmt(r.half.sentPerS)} | ${ms(r.half.p50)} | ${ms(r.half.p99)} | ${ms(r.half.p99Min)}–${ms(r.half.p99Max)} | ${ms(r.half.p999)} | ${ms(r.half.p50 - direct.p50)} | ${ms(r.half.p99 - direct.p99)} | ${(r.half.failedShare * 100).toFixed(1)} % |`,
      ),
    '',
    `Open loop (vegeta) at half of each peer's own median maximum from the closed-loop rounds above, in ${'interleaved'} rounds after them. Each peer runs at its own rate, so "added vs direct" compares direct at half of direct's maximum (a higher rate) with the peer at half of its own: read it as what the proxy adds when both are half busy. vegeta and the upstream share core ${LOAD_CORE}: at the highest rates (direct, nginx, HAProxy) the generator itself takes part of that core, "sent" says what it managed.`,
  ];
}

function clusterTable(rows, at) {
  const single = at('gateway');
  const clustered = rows.filter((r) => r.cluster);
  return [
    '| gateway | max req/s | vs one process | CPU cores per 1000 req/s | per core vs one process | peak RSS MB (all processes) |',
    '|---|--:|--:|--:|--:|--:|',
    `| one process (the gateway row above) | ${fmt(single.rps)} | 1.00× | ${fmt(single.coresPer1000, 3)} | 1.00× | ${fmt(single.peakRssMb)} (shared with the other listeners' rows) |`,
    ...clustered.map(
      (r) =>
        `| ${r.name} | ${fmt(r.rps)} | ${ratio(r.rps, single.rps)} | ${fmt(r.coresPer1000, 3)} | ${ratio(r.perCore, single.perCore)} | ${fmt(r.peakRssMb)} |`,
    ),
    '',
    `graylane-proxy has no worker mode; \`bench/peers/graylane-cluster.mjs\` wraps N gateway processes as node:cluster workers behind one port (the primary hands each new connection to a worker in turn; Node 20 has no \`reusePort\` listen option). Every process of it is on core ${PROXY_CORE}: core ${LOAD_CORE} holds the load generator and the upstream, and this machine has no third. So these rows show only what workers cost: a per-core figure at about 1.00× means a worker handles a request for the same CPU as the plain process (the primary is idle once keep-alive connections are placed), so on a host with free cores N workers could serve up to about N times one core's maximum. That scaling itself, the primary's cost at a high connection rate, and memory bandwidth or cache effects between workers on separate cores cannot be measured here. Memory grows with each worker (a whole Node process each).`,
  ];
}

function profileSection(profile) {
  return [
    `A fresh graylane process (the gateway, untagged), warmed up, then profiled by V8's sampling profiler (\`node:inspector\`, as \`--cpu-prof\` does) while wrk loads it at its one-core maximum (${fmt(profile.rps)} req/s while profiled; the profiler itself costs some). Self time, as shares of the CPU the process was busy (idle left out); "native" is C++ and syscalls (\`writev\`, \`writeLatin1String\`: the socket writes), "node internals" Node's own JavaScript (http, streams, timers, events).`,
    '',
    ...profileTables(profile, 25),
  ];
}

function idleTable(idle) {
  return [
    '| peer | idle keep-alive connections | RSS before MB | RSS with them MB | KB per connection |',
    '|---|--:|--:|--:|--:|',
    ...idle.map(
      (r) =>
        `| ${r.name} | ${fmt(r.count)} | ${fmt(r.before)} | ${fmt(r.after)} | ${fmt(r.kbPer, 1)} |`,
    ),
    '',
    'Each connection made one keep-alive GET, answered, then stayed open and idle; the graylane process here serves nothing else (`server.keepAliveTimeoutMs` 600 s and `maxConnections` 20 000 so that they stay).',
  ];
}

function targets(rows, at, names, rate) {
  const floor = at('floor');
  const fastify = at('fastify');
  const direct = at('direct').fixed;
  const lines = [GATEWAYS.map((key) => names[key])].flat().map((name) => {
    const r = rows.find((row) => row.name === name);
    const f = r.fixed;
    const addedP50 = f.p50 - direct.p50;
    const addedP99 = f.p99 - direct.p99;
    return `- ${name}: per core (CPU time) ${ratio(r.perCore, floor.perCore)} the Pool.dispatch floor (target ≥ 0.90×: ${met(r.perCore >= 0.9 * floor.perCore)}) and ${ratio(r.perCore, fastify.perCore)} @fastify/http-proxy (target ≥ 2.50×: ${met(r.perCore >= 2.5 * fastify.perCore)}); measured req/s ${ratio(r.rps, floor.rps)} and ${ratio(r.rps, fastify.rps)}; ${fmt(r.coresPer1000, 3)} cores per 1000 req/s (target ≤ 0.10: ${met(r.coresPer1000 <= 0.1)}); added latency at ${rate} req/s +${ms(addedP50)} ms p50 (target ≤ 0.2: ${met(addedP50 <= 0.2)}), +${ms(addedP99)} ms p99 (target ≤ 1: ${met(addedP99 <= 1)}); RSS after ${rate} req/s ${fmt(f.rssMb)} MB (target ≤ 64 MB: ${met(f.rssMb <= 64)}), peak ${fmt(r.peakRssMb)} MB after every row; at half its maximum (${fmt(r.half.rate)} req/s) p50 ${ms(r.half.p50)} / p99 ${ms(r.half.p99)} ms, +${ms(r.half.p50 - at('direct').half.p50)} / +${ms(r.half.p99 - at('direct').half.p99)} ms vs direct at half of direct's`;
  });
  const tagged = at('tagged');
  const untagged = at('gateway');
  const laneCost = 1 - tagged.perCore / untagged.perCore;
  lines.push(
    `- Lane logic on vs off (gateway, \`x-lane: gray\` vs untagged, per core): ${(laneCost * 100).toFixed(1)} % fewer requests per core (target ≤ 3 %: ${met(Math.abs(laneCost) <= 0.03)}).`,
  );
  const large = at('large');
  lines.push(
    `- Table size (tagged gateway, 100 services × 10 lanes vs 1 service): ${ratio(large.perCore, tagged.perCore)} per core; p99 at ${rate} req/s ${ms(large.fixed.p99)} vs ${ms(tagged.fixed.p99)} ms; RSS after ${fmt(large.fixed.rssMb)} MB (a process of its own).`,
  );
  const named = at('named');
  const outbound = at('outbound');
  lines.push(
    `- Host-name endpoint (\`http://localhost:PORT\` vs \`http://127.0.0.1:PORT\`, outbound, same upstream): p99 at ${rate} req/s ${ms(named.fixed.p99)} vs ${ms(outbound.fixed.p99)} ms (p50 ${ms(named.fixed.p50)} vs ${ms(outbound.fixed.p50)}); per core ${ratio(named.perCore, outbound.perCore)}.`,
  );
  return lines;
}

const GATEWAYS = ['gateway', 'outbound'];

export function report({ rows, idle, profile, loads, settings, machine, names }) {
  const at = (key) => rows.find((r) => r.name === (names[key] ?? key));
  const { rounds, seconds, rate, connections } = settings;
  return [
    '# graylane-proxy side by side with its peers',
    '',
    `- Date: ${new Date().toISOString()}`,
    `- Machine: ${machine}`,
    `- Command: \`${['node bench/peers.mjs', ...process.argv.slice(2)].join(' ')}\`; ${rounds} round(s), each peer ${seconds} s closed loop then ${seconds} s at ${rate} req/s, peers interleaved with rotating order; medians over rounds.`,
    `- Placement: the proxy under test alone on core ${PROXY_CORE} (taskset); wrk (1 thread, ${connections} keep-alive connections, closed loop), vegeta (open loop) and the upstream (nginx, 1 worker, a fixed ${settings.bodyBytes}-byte body unless a row says otherwise) on core ${LOAD_CORE}.`,
    `- Load average (1 min) at the start of each round and at the end: ${loads.map((l) => l.toFixed(1)).join(', ')}. Other engineers' test suites share this 2-core machine, so req/s and latencies are noisy: read the per-core ratios, which CPU time makes fairer.`,
    "- graylane rows are graylane-proxy processes with the CLI defaults (metrics, head guards, body deadlines on; log level silent): one process serves the gateway, outbound and inbound rows (its peak RSS is after all of them), the 100-service table has its own. The two-hop row passes the gateway and then the same process's outbound listener.",
    '',
    '## Maximum throughput, one core',
    '',
    'Ratios are of req/s measured; "per core" is 1000 / (CPU cores per 1000 req/s): what one whole core would serve at the CPU each request cost.',
    '',
    ...throughputTable(rows, at),
    '',
    `## Latency at a fixed ${rate} req/s`,
    '',
    ...fixedRateTable(rows, at, rate),
    '',
    "## Latency at 50 % of each peer's maximum",
    '',
    ...halfMaxTable(rows, at),
    '',
    '## Bodies',
    '',
    ...bodyTable(rows, at),
    '',
    '## Workers: node:cluster',
    '',
    ...clusterTable(rows, at),
    '',
    "## Where the gateway's CPU goes",
    '',
    ...profileSection(profile),
    '',
    '## Idle keep-alive connections',
    '',
    ...idleTable(idle),
    '',
    '## Targets (issue 21)',
    '',
    ...targets(rows, at, names, rate),
    '',
  ].join('\n');
}
