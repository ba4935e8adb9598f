import { getBaggageValue, joinHeaderValues, setBaggageValue } from './baggage.js';
import { BoundedMemo } from './bounded-memo.js';
import { isStable, isValidLaneName, STABLE } from './lane.js';

export const DEFAULT_LANE_HEADER = 'x-lane';
export const DEFAULT_BAGGAGE_KEY = 'lane';
export const BAGGAGE_HEADER = 'baggage';

export interface TagOptions {
  /** Lower-case header name; `x-lane` by default. */
  laneHeader: string;
  /** W3C baggage entry key; `lane` by default. */
  baggageKey: string;
}

export const defaultTagOptions: TagOptions = {
  laneHeader: DEFAULT_LANE_HEADER,
  baggageKey: DEFAULT_BAGGAGE_KEY,
};

export type TagSource = 'header' | 'baggage' | 'none';

export interface LaneTag {
  /** The lane the request is in; `stable` when untagged or when the only tag was invalid. */
  lane: string;
  source: TagSource;
  /** A tag was present but invalid (dropped). Counted by the caller, never forwarded. */
  invalid: boolean;
}

type HeaderValue = string | readonly string[] | undefined;

/** Classifies one tag value: a lane, stable, or invalid. Several values or a comma list are invalid. */
export function classifyTagValue(value: HeaderValue): string | null | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') {
    if (value.length === 0) return undefined;
    if (value.length > 1) return null;
    return classifyTagValue(value[0]);
  }
  const trimmed = value.trim();
  if (trimmed === '' || trimmed === STABLE) return STABLE;
  return isValidLaneName(trimmed) ? trimmed : null;
}

/**
 * Reads the lane from a request's lane header and baggage. The header wins when both are present; an
 * invalid header is dropped, and then a valid baggage entry still counts.
 */
export function readLaneTag(
  laneHeaderValue: HeaderValue,
  baggageValue: HeaderValue,
  options: TagOptions = defaultTagOptions,
): LaneTag {
  const fromHeader = classifyTagValue(laneHeaderValue);
  if (typeof fromHeader === 'string') return { lane: fromHeader, source: 'header', invalid: false };
  const headerInvalid = fromHeader === null;
  const rawBaggage = getBaggageValue(joinHeaderValues(baggageValue), options.baggageKey);
  const fromBaggage = rawBaggage === undefined ? undefined : classifyTagValue(rawBaggage);
  if (typeof fromBaggage === 'string') {
    return { lane: fromBaggage, source: 'baggage', invalid: headerInvalid };
  }
  return { lane: STABLE, source: 'none', invalid: headerInvalid || fromBaggage === null };
}

/** The tag of a request with neither a lane header nor baggage: most requests. */
const UNTAGGED: Readonly<LaneTag> = Object.freeze({ lane: STABLE, source: 'none', invalid: false });
/** Tags read from a lane header alone, by its value: a service or proxy sees a handful of lanes. */
const tagsByHeader = new BoundedMemo<string, Readonly<LaneTag>>(256);

/**
 * `readLaneTag` for the request path: a request with no baggage gets one frozen tag per lane-header
 * value, since reading and validating it again for every request of a lane was a regular expression
 * per request (the SDK's and the proxy's hot paths). Without baggage the tag does not depend on the
 * baggage key; with baggage, which varies per request, the tag is read each time.
 */
export function readLaneTagOnce(
  laneHeaderValue: HeaderValue,
  baggageValue: HeaderValue,
  options: TagOptions = defaultTagOptions,
): Readonly<LaneTag> {
  if (
    baggageValue !== undefined ||
    (laneHeaderValue !== undefined && typeof laneHeaderValue !== 'string')
  ) {
    return readLaneTag(laneHeaderValue, baggageValue, options);
  }
  if (laneHeaderValue === undefined) return UNTAGGED;
  return (
    tagsByHeader.get(laneHeaderValue) ??
    tagsByHeader.set(
      laneHeaderValue,
      Object.freeze(readLaneTag(laneHeaderValue, undefined, options)),
    )
  );
}

/** A minimal view of a header map, so the same code serves node:http, undici and plain objects. */
export interface HeaderCarrier {
  get(name: string): HeaderValue;
  set(name: string, value: string): void;
  delete(name: string): void;
}

export function readLaneTagFrom(carrier: HeaderCarrier, options: TagOptions = defaultTagOptions) {
  return readLaneTag(carrier.get(options.laneHeader), carrier.get(BAGGAGE_HEADER), options);
}

/**
 * Writes the lane to both the lane header and the baggage entry, so that every hop agrees. The stable
 * lane is written as the absence of a tag.
 */
export function writeLaneTag(
  carrier: HeaderCarrier,
  lane: string,
  options: TagOptions = defaultTagOptions,
): void {
  const baggage = joinHeaderValues(carrier.get(BAGGAGE_HEADER));
  const tagged = !isStable(lane);
  const nextBaggage = setBaggageValue(baggage, options.baggageKey, tagged ? lane : undefined);
  if (tagged) carrier.set(options.laneHeader, lane);
  else carrier.delete(options.laneHeader);
  if (nextBaggage === undefined) carrier.delete(BAGGAGE_HEADER);
  else if (nextBaggage !== baggage) carrier.set(BAGGAGE_HEADER, nextBaggage);
}

/** Removes every trace of the lane, for calls that leave the mesh. */
export function removeLaneTag(carrier: HeaderCarrier, options: TagOptions = defaultTagOptions) {
  writeLaneTag(carrier, STABLE, options);
}

/** A carrier over a plain lower-case header record such as node:http's `IncomingHttpHeaders`. */
export function recordCarrier(
  headers: Record<string, string | string[] | undefined>,
): HeaderCarrier {
  return {
    get: (name) => headers[name],
    set: (name, value) => {
      headers[name] = value;
    },
    delete: (name) => {
      // Deleting an absent name still costs a runtime call (issue 21); most requests carry no tag.
      if (headers[name] !== undefined) delete headers[name];
    },
  };
}
