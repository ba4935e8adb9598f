import { once } from 'node:events';
import { connect } from 'node:net';
import { parseRouteTable, type RouteTable } from '@graylane/lane-core';
import { afterEach, describe, expect, it } from 'vitest';
import { RouteTablePublisher } from '../src/index.js';
import { servePublisher } from './fixtures/routetable-server.mjs';
import { openWatch, postAck, routeTable, sleep, waitFor } from './helpers.js';

type Served = Awaited<ReturnType<typeof servePublisher>>;

describe('RouteTablePublisher over HTTP', () => {
  let served: Served | undefined;

  async function serve(options: ConstructorParameters<typeof RouteTablePublisher>[0] = {}) {
    const publisher = new RouteTablePublisher({ heartbeatMs: 60_000, ...options });
    served = await servePublisher(publisher);
    return { publisher, url: served.url };
  }

  afterEach(async () => {
    await served?.close();
    served = undefined;
  });

  it('answers 503 GRAYLANE_ERR_NO_ROUTE_TABLE before the first table, then the current one', async () => {
    const { publisher, url } = await serve();
    const before = await fetch(url);
    expect(before.status).toBe(503);
    expect(((await before.json()) as { error: { code: string } }).error.code).toBe(
      'GRAYLANE_ERR_NO_ROUTE_TABLE',
    );
    publisher.publish(routeTable(3));
    const after = await fetch(url);
    expect(after.status).toBe(200);
    expect(parseRouteTable(await after.json()).revision).toBe(3);
  });

  it('refuses a revision that is not above the current one, and keeps the current', () => {
    const publisher = new RouteTablePublisher();
    publisher.publish(routeTable(5));
    expect(() => publisher.publish(routeTable(5))).toThrow(RangeError);
    expect(() => publisher.publish(routeTable(4))).toThrow(RangeError);
    expect(publisher.current?.revision).toBe(5);
  });

  it('streams the current table, then one line per publish, as x-ndjson', async () => {
    const { publisher, url } = await serve({ heartbeatMs: 1234 });
    publisher.publish(routeTable(1));
    const watch = await openWatch(url);
    expect(watch.response.statusCode).toBe(200);
    expect(watch.response.headers['content-type']).toBe('application/x-ndjson');
    expect(watch.response.headers['x-graylane-heartbeat-ms']).toBe('1234');
    await waitFor(() => watch.revisions().length === 1, 'the current table');
    publisher.publish(routeTable(2, 'http://127.0.0.1:9002'));
    publisher.publish(routeTable(3, 'http://127.0.0.1:9003'));
    await waitFor(() => watch.revisions().length === 3, 'two published tables');
    expect(watch.revisions()).toEqual([1, 2, 3]);
    // Each line is a whole table, valid on its own.
    const last = parseRouteTable(JSON.parse(watch.lines.at(-1)!));
    expect(last.services.web?.stable.endpoints).toEqual(['http://127.0.0.1:9003']);
    watch.close();
  });

  it('opens a watch before any table and sends the first one published', async () => {
    const { publisher, url } = await serve();
    const watch = await openWatch(url);
    await sleep(50);
    expect(watch.lines).toEqual([]);
    publisher.publish(routeTable(1));
    await waitFor(() => watch.revisions().length === 1, 'the first table');
    watch.close();
  });

  it('skips the current table for a watcher that already has it (sinceRevision)', async () => {
    const { publisher, url } = await serve();
    publisher.publish(routeTable(7));
    const current = await openWatch(url, { sinceRevision: '7' });
    const behind = await openWatch(url, { sinceRevision: '6' });
    await waitFor(() => behind.revisions().length === 1, 'the table the watcher lacks');
    publisher.publish(routeTable(8));
    await waitFor(() => current.revisions().length === 1, 'the next table');
    expect(current.revisions()).toEqual([8]);
    expect(behind.revisions()).toEqual([7, 8]);
    current.close();
    behind.close();
  });

  it('sends an empty line every heartbeat', async () => {
    const { publisher, url } = await serve({ heartbeatMs: 40 });
    publisher.publish(routeTable(1));
    const watch = await openWatch(url);
    await waitFor(() => watch.heartbeats() >= 3, 'three heartbeats', 2_000);
    expect(watch.revisions()).toEqual([1]);
    watch.close();
  });

  it('refuses bad watch queries and bad acks with 400, the code and the path', async () => {
    const { publisher, url } = await serve();
    publisher.publish(routeTable(1));
    for (const [query, path] of [
      ['watch=true&sinceRevision=abc', 'query.sinceRevision'],
      ['watch=true&sinceRevision=-1', 'query.sinceRevision'],
      ['watch=yes', 'query.watch'],
      ['watch=true&proxy=a%20b', 'query.proxy'],
    ] as const) {
      const res = await fetch(`${url}?${query}`);
      expect(res.status, query).toBe(400);
      const { error } = (await res.json()) as { error: Record<string, string> };
      expect(error, query).toMatchObject({ code: 'GRAYLANE_ERR_BAD_REQUEST', path });
      expect(error.message, query).toBeTruthy();
    }
    for (const [body, path] of [
      [undefined, 'body'],
      [{}, 'body.proxy'],
      [{ proxy: 'p1' }, 'body.revision'],
      [{ proxy: 'p1', revision: -1 }, 'body.revision'],
      [{ proxy: 'p1', revision: 1.5 }, 'body.revision'],
      [{ proxy: 'no spaces', revision: 1 }, 'body.proxy'],
      [{ proxy: 'p1', revision: 1, extra: true }, 'body'],
    ] as const) {
      const res = await postAck(url, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body?.error, JSON.stringify(body)).toMatchObject({
        code: 'GRAYLANE_ERR_BAD_REQUEST',
        path,
      });
    }
    expect(publisher.current?.revision).toBe(1);
  });

  it('knows each watching proxy by its acks; waitApplied resolves when all have applied', async () => {
    const { publisher, url } = await serve();
    publisher.publish(routeTable(1));
    const a = await openWatch(url, { proxy: 'proxy-a' });
    const b = await openWatch(url, { proxy: 'proxy-b', sinceRevision: '1' });
    const anonymous = await openWatch(url);
    await waitFor(() => publisher.watchers().length === 3, 'three watchers');
    expect(
      publisher
        .watchers()
        .map((w) => [w.proxy, w.sentRevision, w.appliedRevision])
        .sort(),
    ).toEqual([
      [undefined, 1, undefined],
      ['proxy-a', 1, -1],
      ['proxy-b', 1, 1],
    ]);
    expect(publisher.watchers()[0]!.remote).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(Date.parse(publisher.watchers()[0]!.connectedAt)).not.toBeNaN();

    publisher.publish(routeTable(2));
    const waiting = publisher.waitApplied(2, { timeoutMs: 5_000 });
    let settled = false;
    void waiting.then(() => {
      settled = true;
    });
    expect((await postAck(url, { proxy: 'proxy-a', revision: 2 })).status).toBe(204);
    await sleep(20);
    expect(settled).toBe(false);
    // An older ack does not take back a newer one.
    expect((await postAck(url, { proxy: 'proxy-a', revision: 1 })).status).toBe(204);
    expect((await postAck(url, { proxy: 'proxy-b', revision: 2 })).status).toBe(204);
    expect(await waiting).toEqual({ applied: ['proxy-a', 'proxy-b'], missing: [] });
    expect(publisher.watchers().find((w) => w.proxy === 'proxy-a')?.appliedRevision).toBe(2);
    a.close();
    b.close();
    anonymous.close();
  });

  it('waitApplied names the proxies missing at the timeout, and stops waiting for one that leaves', async () => {
    const { publisher, url } = await serve();
    publisher.publish(routeTable(1));
    const stays = await openWatch(url, { proxy: 'stays' });
    const leaves = await openWatch(url, { proxy: 'leaves' });
    await waitFor(() => publisher.watchers().length === 2, 'two watchers');
    publisher.publish(routeTable(2));
    expect(await publisher.waitApplied(2, { timeoutMs: 50 })).toEqual({
      applied: [],
      missing: ['stays', 'leaves'],
    });

    const waiting = publisher.waitApplied(2, { timeoutMs: 5_000 });
    await postAck(url, { proxy: 'stays', revision: 2 });
    const started = Date.now();
    leaves.close();
    expect(await waiting).toEqual({ applied: ['stays'], missing: [] });
    expect(Date.now() - started).toBeLessThan(2_000);
    // An ack from a proxy that is not watching is accepted but not waited for.
    expect((await postAck(url, { proxy: 'leaves', revision: 2 })).status).toBe(204);
    expect(publisher.watchers().map((w) => w.proxy)).toEqual(['stays']);
    stays.close();
  });

  it('waitApplied also waits for a proxy that starts watching meanwhile', async () => {
    const { publisher, url } = await serve();
    publisher.publish(routeTable(1));
    const early = await openWatch(url, { proxy: 'early', sinceRevision: '1' });
    await waitFor(() => publisher.watchers().length === 1, 'one watcher');
    publisher.publish(routeTable(2));
    let result: unknown;
    const waiting = publisher.waitApplied(2, { timeoutMs: 5_000 }).then((r) => {
      result = r;
    });
    const late = await openWatch(url, { proxy: 'late', sinceRevision: '1' });
    await waitFor(() => publisher.watchers().length === 2, 'two watchers');
    await postAck(url, { proxy: 'early', revision: 2 });
    await sleep(20);
    expect(result).toBeUndefined();
    await postAck(url, { proxy: 'late', revision: 2 });
    await waiting;
    expect(result).toEqual({ applied: ['early', 'late'], missing: [] });
    early.close();
    late.close();
  });

  it('waitApplied rejects with the reason when aborted', async () => {
    const { publisher, url } = await serve();
    publisher.publish(routeTable(1));
    const watch = await openWatch(url, { proxy: 'p' });
    await waitFor(() => publisher.watchers().length === 1, 'one watcher');
    const abort = new AbortController();
    const waiting = publisher.waitApplied(1, { signal: abort.signal });
    abort.abort(new Error('release deleted'));
    await expect(waiting).rejects.toThrow('release deleted');
    watch.close();
  });

  it('sends a slow reader only the newest table when its socket drains, buffering none between', async () => {
    const { publisher, url } = await serve();
    // Big tables (about 0.5 MB each) fill the socket buffers after a few.
    const bigTable = (revision: number): RouteTable =>
      parseRouteTable({
        apiVersion: 'graylane/v1',
        revision,
        services: {
          web: {
            stable: {
              endpoints: Array.from(
                { length: 20_000 },
                (_, i) => `http://h${i}-r${revision}.example:80`,
              ),
            },
          },
        },
        entrypoints: [{ name: 'web', service: 'web' }],
      });
    publisher.publish(bigTable(1));
    const { port } = new URL(url);
    const socket = connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    socket.write('GET /v1/routetable?watch=true&proxy=slow HTTP/1.1\r\nhost: localhost\r\n\r\n');
    socket.pause();
    await waitFor(() => publisher.watchers().length === 1, 'the slow watcher');
    const published = 40;
    for (let revision = 2; revision <= published; revision += 1) {
      publisher.publish(bigTable(revision));
      await sleep(1);
    }
    const lagging = publisher.watchers()[0]!;
    expect(lagging.sentRevision).toBeLessThan(published);

    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    socket.resume();
    await waitFor(
      () => publisher.watchers()[0]?.sentRevision === published,
      'the newest table sent once the socket drained',
      10_000,
    );
    await waitFor(() => received.includes(`"revision":${published},`), 'the newest table read');
    const revisions = [...received.matchAll(/"revision":(\d+),/g)].map((m) => Number(m[1]));
    expect(revisions.at(-1)).toBe(published);
    expect(revisions.length).toBeLessThan(published);
    expect(revisions).toEqual([...revisions].sort((x, y) => x - y));
    socket.destroy();
  });

  it('close ends every watch stream and refuses new watches', async () => {
    const { publisher, url } = await serve();
    publisher.publish(routeTable(1));
    const one = await openWatch(url);
    const two = await openWatch(url, { proxy: 'p' });
    await waitFor(() => publisher.watchers().length === 2, 'two watchers');
    publisher.close();
    await Promise.all([one.ended, two.ended]);
    await waitFor(() => publisher.watchers().length === 0, 'no watchers');
    const refused = await fetch(`${url}?watch=true`);
    expect(refused.status).toBe(503);
    // The table itself is still there to read.
    expect((await fetch(url)).status).toBe(200);
  });
});
