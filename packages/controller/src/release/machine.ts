import { parseDuration } from '../documents/duration.js';
import { Draft, type Outcome } from './draft.js';
import { analysing, confirmPromotion, postRollout, preRollout } from './gates.js';
import type { Observations } from './observations.js';
import { deployOrder } from './order.js';
import type { Release } from './status.js';
import { releaseSteps } from './steps.js';

/**
 * Top-down: callers before callees, and the entry service first when nothing in the release calls
 * it (then its lane leaves together with the entry split). A callee never leaves before its callers.
 */
export function teardownOrder(release: Release, entryService: string | undefined): string[] {
  const services = release.spec.services;
  const order = deployOrder(services).reverse();
  if (entryService === undefined || !order.includes(entryService)) return order;
  const called = services.some((s, i) =>
    (s.dependsOn ?? (i > 0 ? [services[i - 1]!.name] : [])).includes(entryService),
  );
  if (called) return order;
  return [entryService, ...order.filter((name) => name !== entryService)];
}

function stepDuration(release: Release, index: number): number | undefined {
  const step = releaseSteps(release.spec)[index];
  if (step === undefined || !('pause' in step) || step.pause.duration === undefined)
    return undefined;
  return parseDuration(step.pause.duration);
}

function recordHealth(draft: Draft, observations: Observations): void {
  for (const [name, service] of Object.entries(draft.status.services)) {
    if (service.canary !== 'routed' && service.canary !== 'deploying') continue;
    const seen = observations.canaries[name] ?? { health: 'absent' as const };
    if (seen.health === service.health) continue;
    const was = service.health;
    service.health = seen.health;
    if (seen.message === undefined) delete service.message;
    else service.message = seen.message;
    if (service.canary !== 'routed') continue;
    if (seen.health === 'ready') {
      draft.event('Normal', 'CanaryHealthy', `canary ${name} is ready again (was ${was})`);
    } else {
      const why = seen.message ? `: ${seen.message}` : '';
      draft.event(
        'Warning',
        'CanaryUnhealthy',
        `canary ${name} is ${seen.health}${why}; proxies fall back to the stable version meanwhile`,
      );
    }
  }
}

function deploying(draft: Draft, observations: Observations): boolean {
  const { status, release } = draft;
  for (const name of deployOrder(release.spec.services)) {
    const service = status.services[name]!;
    if (service.canary === 'pending') {
      service.canary = 'deploying';
      draft.event(
        'Normal',
        'CanaryDeploying',
        `deploying canary ${name} (lane ${release.spec.lane})`,
      );
      return true;
    }
    if (service.canary === 'deploying') {
      const seen = observations.canaries[name] ?? { health: 'absent' as const };
      if (seen.health === 'failed') {
        draft.startRollback(
          `canary ${name} failed to deploy: ${seen.message ?? 'no reason given'}`,
        );
        return true;
      }
      if (seen.health !== 'ready') return false;
      service.canary = 'routed';
      draft.routingChanged();
      draft.event(
        'Normal',
        'CanaryReady',
        `canary ${name} is ready; lane ${release.spec.lane} of ${name} enters the route table`,
      );
      return true;
    }
    if (!draft.settled(observations)) return false;
  }
  status.step = 0;
  status.stepStartedAt = new Date(draft.now).toISOString();
  status.entryRouted = true;
  draft.routingChanged();
  draft.phase(
    'Progressing',
    'Deployed',
    `every canary is in the route table; matched and tagged traffic reaches lane ${release.spec.lane}`,
  );
  return true;
}

function progressing(draft: Draft, observations: Observations): boolean {
  const { status, release } = draft;
  // With analysis, an unhealthy canary is judged by its metrics: fallbacks away from it fail checks.
  const unhealthy = Object.entries(status.services).find(
    ([, service]) => service.canary === 'routed' && service.health !== 'ready',
  );
  if (unhealthy && status.phase === 'Progressing' && release.spec.analysis === undefined) {
    const [name, service] = unhealthy;
    status.pausedFor = `canary ${name} is ${service.health}`;
    draft.phase(
      'Paused',
      'CanaryUnhealthy',
      `${status.pausedFor}; resume when it is healthy`,
      'Warning',
    );
    return true;
  }
  if (status.phase !== 'Progressing') return false;
  const step = releaseSteps(release.spec)[status.step];
  if (step === undefined) {
    const confirmed = confirmPromotion(draft, observations);
    if (confirmed !== 'open') return confirmed === 'moved';
    draft.phase('Promoting', 'StepsDone', 'every step is done');
    draft.promote();
    return true;
  }
  if ('weight' in step) {
    if (status.weight !== step.weight) {
      const gate = preRollout(draft, observations);
      if (gate !== 'open') return gate === 'moved';
      status.weight = step.weight;
      draft.routingChanged();
      draft.event(
        'Normal',
        'Weight',
        `step ${status.step + 1}: ${step.weight}% of entry traffic to lane ${release.spec.lane}`,
      );
      return true;
    }
    if (!draft.settled(observations)) return false;
    if (release.spec.analysis !== undefined) return analysing(draft, observations);
    draft.nextStep();
    return true;
  }
  const duration = stepDuration(release, status.step);
  if (duration === undefined) {
    status.awaitingApproval = true;
    draft.phase('Paused', 'AwaitingApproval', `step ${status.step + 1}: waiting for approval`);
    return true;
  }
  const started = Date.parse(status.stepStartedAt ?? new Date(draft.now).toISOString());
  if (draft.now < started + duration) return false;
  draft.nextStep();
  return true;
}

function promoting(draft: Draft, observations: Observations): boolean {
  if (!draft.settled(observations)) return false;
  draft.phase(
    'Finalising',
    'Promoted',
    'every proxy serves the new versions as stable; stopping the old ones top-down',
  );
  return true;
}

function finalising(
  draft: Draft,
  observations: Observations,
  entryService: string | undefined,
): boolean {
  const { status } = draft;
  for (const name of teardownOrder(draft.release, entryService)) {
    const service = status.services[name]!;
    if (service.canary === 'promoted') {
      service.canary = 'retiring';
      draft.event(
        'Normal',
        'Retiring',
        `${name}: the canary is the stable version now; stopping the previous one after drain`,
      );
      return true;
    }
    if (service.canary === 'retiring') {
      if ((observations.canaries[name]?.health ?? 'absent') !== 'absent') return false;
      service.canary = 'retired';
      service.health = 'absent';
    }
  }
  if (!postRollout(draft, observations)) return false;
  draft.phase(
    'Succeeded',
    'Finalised',
    'the release is promoted and the previous versions are stopped',
  );
  return true;
}

function rollingBack(
  draft: Draft,
  observations: Observations,
  entryService: string | undefined,
): boolean {
  const { status, release } = draft;
  const order = teardownOrder(release, entryService);
  if (status.entryRouted || status.weight > 0) {
    status.entryRouted = false;
    status.weight = 0;
    const first =
      order[0] === entryService && entryService !== undefined
        ? status.services[entryService]
        : undefined;
    if (first?.canary === 'routed') first.canary = 'unrouted';
    draft.routingChanged();
    draft.event(
      'Normal',
      'EntryClosed',
      `entry split to 0; lane ${release.spec.lane} leaves the entrypoint first`,
    );
    return true;
  }
  for (const name of order) {
    const service = status.services[name]!;
    switch (service.canary) {
      case 'pending':
        service.canary = 'removed';
        continue;
      case 'deploying':
        service.canary = 'removing';
        draft.event(
          'Normal',
          'CanaryRemoving',
          `stopping canary ${name}, which never entered the route table`,
        );
        return true;
      case 'routed':
        service.canary = 'unrouted';
        draft.routingChanged();
        draft.event(
          'Normal',
          'CanaryUnrouted',
          `lane ${release.spec.lane} of ${name} leaves the route table`,
        );
        return true;
      case 'unrouted':
        if (!draft.settled(observations)) return false;
        service.canary = 'removing';
        draft.event(
          'Normal',
          'CanaryRemoving',
          `every proxy stopped sending lane ${release.spec.lane} to ${name}; stopping its canary after drain`,
        );
        return true;
      case 'removing':
        if ((observations.canaries[name]?.health ?? 'absent') !== 'absent') return false;
        service.canary = 'removed';
        service.health = 'absent';
        delete service.message;
        continue;
      default:
        continue;
    }
  }
  if (!postRollout(draft, observations)) return false;
  if (status.failure !== undefined)
    draft.phase('Failed', 'RolledBack', `rolled back after: ${status.failure}`, 'Warning');
  else
    draft.phase(
      'RolledBack',
      'RolledBack',
      'every canary is removed; traffic is on the stable versions',
    );
  return true;
}

/**
 * One reconcile of a release: given what the platform and the proxies report now, moves the
 * release as far as it can go without waiting, and says what happened. Pure: the same input gives
 * the same output, and the input is not changed. `entryService` is the service of the release's
 * entrypoint (undefined when that entrypoint is gone).
 */
export function advance(
  release: Release,
  observations: Observations,
  entryService?: string,
): Outcome {
  const draft = new Draft(release, observations.now, 'controller');
  recordHealth(draft, observations);
  // Each pass takes one transition; a release never needs more than a few per reconcile.
  for (let pass = 0; pass < 64; pass++) {
    let moved = false;
    switch (draft.status.phase) {
      case 'Pending':
        draft.phase(
          'Deploying',
          'Deploying',
          `deploying canaries bottom-up: ${deployOrder(release.spec.services).join(', ')}`,
        );
        moved = true;
        break;
      case 'Deploying':
        moved = deploying(draft, observations);
        break;
      case 'Progressing':
      case 'Paused':
        moved = progressing(draft, observations);
        break;
      case 'Promoting':
        moved = promoting(draft, observations);
        break;
      case 'Finalising':
        moved = finalising(draft, observations, entryService);
        break;
      case 'RollingBack':
        moved = rollingBack(draft, observations, entryService);
        break;
      default:
        break;
    }
    if (!moved) break;
  }
  return draft.finish();
}
