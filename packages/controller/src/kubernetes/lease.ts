import {
  CoordinationV1Api,
  type KubeConfig,
  type V1Lease,
  V1MicroTime,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';

export interface LeaderElectionOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  /** This replica's name in the Lease's holderIdentity. */
  identity: string;
  leaseDurationMs: number;
  logger: Logger;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

/**
 * Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does: the holder
 * renews every third of the lease duration; another replica takes the Lease only once it has not
 * been renewed for a whole duration. Every write carries the resourceVersion it read, so two
 * replicas racing for an expired Lease cannot both win (the loser gets 409 Conflict).
 */
export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private timer: NodeJS.Timeout | undefined;
  private leading = false;
  private stopped = false;

  constructor(private readonly options: LeaderElectionOptions) {
    this.api = options.kubeConfig.makeApiClient(CoordinationV1Api);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    void this.tick();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(
      () => void this.tick(),
      Math.max(50, Math.floor(this.options.leaseDurationMs / 3)),
    );
  }

  private lease(
    resourceVersion: string | undefined,
    acquired: Date | undefined,
    transitions: number,
  ): V1Lease {
    const now = new V1MicroTime(Date.now());
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name: this.options.name,
        namespace: this.options.namespace,
        ...(resourceVersion ? { resourceVersion } : {}),
      },
      spec: {
        holderIdentity: this.options.identity,
        leaseDurationSeconds: Math.max(1, Math.ceil(this.options.leaseDurationMs / 1000)),
        acquireTime: acquired ? new V1MicroTime(acquired.getTime()) : now,
        renewTime: now,
        leaseTransitions: transitions,
      },
    };
  }

  private async tick(): Promise<void> {
    const { namespace, name, identity } = this.options;
    try {
      let current: V1Lease | undefined;
      try {
        current = await this.api.readNamespacedLease({ name, namespace });
      } catch (error) {
        if ((error as { code?: number }).code !== 404) throw error;
      }
      if (!current) {
        await this.api.createNamespacedLease({
          namespace,
          body: this.lease(undefined, undefined, 0),
        });
        this.lead(true);
        return;
      }
      const spec = current.spec ?? {};
      const mine = spec.holderIdentity === identity;
      const renewed = spec.renewTime
        ? new Date(spec.renewTime as unknown as string | Date).getTime()
        : 0;
      const duration = (spec.leaseDurationSeconds ?? 15) * 1000;
      const expired = Date.now() > renewed + duration;
      if (mine || expired || !spec.holderIdentity) {
        const transitions = (spec.leaseTransitions ?? 0) + (mine ? 0 : 1);
        const acquired =
          mine && spec.acquireTime
            ? new Date(spec.acquireTime as unknown as string | Date)
            : undefined;
        await this.api.replaceNamespacedLease({
          name,
          namespace,
          body: this.lease(current.metadata?.resourceVersion, acquired, transitions),
        });
        this.lead(true);
      } else {
        this.lead(false);
      }
    } catch (error) {
      // 409: another replica wrote first. Anything else: we cannot know we still lead, so we do not.
      if ((error as { code?: number }).code !== 409)
        this.options.logger.warn({ err: error }, 'lease update failed');
      this.lead(false);
    } finally {
      this.schedule();
    }
  }

  private lead(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.options.logger.info(
      { identity: this.options.identity, leading },
      leading ? 'leading' : 'not leading',
    );
    if (leading) this.options.onStartedLeading();
    else this.options.onStoppedLeading();
  }

  /** Stops renewing; with `release`, empties the Lease so that another replica takes over at once. */
  async stop(release = true): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (release && this.leading) {
      try {
        const current = await this.api.readNamespacedLease({
          name: this.options.name,
          namespace: this.options.namespace,
        });
        if (current.spec?.holderIdentity === this.options.identity) {
          current.spec = {
            ...current.spec,
            holderIdentity: undefined,
            renewTime: new V1MicroTime(0),
          } as V1Lease['spec'];
          await this.api.replaceNamespacedLease({
            name: this.options.name,
            namespace: this.options.namespace,
            body: current,
          });
        }
      } catch {
        // it expires by itself
      }
    }
    this.lead(false);
  }
}
