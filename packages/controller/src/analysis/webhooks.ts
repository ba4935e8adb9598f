import { request } from 'undici';
import type { Webhook, WebhookType } from '../documents/analysis.js';
import { parseDuration } from '../documents/duration.js';
import type { Release } from '../release/status.js';

export interface WebhookOutcome {
  ok: boolean;
  /** How it failed (`500`, `no answer within 2s`). */
  reason?: string;
}

/** The body every webhook gets, close to Flagger's: who, where, and the hook's metadata. */
function payload(release: Release, hook: Webhook) {
  return {
    name: release.metadata.name,
    lane: release.spec.lane,
    entrypoint: release.spec.entrypoint,
    services: release.spec.services.map((s) => ({ name: s.name, version: s.canary.version })),
    phase: release.status.phase,
    step: release.status.step,
    weight: release.status.weight,
    failedIntervals: release.status.analysis?.failed ?? 0,
    type: hook.type,
    hook: hook.name,
    metadata: hook.metadata,
  };
}

/** POSTs to one hook; 2xx passes, anything else, an error or no answer within its timeout fails. */
export async function callWebhook(release: Release, hook: Webhook): Promise<WebhookOutcome> {
  const timeoutMs = parseDuration(hook.timeout)!;
  try {
    const res = await request(hook.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(payload(release, hook)),
      signal: AbortSignal.timeout(timeoutMs),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    await res.body.dump();
    if (res.statusCode >= 200 && res.statusCode < 300) return { ok: true };
    return { ok: false, reason: String(res.statusCode) };
  } catch (error) {
    const timedOut =
      error instanceof Error && (error.name === 'TimeoutError' || /timeout/i.test(error.message));
    return {
      ok: false,
      reason: timedOut
        ? `no answer within ${hook.timeout}`
        : error instanceof Error
          ? error.message
          : String(error),
    };
  }
}

/** Every hook of a type, one after another; the first failure decides, and is named. */
export async function callWebhooks(release: Release, type: WebhookType): Promise<WebhookOutcome> {
  for (const hook of release.spec.analysis?.webhooks ?? []) {
    if (hook.type !== type) continue;
    const outcome = await callWebhook(release, hook);
    if (!outcome.ok) return { ok: false, reason: `${hook.name}: ${outcome.reason}` };
  }
  return { ok: true };
}
