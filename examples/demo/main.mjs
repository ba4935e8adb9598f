#!/usr/bin/env node
// `pnpm demo`: one release of the example shop (frontend -> backend) from start to finish, with a
// real controller, its gateway and sidecar proxy, and the examples as the processes it runs. Each
// stage says what traffic does and checks it: a stage that does not behave ends the demo with exit 1.
//
//   node examples/demo/main.mjs [--step]     --step waits for Enter between stages
import { createInterface } from 'node:readline/promises';
import { styleText } from 'node:util';
import { alive, applyShop, hit, sample, shopRelease, startStack, until } from './stack.mjs';

const STEP = process.argv.includes('--step');
const COLOUR = process.stdout.isTTY && !process.env.NO_COLOR;
const style = (format, text) => (COLOUR ? styleText(format, text) : text);
const REQUESTS = 20;
/** The i-th of 20 users, sent as the release's sticky key so that the split is the same every run. */
const user = (i) => ({ 'x-user': `user-${i + 1}` });
const GRAY = { 'x-lane': 'gray' };
const RELEASE = 'checkout-v2';

class DemoFailure extends Error {}

function say(text = '') {
  process.stdout.write(`${text}\n`);
}

function check(ok, claim, seen) {
  if (!ok) throw new DemoFailure(`${claim}, but ${seen}`);
  say(`  ${style('green', '✓')} ${claim}`);
}

let stageNumber = 0;
async function stage(title) {
  if (STEP && stageNumber > 0) {
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    await rl.question(style('dim', '  (Enter for the next stage) '));
    rl.close();
  }
  stageNumber += 1;
  say();
  say(style('bold', `[${stageNumber}/6] ${title}`));
}

function showCounts(label, counts) {
  const parts = [...counts]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([path, n]) => `${path}: ${n}`);
  say(`  ${label.padEnd(22)} ${parts.join(', ')}`);
}

async function showTagged(stack, label = 'x-lane: gray') {
  const r = await hit(stack.gateway, GRAY);
  say(`  ${label.padEnd(22)} ${r.body}   ${style('dim', `x-lane-served: ${r.served}`)}`);
  return r;
}

function reasonsOf(release) {
  return release.status.events.map((e) => `${e.reason} ${e.message}`);
}

function showEvents(release, from, reasons) {
  for (const e of release.status.events.slice(from)) {
    // A process's last output lines come after the first line; the log has them.
    const message = e.message.split('\n')[0].replace(/; last output:$/, '');
    if (reasons.includes(e.reason)) say(`  ${style('cyan', e.reason.padEnd(17))} ${message}`);
  }
}

const onlyPaths = (counts, paths) => [...counts.keys()].every((path) => paths.includes(path));
const V1 = 'frontend v1 -> backend v1';
const V2 = 'frontend v2 -> backend v2';

async function demo(stack) {
  say(style('bold', 'graylane demo: one release of two services, from start to finish'));
  say(`  controller ${stack.url}   gateway ${stack.gateway}   state ${stack.stateDir}`);

  await stage('Stable only');
  await applyShop(stack);
  say('  frontend v1 and backend v1 run as processes the controller supervises;');
  say('  the frontend calls http://backend/ through its sidecar.');
  const stable = await sample(stack.gateway, REQUESTS, user);
  showCounts(`${REQUESTS} requests`, stable);
  check(
    stable.get(V1) === REQUESTS,
    `all ${REQUESTS} requests served by v1 -> v1`,
    JSON.stringify([...stable]),
  );
  const untagged = await showTagged(stack);
  check(
    untagged.body === V1,
    'no lane gray exists yet, so a tagged request is served by stable',
    untagged.body,
  );

  await stage('Canaries deployed bottom-up; no public traffic yet, but testers reach v2 -> v2');
  await stack.apply([shopRelease(RELEASE, [{ pause: {} }, { weight: 30 }, { pause: {} }])]);
  const deployed = await stack.waitForPhase(RELEASE, 'Paused');
  showEvents(deployed, 0, ['CanaryDeploying', 'CanaryReady', 'Deployed']);
  const reasons = reasonsOf(deployed);
  const backendReady = reasons.findIndex((r) => r.startsWith('CanaryReady canary backend'));
  const frontendStarts = reasons.findIndex((r) =>
    r.startsWith('CanaryDeploying deploying canary frontend'),
  );
  check(
    backendReady !== -1 && backendReady < frontendStarts,
    'the backend canary was ready and routed before the frontend canary started',
    reasons.join('; '),
  );
  const dark = await sample(stack.gateway, REQUESTS, user);
  showCounts(`${REQUESTS} requests`, dark);
  check(dark.get(V1) === REQUESTS, 'untagged traffic all stays on v1', JSON.stringify([...dark]));
  const tagged = await showTagged(stack);
  check(
    tagged.body === V2 && tagged.served === 'frontend=gray, backend=gray',
    'a request tagged x-lane: gray goes v2 -> v2',
    `${tagged.body} (${tagged.served})`,
  );

  await stage('Entry split 30 % (the classic 70/30); a canary calls the canary');
  await stack.act(RELEASE, 'approve');
  const split = await until(
    'the 30 % step',
    () => stack.release(RELEASE),
    (r) => r.status.phase === 'Paused' && r.status.weight === 30,
  );
  say(
    `  phase ${split.status.phase}, step ${split.status.step + 1} of 3, weight ${split.status.weight} %`,
  );
  const splitCounts = await sample(stack.gateway, REQUESTS, user);
  showCounts(`${REQUESTS} users`, splitCounts);
  check(
    onlyPaths(splitCounts, [V1, V2]),
    'every request is v1 -> v1 or v2 -> v2: a canary frontend calls the canary backend',
    JSON.stringify([...splitCounts]),
  );
  const inLane = splitCounts.get(V2) ?? 0;
  check(
    inLane >= 2 && inLane <= 12,
    `about 30 % of users are in the lane (${inLane} of ${REQUESTS})`,
    `${inLane}`,
  );
  const again = await sample(stack.gateway, REQUESTS, user);
  check(
    again.get(V2) === splitCounts.get(V2),
    'the same users land in the same lane again (sticky by x-user)',
    JSON.stringify([...again]),
  );

  await stage('The backend canary dies: tagged traffic falls back to backend v1, then returns');
  const eventsBefore = (await stack.release(RELEASE)).status.events.length;
  const fallback = await killUntilFallback(stack);
  say(`  killed backend v2 (pid ${fallback.pid})`);
  say(
    `  x-lane: gray           ${fallback.answer.body}   ${style('dim', `x-lane-served: ${fallback.answer.served}`)}`,
  );
  check(
    fallback.answer.body === 'frontend v2 -> backend v1' &&
      /^frontend=gray, backend=stable;fallback=\S+$/.test(fallback.answer.served),
    'the frontend canary still serves; the backend hop fell back to stable and says so',
    `${fallback.answer.body} (${fallback.answer.served})`,
  );
  const healed = await until(
    'the backend canary to be restarted and ready',
    () => stack.release(RELEASE),
    (r) =>
      r.status.services.backend.health === 'ready' && r.status.events.length > eventsBefore + 1,
  );
  showEvents(healed, eventsBefore, ['CanaryUnhealthy', 'CanaryHealthy']);
  const back = await until(
    'tagged traffic back on v2',
    () => hit(stack.gateway, GRAY),
    (r) => r.body === V2,
  );
  say(`  x-lane: gray           ${back.body}   ${style('dim', `x-lane-served: ${back.served}`)}`);
  check(
    back.served === 'frontend=gray, backend=gray',
    'the restarted canary serves the lane again',
    back.served,
  );

  await stage('Rollback (the frontend leaves the lane first), then redeploy');
  const beforeRollback = (await stack.release(RELEASE)).status.events.length;
  await stack.act(RELEASE, 'rollback');
  const rolled = await stack.waitForPhase(RELEASE, 'RolledBack');
  showEvents(rolled, beforeRollback, [
    'RollbackRequested',
    'EntryClosed',
    'CanaryRemoving',
    'CanaryUnrouted',
    'RolledBack',
  ]);
  const order = reasonsOf(rolled)
    .slice(beforeRollback)
    .filter(
      (r) =>
        r.startsWith('EntryClosed') ||
        r.startsWith('CanaryUnrouted') ||
        r.startsWith('CanaryRemoving'),
    )
    .map((r) =>
      r.startsWith('EntryClosed') ? 'entry' : r.includes('frontend') ? 'frontend' : 'backend',
    );
  const firstOf = (what) => order.indexOf(what);
  check(
    firstOf('entry') === 0 &&
      firstOf('frontend') !== -1 &&
      firstOf('frontend') < firstOf('backend'),
    'the entry closed first, then the frontend canary left, then the backend canary',
    order.join(' -> '),
  );
  const afterRollback = await sample(stack.gateway, REQUESTS, user);
  showCounts(`${REQUESTS} users`, afterRollback);
  const rolledTagged = await showTagged(stack);
  check(
    afterRollback.get(V1) === REQUESTS && rolledTagged.body === V1,
    'everyone is on v1 again, tagged or not',
    `${JSON.stringify([...afterRollback])}, tagged: ${rolledTagged.body}`,
  );
  say('  redeploying the same release...');
  await stack.apply([shopRelease(RELEASE, [{ pause: {} }, { weight: 30 }, { pause: {} }])]);
  await stack.waitForPhase(RELEASE, 'Paused');
  const redeployed = await showTagged(stack);
  check(redeployed.body === V2, 'the redeployed canaries serve the lane', redeployed.body);

  await stage('Promote: v2 becomes stable, the old versions are torn down top-down');
  const beforePromote = (await stack.release(RELEASE)).status.events.length;
  const v1Pids = (await stack.processes())
    .filter((p) => p.id.endsWith('.stable.0'))
    .map((p) => p.pid);
  const load = keepSending(stack.gateway);
  await stack.act(RELEASE, 'promote');
  const promoted = await stack.waitForPhase(RELEASE, 'Succeeded');
  const traffic = await load.stop();
  showEvents(promoted, beforePromote, ['PromoteRequested', 'Promoted', 'Retiring', 'Finalised']);
  const retiring = reasonsOf(promoted)
    .slice(beforePromote)
    .filter((r) => r.startsWith('Retiring'))
    .map((r) => r.split(' ')[1].replace(':', ''));
  check(
    retiring.join(' -> ') === 'frontend -> backend',
    'the previous versions were retired top-down: frontend, then backend',
    retiring.join(' -> '),
  );
  say(`  during the promotion: ${traffic.sent} requests, ${traffic.failed} failed`);
  check(
    traffic.failed === 0 && traffic.sent > 0,
    'no request failed during the promotion',
    `${traffic.failed} failed`,
  );
  const final = await sample(stack.gateway, REQUESTS, user);
  showCounts(`${REQUESTS} users`, final);
  check(final.get(V2) === REQUESTS, 'everyone is on v2', JSON.stringify([...final]));
  check(
    v1Pids.length === 2 && v1Pids.every((pid) => !alive(pid)),
    'the v1 processes are gone',
    v1Pids.join(','),
  );
  const running = (await stack.processes()).map((p) => p.id).sort();
  say(`  running: ${running.join(', ')}`);
}

/**
 * Kills the backend canary and sends a tagged request at once. The supervisor restarts the canary
 * after a backoff (0.5 s, then longer each time); should the restarted one already answer, it is
 * killed again, so the demo never depends on winning a race.
 */
async function killUntilFallback(stack) {
  for (let attempt = 0; attempt < 6; attempt++) {
    const canary = await until(
      'a running backend canary',
      async () => (await stack.processes()).find((p) => p.id === 'backend.gray.0'),
      (p) => p?.pid !== undefined && p.health === 'ready',
    );
    process.kill(canary.pid, 'SIGKILL');
    const answer = await hit(stack.gateway, GRAY);
    if (answer.body !== V2) return { pid: canary.pid, answer };
  }
  throw new DemoFailure(
    'the backend canary was killed 6 times, but a tagged request never fell back',
  );
}

/** Requests one after another until stopped; counts what was sent and what failed. */
function keepSending(gateway) {
  let running = true;
  const result = { sent: 0, failed: 0, failures: [] };
  const loop = (async () => {
    while (running) {
      const r = await hit(gateway, user(result.sent % REQUESTS)).catch((error) => ({
        status: 0,
        body: error.message,
      }));
      result.sent += 1;
      if (r.status !== 200) {
        result.failed += 1;
        result.failures.push(`${r.status} ${r.body}`);
      }
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return result;
    },
  };
}

async function main() {
  const stack = await startStack();
  let interrupted = false;
  const interrupt = () => {
    if (interrupted) return;
    interrupted = true;
    say('\n  interrupted: stopping every process the demo started...');
    stack.stop().then(() => process.exit(130));
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  try {
    await demo(stack);
    say();
    say(style('bold', 'done: stopping the controller, which stops everything it runs'));
  } catch (error) {
    if (interrupted) return;
    process.exitCode = 1;
    const what = error instanceof DemoFailure ? 'the demo did not behave' : 'the demo broke';
    process.stderr.write(`\n${style('red', `✗ ${what}:`)} ${error.message}\n`);
    if (!(error instanceof DemoFailure)) process.stderr.write(`${error.stack}\n`);
    process.stderr.write(`controller log (end):\n${stack.log().slice(-3000)}\n`);
  }
  if (interrupted) return;
  const pids = (await stack.processes().catch(() => [])).map((p) => p.pid).filter(Boolean);
  const code = await stack.stop();
  const left = pids.filter(alive);
  if (code !== 0 || left.length > 0) {
    process.stderr.write(`controller exit ${code}; still running: ${left.join(', ') || 'none'}\n`);
    process.exitCode = 1;
  } else if (process.exitCode !== 1) {
    say(`  nothing left running (${pids.length} processes stopped)`);
  }
}

await main();
