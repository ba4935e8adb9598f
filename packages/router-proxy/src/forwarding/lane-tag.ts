import type { IncomingMessage } from 'node:http';
import {
  defaultTagOptions,
  isStable,
  type LaneTag,
  readLaneTag,
  recordCarrier,
  serializeBaggageMember,
  type TagOptions,
  writeLaneTag,
} from '@graylane/lane-core';
import type { CompiledTable } from '../routing/compiled-table.js';
import type { ProxyRuntime } from '../runtime.js';

export type ListenerName = 'gateway' | 'outbound' | 'inbound';

/** The table's lane header and baggage key; the defaults while no table is loaded. */
export function tagOptionsOf(table: CompiledTable | undefined): TagOptions {
  return table ? table.tagOptions : defaultTagOptions;
}

/** Reads the lane tag of a request and counts an invalid one, which is then dropped. */
export function readRequestLane(
  runtime: ProxyRuntime,
  options: TagOptions,
  req: IncomingMessage,
  listener: ListenerName,
): LaneTag {
  const header = req.headers[options.laneHeader];
  const { baggage } = req.headers;
  const tag =
    baggage === undefined && (header === undefined || typeof header === 'string')
      ? tagOfHeader(header)
      : readLaneTag(header, baggage, options);
  if (tag.invalid) runtime.metrics.invalidLane.inc({ listener });
  return tag;
}

const UNTAGGED: LaneTag = Object.freeze(readLaneTag(undefined, undefined));
/** Lane header values come from clients: the memo is emptied when it holds this many. */
const MEMO_LIMIT = 256;
const tagsByHeader = new Map<string, LaneTag>();

/**
 * The tag of a request with a lane header and no baggage, the usual tagged request: one frozen tag
 * per header value, since validating the lane name (a regular expression) showed per request
 * (issue 21). Without baggage the tag does not depend on the table's baggage key.
 */
function tagOfHeader(header: string | undefined): LaneTag {
  if (header === undefined) return UNTAGGED;
  let tag = tagsByHeader.get(header);
  if (!tag) {
    tag = Object.freeze(readLaneTag(header, undefined));
    if (tagsByHeader.size >= MEMO_LIMIT) tagsByHeader.clear();
    tagsByHeader.set(header, tag);
  }
  return tag;
}

/** Writes the request's lane on the forwarded headers, in the table's header and baggage key. */
export function tagForwarded(request: {
  table: CompiledTable;
  lane: string;
  headers: Record<string, string | string[]>;
}) {
  const { headers, lane, table } = request;
  const options = table.tagOptions;
  // A stable request that carries no tag (most requests) has nothing to write or remove.
  if (headers.baggage === undefined) {
    // No baggage to keep (most requests): the tag is the lane header and a baggage of our entry.
    if (isStable(lane)) {
      if (headers[options.laneHeader] !== undefined) delete headers[options.laneHeader];
      return;
    }
    headers[options.laneHeader] = lane;
    headers.baggage = serializeBaggageMember({ key: options.baggageKey, value: lane });
    return;
  }
  writeLaneTag(recordCarrier(headers), lane, options);
}
