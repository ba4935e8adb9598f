/**
 * A release's lifecycle. Deploying is bottom-up, Finalising tears down top-down; RollingBack can
 * start from any phase before Finalising. Terminal phases never change again.
 */
export const PHASES = [
  'Pending',
  'Deploying',
  'Progressing',
  'Paused',
  'Promoting',
  'Finalising',
  'Succeeded',
  'RollingBack',
  'RolledBack',
  'Failed',
] as const;

export type Phase = (typeof PHASES)[number];

export const TRANSITIONS: Readonly<Record<Phase, readonly Phase[]>> = {
  Pending: ['Deploying', 'RollingBack'],
  Deploying: ['Progressing', 'RollingBack'],
  Progressing: ['Paused', 'Promoting', 'RollingBack'],
  Paused: ['Progressing', 'Promoting', 'RollingBack'],
  Promoting: ['Finalising', 'RollingBack'],
  Finalising: ['Succeeded'],
  Succeeded: [],
  RollingBack: ['RolledBack', 'Failed'],
  RolledBack: [],
  Failed: [],
};

export function isTerminal(phase: Phase): boolean {
  return TRANSITIONS[phase].length === 0;
}

/** Phases in which a release holds its services (another release may not touch them). */
export function isActive(phase: Phase): boolean {
  return !isTerminal(phase);
}

/**
 * Where one service's canary is. `routed`: its lane is in the route table. `unrouted`: taken out,
 * waiting for every proxy to apply that. `promoted`: serves as the service's stable version.
 * `retiring`: the old stable version is being stopped. The order of the list is the usual order.
 */
export const CANARY_STATES = [
  'pending',
  'deploying',
  'routed',
  'unrouted',
  'removing',
  'removed',
  'promoted',
  'retiring',
  'retired',
] as const;

export type CanaryState = (typeof CANARY_STATES)[number];

/** Whether the canary's lane is in the route table in this state. */
export function laneRouted(state: CanaryState): boolean {
  return state === 'routed';
}

/** Whether the canary's version serves the stable lane in this state. */
export function servesStable(state: CanaryState): boolean {
  return state === 'promoted' || state === 'retiring' || state === 'retired';
}
