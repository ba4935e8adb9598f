import { ControllerRouteTableSource, createLogger } from '@graylane/router-proxy';
import { afterAll, describe, expect, it } from 'vitest';
import { RouteTablePublisher } from '../src/index.js';
import { servePublisher } from './fixtures/routetable-server.mjs';
import { routeTable, waitFor } from './helpers.js';

const WATCHERS = 200;

describe(`${WATCHERS} proxies watching one publisher`, () => {
  const publisher = new RouteTablePublisher({ heartbeatMs: 1_000 });
  const sources: ControllerRouteTableSource[] = [];
  let served: Awaited<ReturnType<typeof servePublisher>>;

  afterAll(async () => {
    for (const source of sources) source.stop();
    await served?.close();
  });

  it('all apply one change, and the publisher knows from their acks', async () => {
    served = await servePublisher(publisher);
    publisher.publish(routeTable(1));
    const logger = createLogger('silent');
    const noop = () => {};
    for (let i = 0; i < WATCHERS; i += 1) {
      sources.push(
        new ControllerRouteTableSource(
          served.url,
          { onTable: noop, onError: (error) => expect.fail(error.message) },
          { proxyId: `proxy-${i}`, logger },
        ),
      );
    }
    await Promise.all(sources.map((source) => source.start()));
    expect(sources.every((s) => s.appliedRevision === 1)).toBe(true);
    await waitFor(
      () => publisher.watchers().filter((w) => w.appliedRevision === 1).length === WATCHERS,
      'every ack of revision 1',
    );

    publisher.publish(routeTable(2, 'http://127.0.0.1:9002'));
    const result = await publisher.waitApplied(2, { timeoutMs: 10_000 });
    expect(result.missing).toEqual([]);
    expect(result.applied).toHaveLength(WATCHERS);
    expect(sources.filter((s) => s.appliedRevision === 2)).toHaveLength(WATCHERS);
    expect(new Set(publisher.watchers().map((w) => w.proxy)).size).toBe(WATCHERS);
  });
});
