import { randomBytes } from 'node:crypto';
import { act, RELEASE_ACTIONS, type ReleaseAction } from '../release/actions.js';
import type { Release, ReleaseEvent, ReleaseStatus } from '../release/status.js';

/**
 * A user's action on a Release in Kubernetes mode, asked for with an annotation
 * (`graylane.dev/request=approve:<id>`, written by `graylane approve --kubernetes` or by hand with
 * `kubectl annotate … --overwrite`). Each distinct value is applied once: the status remembers the
 * last one, so a re-list or a failover never applies it twice.
 */
export const REQUEST_ANNOTATION = 'graylane.dev/request';

/** What the status says of the last request: its value, and why it was refused if it was. */
export interface RequestStatus {
  lastRequest?: string;
  lastRequestRefused?: string;
}

/** A fresh annotation value for an action: the ID only has to differ from the last one. */
export function requestValue(action: ReleaseAction): string {
  return `${action}:${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}

/**
 * The release after the request in `value`, if it is a new one. A refused action (approve when
 * nothing waits, an unknown action) changes nothing but the status' record of the request, and is
 * a Warning event `RequestRefused`.
 */
export function applyRequest(
  value: string | undefined,
  release: Release,
  now: number,
): { status: ReleaseStatus; events: ReleaseEvent[] } | undefined {
  const status = release.status as ReleaseStatus & RequestStatus;
  if (!value || value === status.lastRequest) return undefined;
  const { lastRequestRefused: _previous, ...rest } = status;
  const done = { ...release, status: { ...rest, lastRequest: value } } as Release;
  const refused = (message: string) => ({
    status: { ...done.status, lastRequestRefused: message } as ReleaseStatus,
    events: [
      {
        time: new Date(now).toISOString(),
        type: 'Warning' as const,
        reason: 'RequestRefused',
        message,
        actor: 'user',
        phase: release.status.phase,
      },
    ],
  });
  const action = value.split(':')[0] as ReleaseAction;
  if (!RELEASE_ACTIONS.includes(action)) {
    return refused(`unknown request ${value}; one of ${RELEASE_ACTIONS.join(', ')}`);
  }
  try {
    const outcome = act(done, action, now, 'user');
    return { status: outcome.status, events: outcome.events };
  } catch (error) {
    return refused((error as Error).message);
  }
}
