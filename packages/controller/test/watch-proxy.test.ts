import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RouteTableInput } from '@graylane/lane-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type BinRun,
  runBin,
  startUpstream,
  tempDir,
  type Upstream,
} from '../../router-proxy/test/helpers.js';
import type { WatcherInfo } from '../src/index.js';
import { type ControllerProcess, startController } from './controller-process.js';
import { sleep } from './helpers.js';

const TOKEN = 'watch-token-0123456789';

/** A table whose one entrypoint routes everything to `upstream`. */
const tableTo = (revision: number, upstream: Upstream): Omit<RouteTableInput, 'apiVersion'> => ({
  revision,
  services: { web: { stable: { endpoints: [upstream.url] } } },
  entrypoints: [{ name: 'web', service: 'web' }],
});

/** Which upstream the gateway reached, or the status and error code when it answered itself. */
async function served(gateway: string): Promise<string> {
  const res = await fetch(`${gateway}/`);
  const text = await res.text();
  if (res.status !== 200) return `${res.status} ${res.headers.get('x-graylane-error') ?? text}`;
  return (JSON.parse(text) as { upstream: string }).upstream;
}

/** The controller's watchers, once `check` holds for them (or the last seen after 10 s). */
async function watchersWhen(
  controller: ControllerProcess,
  check: (watchers: WatcherInfo[]) => boolean,
): Promise<WatcherInfo[]> {
  const deadline = Date.now() + 10_000;
  let watchers = await controller.watchers();
  while (!check(watchers) && Date.now() < deadline) {
    await sleep(50);
    watchers = await controller.watchers();
  }
  return watchers;
}

async function readyz(admin: string) {
  const res = await fetch(`${admin}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string; revision?: number } };
}

async function revisionGauge(admin: string): Promise<number> {
  const text = await (await fetch(`${admin}/metrics`)).text();
  return Number(/^graylane_routetable_revision (\S+)$/m.exec(text)?.[1]);
}

describe('graylane-proxy watching the controller', () => {
  const dir = tempDir();
  let a: Upstream;
  let b: Upstream;
  let c: Upstream;
  let controller: ControllerProcess | undefined;
  let proxy: BinRun | undefined;

  /** The bin with `--route-table <controller URL>`, named edge-1, the token from the environment. */
  async function startProxyBin(url: string, startTimeoutMs = 10_000) {
    const config = join(dir.path, 'proxy.yaml');
    writeFileSync(
      config,
      JSON.stringify({ proxyId: 'edge-1', routeTableStartTimeoutMs: startTimeoutMs }),
    );
    proxy = await runBin(
      [
        '--route-table',
        url,
        '--config',
        config,
        '--gateway',
        '127.0.0.1:0',
        '--admin',
        '127.0.0.1:0',
      ],
      { GRAYLANE_ROUTE_TABLE_TOKEN: TOKEN },
    );
    return { gateway: proxy.listeners.gateway!, admin: proxy.listeners.admin! };
  }

  beforeAll(async () => {
    [a, b, c] = await Promise.all(['a', 'b', 'c'].map((name) => startUpstream(name)));
  });

  afterEach(async () => {
    proxy?.child.kill('SIGKILL');
    await proxy?.exit;
    proxy = undefined;
    await controller?.kill();
    controller = undefined;
  });

  afterAll(async () => {
    await Promise.all([a, b, c].map((u) => u.close()));
    dir.cleanup();
  });

  it('applies a published change, acknowledges it, and exposes the revision', async () => {
    controller = await startController({ token: TOKEN });
    await controller.publish(tableTo(1, a));
    const { gateway, admin } = await startProxyBin(controller.url);
    expect(await served(gateway)).toBe('a');
    expect(await readyz(admin)).toEqual({ status: 200, body: { status: 'ready', revision: 1 } });

    await controller.publish(tableTo(2, b));
    expect(await controller.waitApplied(2)).toEqual({ applied: ['edge-1'], missing: [] });
    expect(await served(gateway)).toBe('b');
    expect((await readyz(admin)).body.revision).toBe(2);
    expect(await revisionGauge(admin)).toBe(2);
    const [watcher] = await controller.watchers();
    expect(watcher).toMatchObject({ proxy: 'edge-1', sentRevision: 2, appliedRevision: 2 });
  });

  it('keeps serving through a kill -9 of the controller, reconnects to its restart, never goes back', async () => {
    controller = await startController({ token: TOKEN, heartbeatMs: 200 });
    const { port } = controller;
    await controller.publish(tableTo(1, a));
    const { gateway, admin } = await startProxyBin(controller.url);
    await controller.publish(tableTo(2, b));
    expect((await controller.waitApplied(2)).applied).toEqual(['edge-1']);

    await controller.kill('SIGKILL');
    const whileDown: string[] = [];
    for (let i = 0; i < 10; i += 1) {
      whileDown.push(await served(gateway));
      await sleep(50);
    }
    expect(new Set(whileDown)).toEqual(new Set(['b']));
    expect(await readyz(admin)).toEqual({ status: 200, body: { status: 'ready', revision: 2 } });

    // The restarted controller lost its state: it offers revision 1 again, which must not apply.
    controller = await startController({ port, token: TOKEN, heartbeatMs: 200 });
    await controller.publish(tableTo(1, a));
    const watchers = await watchersWhen(controller, (w) => w.length === 1);
    expect(watchers).toMatchObject([{ proxy: 'edge-1', appliedRevision: 2 }]);
    expect(await served(gateway)).toBe('b');
    expect((await readyz(admin)).body.revision).toBe(2);

    await controller.publish(tableTo(3, c));
    expect(await controller.waitApplied(3)).toEqual({ applied: ['edge-1'], missing: [] });
    expect(await served(gateway)).toBe('c');
    expect(await revisionGauge(admin)).toBe(3);
  });

  it('declares a silent connection dead after three heartbeats and watches anew', async () => {
    controller = await startController({ token: TOKEN, heartbeatMs: 200 });
    await controller.publish(tableTo(1, a));
    const { gateway } = await startProxyBin(controller.url);
    const [before] = await controller.watchers();
    // A frozen controller keeps its TCP connections open but says nothing.
    controller.child.kill('SIGSTOP');
    await sleep(1_200);
    expect(await served(gateway)).toBe('a');
    controller.child.kill('SIGCONT');
    const watchers = await watchersWhen(
      controller,
      (w) => w.length === 1 && w[0]!.connectedAt !== before!.connectedAt,
    );
    expect(watchers).toHaveLength(1);
    expect(watchers[0]!.connectedAt).not.toBe(before!.connectedAt);
    await controller.publish(tableTo(2, b));
    expect((await controller.waitApplied(2)).applied).toEqual(['edge-1']);
    expect(await served(gateway)).toBe('b');
  });

  it('starts without a controller (503 until a table comes), then applies the first one', async () => {
    // A port with nothing on it yet: take one, free it, and start the controller there later.
    const probe = await startController();
    const { port } = probe;
    await probe.kill();
    const started = Date.now();
    const { gateway, admin } = await startProxyBin(`http://127.0.0.1:${port}/v1/routetable`, 300);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await readyz(admin)).toEqual({
      status: 503,
      body: { status: 'no route table loaded' },
    });
    expect(await served(gateway)).toBe('503 GRAYLANE_ERR_NOT_READY');
    expect(await revisionGauge(admin)).toBe(-1);

    controller = await startController({ port, token: TOKEN });
    await controller.publish(tableTo(5, a));
    expect(await watchersWhen(controller, (w) => w.length === 1)).toHaveLength(1);
    expect(await controller.waitApplied(5)).toEqual({ applied: ['edge-1'], missing: [] });
    expect(await served(gateway)).toBe('a');
    expect(await readyz(admin)).toEqual({ status: 200, body: { status: 'ready', revision: 5 } });
  });

  it('is refused without the token, and stays not ready', async () => {
    controller = await startController({ token: 'another-token' });
    await controller.publish(tableTo(1, a));
    const { admin } = await startProxyBin(controller.url, 300);
    expect((await readyz(admin)).status).toBe(503);
    expect(await controller.watchers()).toEqual([]);
  });
});
