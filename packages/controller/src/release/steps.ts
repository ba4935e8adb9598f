import type { ReleaseSpec, Step } from '../documents/schema.js';

/**
 * The steps a release walks: its own, or those `analysis.stepWeight` makes, as in Flagger: the weight
 * grows by stepWeight while below maxWeight, and the first weight at or above it is the last step
 * (stepWeight 20, maxWeight 70: 20, 40, 60, 80, then promotion). Capped at 100.
 */
export function releaseSteps(spec: Pick<ReleaseSpec, 'steps' | 'analysis'>): Step[] {
  if (spec.steps !== undefined) return spec.steps;
  const analysis = spec.analysis;
  if (analysis?.stepWeight === undefined) return [];
  const steps: Step[] = [];
  for (let weight = analysis.stepWeight; ; weight += analysis.stepWeight) {
    steps.push({ weight: Math.min(weight, 100) });
    if (weight >= analysis.maxWeight || weight >= 100) return steps;
  }
}
