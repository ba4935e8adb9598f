import { InvalidLaneError } from './errors.js';

/** The default lane. Untagged traffic, the empty tag and the tag `stable` all mean this lane. */
export const STABLE = 'stable';

/** A lane is a DNS label so that it can name Kubernetes objects and labels. */
export const LANE_PATTERN = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function isValidLaneName(value: string): boolean {
  return LANE_PATTERN.test(value);
}

/** Maps a tag value to a lane name: `''` and `stable` are the stable lane; throws on anything invalid. */
export function parseLane(value: string): string {
  const trimmed = value.trim();
  if (trimmed === '' || trimmed === STABLE) return STABLE;
  if (trimmed.includes(',')) throw new InvalidLaneError(value, 'a list of lanes is not a lane');
  if (!isValidLaneName(trimmed)) {
    throw new InvalidLaneError(value, 'a lane is a DNS label: lower-case letters, digits and -');
  }
  return trimmed;
}

export function isStable(lane: string | undefined): boolean {
  return lane === undefined || lane === STABLE || lane === '';
}
