import { timingSafeEqual } from 'node:crypto';
import type { LaneTag } from '@graylane/lane-core';
import { STABLE } from '@graylane/lane-core';
import type { CompiledEntrypoint, CompiledRule } from './compiled-table.js';
import { inWeight, stickyBucket, type WeightedSplitter } from './sticky.js';

export type AssignmentReason = 'client' | 'match' | 'weight' | 'sticky' | 'default';

export interface Assignment {
  lane: string;
  reason: AssignmentReason;
  /** Sticky cookies the gateway must set on the response because the client had none. */
  setCookies?: ReadonlyArray<{ name: string; value: string }>;
}

/** What the gateway knows of a request when it picks a lane. */
export interface AssignmentInput {
  /** The client's own tag (header or baggage), already read and classified. */
  clientTag: LaneTag;
  header(name: string): string | undefined;
  cookie(name: string): string | undefined;
  knownLanes: ReadonlySet<string>;
  /** Per-rule splitters, so that each rule keeps its own error-diffusion state. */
  splitter(entrypoint: string, ruleIndex: number): WeightedSplitter;
  newStickyKey(): string;
}

function secretMatches(expected: string, actual: string | undefined): boolean {
  if (actual === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(actual);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Whether the entrypoint lets this client choose its own lane. */
export function acceptsClientLane(entry: CompiledEntrypoint, input: AssignmentInput): boolean {
  const { clientTag } = input;
  if (clientTag.source === 'none' || entry.clientLanes === 'off') return false;
  const secret = entry.clientLanesSecret;
  if (secret && !secretMatches(secret.value, input.header(secret.header))) return false;
  if (entry.clientLanes === 'any') return true;
  return clientTag.lane === STABLE || input.knownLanes.has(clientTag.lane);
}

function headersMatch(rule: CompiledRule, input: AssignmentInput): boolean {
  return rule.headers.every(([name, match]) => match(input.header(name)));
}

/** Sticky cookies this request lacked: created once per name, set on the response. */
type NewCookies = Map<string, string>;

function stickyKey(rule: CompiledRule, input: AssignmentInput, created: NewCookies) {
  const { kind, name } = rule.sticky!;
  if (kind === 'header') return input.header(name);
  const existing = input.cookie(name) ?? created.get(name);
  if (existing) return existing;
  const key = input.newStickyKey();
  created.set(name, key);
  return key;
}

function ruleSelects(
  entry: CompiledEntrypoint,
  rule: CompiledRule,
  index: number,
  input: AssignmentInput,
  created: NewCookies,
): AssignmentReason | undefined {
  if (!headersMatch(rule, input)) return undefined;
  if (rule.weight === undefined) return 'match';
  const key = rule.sticky ? stickyKey(rule, input, created) : undefined;
  if (key) return inWeight(stickyBucket(key, rule.lane), rule.weight) ? 'sticky' : undefined;
  return input.splitter(entry.name, index).next(rule.weight) ? 'weight' : undefined;
}

/**
 * Picks the lane of a request entering at `entry`: the client's accepted tag, else the first assign
 * rule that matches, else stable. Pure but for the splitter state and the sticky key it is given.
 */
export function assignLane(entry: CompiledEntrypoint, input: AssignmentInput): Assignment {
  if (acceptsClientLane(entry, input)) return { lane: input.clientTag.lane, reason: 'client' };
  const created: NewCookies = new Map();
  let assignment: Assignment = { lane: STABLE, reason: 'default' };
  for (const [index, rule] of entry.rules.entries()) {
    const reason = ruleSelects(entry, rule, index, input, created);
    if (reason) {
      assignment = { lane: rule.lane, reason };
      break;
    }
  }
  if (created.size === 0) return assignment;
  const setCookies = [...created].map(([name, value]) => ({ name, value }));
  return { ...assignment, setCookies };
}
