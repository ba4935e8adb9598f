import { ControllerError } from '../errors.js';
import { Draft, type Outcome } from './draft.js';
import type { Release } from './status.js';

export type ReleaseAction = 'approve' | 'pause' | 'resume' | 'promote' | 'rollback';
export const RELEASE_ACTIONS: readonly ReleaseAction[] = [
  'approve',
  'pause',
  'resume',
  'promote',
  'rollback',
];

function refuse(release: Release, action: ReleaseAction, why: string): never {
  throw new ControllerError(
    'invalidAction',
    `cannot ${action} release ${release.metadata.name} (${release.status.phase}): ${why}`,
  );
}

/**
 * A user's action on a release. Idempotent where repeating makes sense (rollback, promote, pause);
 * refused with GRAYLANE_ERR_INVALID_ACTION where the phase does not allow it.
 */
export function act(release: Release, action: ReleaseAction, now: number, actor = 'user'): Outcome {
  const draft = new Draft(release, now, actor);
  const { status } = draft;
  const phase = status.phase;
  switch (action) {
    case 'approve':
      if (!status.awaitingApproval) refuse(release, action, 'it is not waiting for approval');
      status.awaitingApproval = false;
      draft.event('Normal', 'Approved', `step ${status.step + 1} approved`);
      draft.nextStep();
      if (status.pausedFor === undefined) draft.phase('Progressing', 'Approved', 'approved');
      break;
    case 'pause':
      if (phase === 'Paused') break;
      if (phase !== 'Progressing') refuse(release, action, 'only a progressing release can pause');
      status.pausedFor = 'paused by user';
      draft.phase('Paused', 'PausedByUser', 'paused');
      break;
    case 'resume':
      if (phase !== 'Paused') refuse(release, action, 'it is not paused');
      if (status.pausedFor === undefined)
        refuse(release, action, 'it waits for approval (graylane approve)');
      delete status.pausedFor;
      if (status.awaitingApproval)
        draft.event('Normal', 'Resumed', 'resumed; still waiting for approval');
      else draft.phase('Progressing', 'Resumed', 'resumed');
      break;
    case 'promote':
      if (['Promoting', 'Finalising', 'Succeeded'].includes(phase)) break;
      if (phase !== 'Progressing' && phase !== 'Paused') {
        refuse(release, action, 'only a progressing or paused release can promote');
      }
      draft.phase(
        'Promoting',
        'PromoteRequested',
        'promotion requested; skipping the remaining steps',
      );
      draft.promote();
      break;
    case 'rollback':
      if (['RollingBack', 'RolledBack', 'Failed'].includes(phase)) break;
      if (phase === 'Finalising' || phase === 'Succeeded') {
        refuse(
          release,
          action,
          'it is promoted; release the previous version as a new release instead',
        );
      }
      draft.startRollback();
      break;
  }
  return draft.finish();
}
