import { hit } from '../graylane.js';

/**
 * Traffic through the gateway for analysis tests: `tagged` workers send `x-lane: <lane>` (so the
 * canaries get requests whatever the weight), `untagged` ones are split by the entry. Loopback only,
 * bounded by `stop()` and by `maxRequests`.
 */
export class GatewayLoad {
  private stopped = false;
  private readonly workers: Promise<void>[] = [];
  sent = 0;

  constructor(
    private readonly gateway: string,
    options: { tagged?: number; untagged?: number; lane?: string; maxRequests?: number } = {},
  ) {
    const { tagged = 2, untagged = 2, lane = 'gray', maxRequests = 20_000 } = options;
    const worker = async (headers: Record<string, string>) => {
      while (!this.stopped && this.sent < maxRequests) {
        this.sent += 1;
        await hit(this.gateway, headers).catch(() => undefined);
      }
    };
    for (let i = 0; i < tagged; i++) this.workers.push(worker({ 'x-lane': lane }));
    for (let i = 0; i < untagged; i++) this.workers.push(worker({}));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.workers);
  }
}
