import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Release } from '../../src/release/status.js';
import {
  cleanup,
  type RunningController,
  releaseDoc,
  runSpec,
  startShop,
  tempDir,
  until,
  yamlOf,
} from '../graylane.js';
import { GatewayLoad } from './load.js';

interface Call {
  hook: string;
  type: string;
  name: string;
  lane: string;
  metadata: Record<string, string>;
}

/** A real webhook receiver on 127.0.0.1: records each call, answers what `answer` says per hook. */
class Receiver {
  readonly calls: Call[] = [];
  answer: Record<string, number | 'hang'> = {};
  private server!: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const call = JSON.parse(body) as Call;
        this.calls.push(call);
        const answer = this.answer[call.hook] ?? 200;
        if (answer === 'hang') return;
        res.writeHead(answer).end();
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  hook(name: string, type: string, extra: object = {}) {
    return { name, type, url: `${this.url}/${name}`, ...extra };
  }

  typesFor(release: string): string[] {
    return this.calls.filter((c) => c.name === release).map((c) => c.type);
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('webhooks of an analysed release (Flagger’s five kinds), against a real receiver', () => {
  let ctl: RunningController;
  let dir: string;
  const receiver = new Receiver();

  beforeAll(async () => {
    dir = tempDir();
    ctl = await startShop({ stateDir: dir });
    await receiver.start();
  });

  afterAll(async () => {
    await receiver.stop();
    await ctl.stop();
    cleanup(dir);
  });

  /** One backend canary, one step (weight 50), with these webhooks. */
  async function apply(name: string, webhooks: object[]) {
    const release = releaseDoc(name, {
      lane: 'gray',
      entrypoint: 'shop',
      services: [{ name: 'backend', canary: { version: 'v2', run: runSpec('backend', 'v2') } }],
      analysis: {
        interval: '1s',
        threshold: 2,
        minSamples: 3,
        stepWeight: 50,
        maxWeight: 50,
        checks: [{ name: 'request-success-rate', min: 99 }],
        webhooks,
      },
    });
    const applied = await ctl.api('POST', '/v1/apply', yamlOf([release]));
    expect(applied.status).toBe(200);
  }

  const finished = (name: string) =>
    ctl.waitForPhase(name, ['Succeeded', 'Failed', 'RolledBack'], 90_000);
  const reasons = (release: Release) => release.status.events.map((e) => e.reason);

  it('every hook answering 2xx: pre-rollout, rollout each interval, confirm-promotion, post-rollout, in that order', async () => {
    const load = new GatewayLoad(ctl.gateway!);
    await apply('hooks-ok', [
      receiver.hook('ready', 'pre-rollout', { metadata: { ticket: 'T-1' } }),
      receiver.hook('smoke', 'rollout'),
      receiver.hook('gate', 'confirm-promotion'),
      receiver.hook('notify', 'post-rollout'),
    ]);
    const done = await finished('hooks-ok').finally(() => load.stop());
    expect(done.status.phase).toBe('Succeeded');
    const types = receiver.typesFor('hooks-ok');
    expect(types[0]).toBe('pre-rollout');
    expect(types.at(-1)).toBe('post-rollout');
    expect(types).toContain('rollout');
    expect(types.indexOf('confirm-promotion')).toBeGreaterThan(types.lastIndexOf('rollout'));
    expect(receiver.calls.find((c) => c.hook === 'ready')).toMatchObject({
      lane: 'gray',
      metadata: { ticket: 'T-1' },
    });
    const smoke = done.status
      .analysis!.intervals.at(-1)!
      .checks.find((c) => c.check === 'webhook smoke');
    expect(smoke?.verdict).toBe('pass');
  });

  it('a rollout hook answering 500 fails the intervals and rolls back; post-rollout still runs', async () => {
    receiver.answer.broken = 500;
    const load = new GatewayLoad(ctl.gateway!);
    await apply('hooks-500', [
      receiver.hook('broken', 'rollout'),
      receiver.hook('bye', 'post-rollout'),
    ]);
    const done = await finished('hooks-500').finally(() => load.stop());
    expect(done.status.phase).toBe('Failed');
    expect(done.status.failure).toContain('webhook broken: 500');
    expect(receiver.typesFor('hooks-500').at(-1)).toBe('post-rollout');
  });

  it('a rollout hook that does not answer within its timeout is a failure', async () => {
    receiver.answer.slow = 'hang';
    const load = new GatewayLoad(ctl.gateway!);
    await apply('hooks-hang', [receiver.hook('slow', 'rollout', { timeout: '300ms' })]);
    const done = await finished('hooks-hang').finally(() => load.stop());
    expect(done.status.phase).toBe('Failed');
    expect(done.status.failure).toContain('webhook slow: no answer within 300ms');
  });

  it('a failing pre-rollout hook keeps the weight at 0 and rolls back at the threshold', async () => {
    receiver.answer.notready = 503;
    await apply('hooks-pre', [receiver.hook('notready', 'pre-rollout')]);
    const done = await finished('hooks-pre');
    expect(done.status.phase).toBe('Failed');
    expect(reasons(done)).not.toContain('Weight');
    expect(done.status.failure).toContain('webhook notready: 503');
  });

  it('confirm-promotion holds the release at its last step until it answers 2xx', async () => {
    receiver.answer.approve = 403;
    const load = new GatewayLoad(ctl.gateway!);
    await apply('hooks-confirm', [receiver.hook('approve', 'confirm-promotion')]);
    try {
      const held = await until(
        () => ctl.release('hooks-confirm'),
        (r) => r.status.events.filter((e) => e.reason === 'PromotionNotConfirmed').length >= 2,
        60_000,
      );
      expect(held.status.phase).toBe('Progressing');
      expect(held.status.weight).toBe(50);
      receiver.answer.approve = 200;
      const done = await finished('hooks-confirm');
      expect(done.status.phase).toBe('Succeeded');
    } finally {
      await load.stop();
    }
  });

  it('a rollback hook answering 2xx rolls the release back', async () => {
    const load = new GatewayLoad(ctl.gateway!);
    await apply('hooks-rollback', [receiver.hook('abort', 'rollback')]);
    const done = await finished('hooks-rollback').finally(() => load.stop());
    expect(done.status.phase).toBe('Failed');
    expect(done.status.failure).toBe('rollback webhook abort answered 2xx');
  });
});
