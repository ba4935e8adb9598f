// A V8 .cpuprofile (node --cpu-prof) as a top-frames table: self time by function, and the busy
// time grouped by whose code it is (graylane, lane-core, undici, prom-client, node internals,
// native and GC). Idle time is left out: the shares are of the CPU the process was busy.
//
//   node bench/cpu-profile.mjs FILE.cpuprofile [--top N]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const GROUPS = [
  ['lane-core', (url) => url.includes('lane-core/')],
  ['graylane', (url) => url.includes('router-proxy/')],
  ['undici', (url) => url.includes('/undici/')],
  // undici parses HTTP with llhttp compiled to WebAssembly (node:http's own parser is native).
  ['undici', (url) => url.startsWith('wasm://')],
  ['prom-client', (url) => url.includes('/prom-client/')],
  ['node internals (JS)', (url) => url.startsWith('node:')],
  ['other JS', (url) => url !== ''],
];

/** Whose code a frame is; a frame with no script is native (a builtin, a binding, or V8's GC). */
function groupOf({ url, functionName }) {
  if (url === '') return functionName === '(garbage collector)' ? 'GC' : 'native';
  return GROUPS.find(([, test]) => test(url))[0];
}

/** Self time per frame and per group, in ms, from the profile's samples. */
export function summarize(profile) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  // The first delta is the time from the profiler's start to its first sample, no frame's.
  for (let i = 1; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  }
  const frames = new Map();
  const groups = new Map();
  let busy = 0;
  for (const [id, ms] of self) {
    const { callFrame } = nodes.get(id);
    if (callFrame.functionName === '(idle)' || callFrame.functionName === '(program)') continue;
    const group = groupOf(callFrame);
    const where = callFrame.url ? `${shortUrl(callFrame.url)}:${callFrame.lineNumber + 1}` : '';
    const key = `${callFrame.functionName || '(anonymous)'}\u0000${where}`;
    const frame = frames.get(key) ?? {
      name: callFrame.functionName || '(anonymous)',
      where,
      group,
      ms: 0,
    };
    frame.ms += ms;
    frames.set(key, frame);
    groups.set(group, (groups.get(group) ?? 0) + ms);
    busy += ms;
  }
  return {
    busyMs: busy,
    frames: [...frames.values()].sort((a, b) => b.ms - a.ms),
    groups: [...groups].map(([name, ms]) => ({ name, ms })).sort((a, b) => b.ms - a.ms),
  };
}

function shortUrl(url) {
  const clean = url.replace(/^file:\/\//, '');
  const pkg = clean.match(
    /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+\/.*)$/,
  );
  if (pkg) return pkg[1];
  const ours = clean.match(/packages\/(.*)$/);
  return ours ? ours[1] : path.basename(clean);
}

const pct = (ms, busy) => `${((ms / busy) * 100).toFixed(1)} %`;

/** Markdown: the groups, then the `top` frames by self time. */
export function profileTables(summary, top = 25) {
  return [
    '| whose code | share of busy CPU |',
    '|---|--:|',
    ...summary.groups.map((g) => `| ${g.name} | ${pct(g.ms, summary.busyMs)} |`),
    '',
    '| function (self time) | where | whose | share of busy CPU |',
    '|---|---|---|--:|',
    ...summary.frames
      .slice(0, top)
      .map((f) => `| \`${f.name}\` | ${f.where} | ${f.group} | ${pct(f.ms, summary.busyMs)} |`),
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '30' } },
  });
  const summary = summarize(JSON.parse(readFileSync(positionals[0], 'utf8')));
  process.stdout.write(`${profileTables(summary, Number(values.top)).join('\n')}\n`);
}
