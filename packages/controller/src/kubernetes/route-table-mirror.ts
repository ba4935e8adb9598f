import { gunzipSync, gzipSync } from 'node:zlib';
import { parseRouteTableText, type RouteTable } from '@graylane/lane-core';
import {
  CoreV1Api,
  type Informer,
  type KubeConfig,
  makeInformer,
  type ObjectCache,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { LABELS } from '../platform/kubernetes.js';
import { KeepWatching } from './keep-watching.js';

export const ROUTE_TABLE_CONFIGMAP = 'graylane-routetable';
/**
 * The table is stored gzipped: a ConfigMap holds at most 1 MiB, and at 500 releases × 10 services
 * the JSON table passed that as the canaries came in (bench/kubernetes-scale.mjs); gzipped it is
 * about a tenth. A table stored as plain JSON under `routetable.json` (before this) is still read.
 */
const KEY = 'routetable.json.gz';
const PLAIN_KEY = 'routetable.json';

/** The route table's JSON text in the mirror ConfigMap, gzipped or (as written before) plain. */
export function mirroredTableText(map: V1ConfigMap): string | undefined {
  const zipped = map.binaryData?.[KEY];
  if (zipped) return gunzipSync(Buffer.from(zipped, 'base64')).toString('utf8');
  return map.data?.[PLAIN_KEY];
}
/** What marks the mirror, so that the watch sees this one ConfigMap and not every other. */
const MIRROR_LABEL = { [LABELS.service]: 'graylane-controller' };
const SELECTOR = Object.entries(MIRROR_LABEL)
  .map(([k, v]) => `${k}=${v}`)
  .join(',');

export interface RouteTableMirrorOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  logger: Logger;
}

/**
 * The route table in a ConfigMap. The leader writes each table there before any proxy gets it, so
 * a replica that takes over never publishes a lower revision, and a proxy that starts while no
 * controller runs still gets the last table. Every replica watches it: a follower serves what the
 * leader wrote (read-only), so a proxy behind a Service in front of all replicas always gets the
 * current table, whichever replica it reached.
 */
export class RouteTableMirror {
  private readonly core: CoreV1Api;
  private readonly informer: Informer<V1ConfigMap> & ObjectCache<V1ConfigMap>;
  private readonly watching: KeepWatching<V1ConfigMap>;
  private readonly listeners: Array<(table: RouteTable) => void> = [];
  /** The text last refused, so a bad mirror is logged once, not on every event. */
  private refused: string | undefined;

  constructor(private readonly options: RouteTableMirrorOptions) {
    const { kubeConfig: kc, namespace } = options;
    this.core = kc.makeApiClient(CoreV1Api);
    this.informer = makeInformer(
      kc,
      `/api/v1/namespaces/${namespace}/configmaps`,
      () => this.core.listNamespacedConfigMap({ namespace, labelSelector: SELECTOR }),
      SELECTOR,
    );
    for (const event of ['add', 'update'] as const) {
      this.informer.on(event, (map) => {
        const table = this.parse(map);
        if (table) for (const listener of this.listeners) listener(table);
      });
    }
    this.watching = new KeepWatching(this.informer, 'route-table mirror', options.logger);
  }

  start(): Promise<void> {
    return this.watching.start();
  }

  /** Called with each valid table the mirror holds, as it changes. */
  onTable(listener: (table: RouteTable) => void): void {
    this.listeners.push(listener);
  }

  /** The table the watch last saw. */
  latest(): RouteTable | undefined {
    const map = this.informer.get(ROUTE_TABLE_CONFIGMAP, this.options.namespace);
    return map ? this.parse(map) : undefined;
  }

  /**
   * The table as stored now, read past the watch's cache: what a new leader starts from. Throws
   * when the API server does not answer, since starting from nothing would publish a lower revision.
   */
  async read(): Promise<RouteTable | undefined> {
    try {
      return this.parse(
        await this.core.readNamespacedConfigMap({
          name: ROUTE_TABLE_CONFIGMAP,
          namespace: this.options.namespace,
        }),
      );
    } catch (error) {
      if ((error as { code?: number }).code === 404) return undefined;
      throw error;
    }
  }

  async write(table: RouteTable): Promise<void> {
    const namespace = this.options.namespace;
    const body = {
      metadata: { name: ROUTE_TABLE_CONFIGMAP, namespace, labels: { ...MIRROR_LABEL } },
      binaryData: { [KEY]: gzipSync(JSON.stringify(table)).toString('base64') },
    };
    try {
      await this.core.replaceNamespacedConfigMap({ name: ROUTE_TABLE_CONFIGMAP, namespace, body });
    } catch (error) {
      if ((error as { code?: number }).code !== 404) throw error;
      await this.core.createNamespacedConfigMap({ namespace, body });
    }
  }

  /** A table checked as a proxy checks it; anything else (a hand edit gone wrong) is logged and ignored. */
  private parse(map: V1ConfigMap): RouteTable | undefined {
    if (map.metadata?.name !== ROUTE_TABLE_CONFIGMAP) return undefined;
    let text: string | undefined;
    try {
      text = mirroredTableText(map);
      if (!text) return undefined;
      return parseRouteTableText(text, `ConfigMap ${ROUTE_TABLE_CONFIGMAP}`);
    } catch (error) {
      const seen = text ?? map.metadata?.resourceVersion;
      if (this.refused !== seen) {
        this.refused = seen;
        this.options.logger.error({ err: error }, 'the mirrored route table is invalid; ignored');
      }
      return undefined;
    }
  }

  stop(): Promise<void> {
    return this.watching.stop();
  }
}
