import type { Draft } from './draft.js';
import type { GateOutcome, Observations } from './observations.js';
import {
  type AnalysisStatus,
  type CheckResult,
  type GateType,
  MAX_INTERVALS,
  type Release,
} from './status.js';

// What may move a release besides time and approval: the analysis intervals of a weight step,
// and the webhook gates before the first weight, after the last step and at the end.

const describeFailures = (checks: readonly CheckResult[]) =>
  checks
    .filter((c) => c.verdict === 'fail')
    .map((c) => `${c.service} ${c.check}: ${c.reason ?? 'failed'}`)
    .join('; ');

/**
 * A weight step with analysis: its intervals start once every proxy applied the weight; one that
 * passes moves to the next step, one that fails counts, and `threshold` failures roll back.
 */
export function analysing(draft: Draft, observations: Observations): boolean {
  const { status } = draft;
  const analysis = analysisStatus(draft);
  if (analysis.since === undefined) {
    analysis.since = new Date(draft.now).toISOString();
    return true;
  }
  const measured = observations.analysis;
  const last = analysis.intervals.at(-1);
  if (
    measured === undefined ||
    measured.from < Date.parse(analysis.since) ||
    (last !== undefined && measured.to <= Date.parse(last.to))
  ) {
    return false;
  }
  if (measured.rollback !== undefined) {
    draft.startRollback(`rollback webhook ${measured.rollback} answered 2xx`);
    return true;
  }
  const passed = measured.checks.every((c) => c.verdict === 'pass');
  const verdict: 'pass' | 'fail' = passed ? 'pass' : 'fail';
  analysis.intervals = [
    ...analysis.intervals,
    {
      from: new Date(measured.from).toISOString(),
      to: new Date(measured.to).toISOString(),
      step: status.step,
      weight: status.weight,
      verdict,
      checks: measured.checks,
    },
  ].slice(-MAX_INTERVALS);
  const where = `step ${status.step + 1} (weight ${status.weight}%)`;
  if (passed) {
    draft.event('Normal', 'AnalysisPassed', `${where}: every check passed`);
    draft.nextStep();
    return true;
  }
  failInterval(draft, where, describeFailures(measured.checks));
  return true;
}

/** One more failed interval; at the threshold, the rollback. */
function failInterval(draft: Draft, where: string, failures: string): void {
  const analysis = analysisStatus(draft);
  const threshold = draft.release.spec.analysis!.threshold;
  analysis.failed += 1;
  draft.event(
    'Warning',
    'AnalysisFailed',
    `${where}: failed interval ${analysis.failed}/${threshold}: ${failures}`,
  );
  if (analysis.failed >= threshold) {
    draft.startRollback(`analysis failed ${analysis.failed} times; last: ${failures}`);
  }
}

function analysisStatus(draft: Draft): AnalysisStatus {
  draft.status.analysis ??= { failed: 0, intervals: [] };
  return draft.status.analysis;
}

const hasWebhook = (release: Release, type: GateType) =>
  (release.spec.analysis?.webhooks ?? []).some((hook) => hook.type === type);

/**
 * Waits on the webhooks of a gate, which the driver calls while `status.analysis.gate` names it.
 * Returns their answer once one came after the wait began (then the gate is open again).
 */
function awaitGate(
  draft: Draft,
  observations: Observations,
  type: GateType,
): GateOutcome | undefined {
  const analysis = analysisStatus(draft);
  if (analysis.gate?.type !== type) {
    analysis.gate = { type, since: new Date(draft.now).toISOString() };
    draft.event('Normal', 'Webhook', `calling the ${type} webhooks`);
    return undefined;
  }
  const outcome = observations.gate;
  if (outcome?.type !== type || outcome.at < Date.parse(analysis.gate.since)) return undefined;
  delete analysis.gate;
  return outcome;
}

/** Pre-rollout webhooks before the first weight: a failure counts as a failed interval. */
export function preRollout(draft: Draft, observations: Observations): 'open' | 'waiting' | 'moved' {
  const { release, status } = draft;
  if (!hasWebhook(release, 'pre-rollout') || status.analysis?.preRolloutPassed) return 'open';
  const waited = status.analysis?.gate?.type === 'pre-rollout';
  const outcome = awaitGate(draft, observations, 'pre-rollout');
  if (outcome === undefined) return waited ? 'waiting' : 'moved';
  if (outcome.ok) {
    analysisStatus(draft).preRolloutPassed = true;
    draft.event('Normal', 'WebhookPassed', 'the pre-rollout webhooks passed');
  } else failInterval(draft, 'pre-rollout', `webhook ${outcome.reason}`);
  return 'moved';
}

/** Confirm-promotion webhooks after the last step: the release waits until they answer 2xx. */
export function confirmPromotion(
  draft: Draft,
  observations: Observations,
): 'open' | 'waiting' | 'moved' {
  if (!hasWebhook(draft.release, 'confirm-promotion')) return 'open';
  const waited = draft.status.analysis?.gate?.type === 'confirm-promotion';
  const outcome = awaitGate(draft, observations, 'confirm-promotion');
  if (outcome === undefined) return waited ? 'waiting' : 'moved';
  if (outcome.ok) return 'open';
  draft.event('Warning', 'PromotionNotConfirmed', `webhook ${outcome.reason}; asking again`);
  return 'moved';
}

/** Post-rollout webhooks before the release ends, either way; their answer is only reported. */
export function postRollout(draft: Draft, observations: Observations): boolean {
  if (!hasWebhook(draft.release, 'post-rollout')) return true;
  const outcome = awaitGate(draft, observations, 'post-rollout');
  if (outcome === undefined) return false;
  if (outcome.ok) draft.event('Normal', 'WebhookPassed', 'the post-rollout webhooks passed');
  else draft.event('Warning', 'WebhookFailed', `post-rollout webhook ${outcome.reason}`);
  return true;
}
