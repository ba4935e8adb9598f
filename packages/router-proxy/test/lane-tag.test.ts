import type { IncomingMessage } from 'node:http';
import {
  defaultTagOptions,
  parseRouteTable,
  readLaneTag,
  recordCarrier,
  writeLaneTag,
} from '@graylane/lane-core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readRequestLane, tagForwarded } from '../src/forwarding/lane-tag.js';
import { compileTable } from '../src/routing/compiled-table.js';
import type { ProxyRuntime } from '../src/runtime.js';

const table = compileTable(
  parseRouteTable({
    apiVersion: 'graylane/v1',
    revision: 1,
    services: { web: { stable: { endpoints: ['http://127.0.0.1:8000'] } } },
  }),
);

const lane = fc.oneof(
  fc.constant('stable'),
  fc.constantFrom('gray', 'canary-2', 'Gray', ' gray ', 'a,b', '', 'x'.repeat(70)),
  fc.stringMatching(/^[a-z0-9-]{1,12}$/),
);
const header = fc.option(lane, { nil: undefined });
const baggage = fc.option(fc.constantFrom('lane=gray', 'k=v', 'k=v,lane=blue', 'lane=%20bad', ''), {
  nil: undefined,
});

describe('the proxy’s fast paths agree with lane-core', () => {
  it('tagForwarded writes what writeLaneTag writes', () => {
    fc.assert(
      fc.property(lane, header, baggage, (servedLane, laneHeader, baggageHeader) => {
        const start: Record<string, string | string[]> = { host: 'a' };
        if (laneHeader !== undefined) start['x-lane'] = laneHeader;
        if (baggageHeader !== undefined) start.baggage = baggageHeader;
        const ours = { ...start };
        const theirs = { ...start };
        tagForwarded({ table, lane: servedLane, headers: ours });
        writeLaneTag(recordCarrier(theirs), servedLane, defaultTagOptions);
        expect(ours).toEqual(theirs);
      }),
      { numRuns: 500 },
    );
  });

  it('readRequestLane reads what readLaneTag reads, asked again or not', () => {
    let invalid = 0;
    const runtime = {
      metrics: { invalidLane: { inc: () => invalid++ } },
    } as unknown as ProxyRuntime;
    fc.assert(
      fc.property(header, baggage, (laneHeader, baggageHeader) => {
        const headers: Record<string, string> = {};
        if (laneHeader !== undefined) headers['x-lane'] = laneHeader;
        if (baggageHeader !== undefined) headers.baggage = baggageHeader;
        const req = { headers } as unknown as IncomingMessage;
        const expected = readLaneTag(laneHeader, baggageHeader);
        for (let i = 0; i < 2; i++) {
          const before = invalid;
          expect(readRequestLane(runtime, defaultTagOptions, req, 'gateway')).toEqual(expected);
          expect(invalid - before).toBe(expected.invalid ? 1 : 0);
        }
      }),
      { numRuns: 500 },
    );
  });
});
