import type { IncomingMessage } from 'node:http';
import {
  defaultTagOptions,
  isStable,
  type LaneTag,
  readLaneTagOnce,
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
  const tag = readLaneTagOnce(req.headers[options.laneHeader], req.headers.baggage, options);
  if (tag.invalid) runtime.metrics.invalidLane.inc({ listener });
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
