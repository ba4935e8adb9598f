import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseListen } from '../listen-address.js';
import { freePort } from './local.js';
import type { ProcessSupervisor } from './processes.js';

/** The listeners of the graylane-proxy local mode runs for the user (`--gateway`, `--outbound`). */
export interface ManagedProxyOptions {
  gateway?: string;
  outbound?: string;
}

const PROCESS_ID = 'graylane-proxy.managed.0';

/**
 * The one graylane-proxy process local mode runs when asked for a gateway or an outbound listener,
 * fed by the controller's own route-table watch, supervised like the apps.
 */
export class ManagedProxy {
  /** The proxy id it watches with: the controller waits for it at every barrier. */
  static readonly proxyId = 'graylane-managed-proxy';
  private adminPort = 0;
  private config = '';

  constructor(
    private readonly options: {
      listeners: ManagedProxyOptions;
      stateDir: string;
      /** The controller's own URL, to watch the route table at. */
      url: () => string;
      readToken?: string;
    },
  ) {}

  get wanted(): boolean {
    return Boolean(this.options.listeners.gateway || this.options.listeners.outbound);
  }

  /** Its ports: an app started before the proxy binds them must not take one. */
  reservedPorts(): ReadonlySet<number> {
    const { gateway, outbound } = this.options.listeners;
    return new Set(
      [gateway, outbound]
        .filter((a): a is string => a !== undefined)
        .map((a) => parseListen(a).port)
        .concat(this.adminPort),
    );
  }

  /** What every app gets, so that its outbound calls go through the outbound listener. */
  appEnv(): Record<string, string> {
    const outbound = this.options.listeners.outbound;
    if (!outbound) return {};
    const proxy = `http://127.0.0.1:${parseListen(outbound).port}`;
    const noProxy = 'localhost,127.0.0.1,::1';
    return { HTTP_PROXY: proxy, http_proxy: proxy, NO_PROXY: noProxy, no_proxy: noProxy };
  }

  /** The gateway's URL, for the analysis load; undefined without one. */
  gatewayUrl(): string | undefined {
    const gateway = this.options.listeners.gateway;
    if (!gateway) return undefined;
    const { host, port } = parseListen(gateway);
    if (host === '0.0.0.0') return `http://127.0.0.1:${port}`;
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  /** Its admin `/metrics`, once it runs. */
  metricsTargets(): string[] {
    return this.wanted && this.adminPort > 0 ? [`http://127.0.0.1:${this.adminPort}/metrics`] : [];
  }

  /** Runs it unless it runs (a changed config replaces it). */
  async ensure(supervisor: ProcessSupervisor): Promise<void> {
    if (!this.wanted) return;
    if (this.adminPort === 0) {
      this.adminPort =
        supervisor.get(PROCESS_ID)?.spec.port ?? (await freePort(this.reservedPorts()));
    }
    const { listeners, stateDir, readToken } = this.options;
    const dir = join(stateDir, 'proxy');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const configFile = join(dir, 'config.json');
    const config = {
      routeTable: `${this.options.url()}/v1/routetable`,
      proxyId: ManagedProxy.proxyId,
      admin: `127.0.0.1:${this.adminPort}`,
      ...(listeners.gateway ? { gateway: listeners.gateway } : {}),
      ...(listeners.outbound ? { outbound: listeners.outbound } : {}),
    };
    const text = `${JSON.stringify(config, null, 2)}\n`;
    if (text !== this.config) writeFileSync(configFile, text, { mode: 0o600 });
    this.config = text;
    const bin = join(
      dirname(createRequire(import.meta.url).resolve('@graylane/router-proxy')),
      'main.js',
    );
    supervisor.ensure(PROCESS_ID, {
      command: process.execPath,
      args: [bin, '--config', configFile],
      env: readToken ? { GRAYLANE_ROUTE_TABLE_TOKEN: readToken } : {},
      port: this.adminPort,
      readyPath: '/readyz',
      readyTimeoutMs: 15_000,
      logFile: join(stateDir, 'logs', `${PROCESS_ID}.log`),
    });
  }

  /**
   * Waits until it answers ready. Returns why it did not when it exits or times out first (a port
   * in use, most often): a controller whose gateway never bound would look healthy while the port
   * answers someone else.
   */
  async problem(supervisor: ProcessSupervisor): Promise<string | undefined> {
    if (!this.wanted) return undefined;
    const restartsBefore = supervisor.get(PROCESS_ID)?.restarts ?? 0;
    for (;;) {
      const record = supervisor.get(PROCESS_ID);
      if (record?.health === 'ready') return undefined;
      // An exit counts once its message is written (the supervisor reads the log's tail first).
      const exited =
        record && record.restarts > restartsBefore && record.message?.includes(' exited');
      if (record && (record.health === 'failed' || exited)) {
        // The proxy's one-line reason ("graylane-proxy: cannot listen on gateway …") is among the
        // last lines of its log, not always the last: its JSON log lines are flushed at exit.
        const lines = (record.message ?? record.health).trim().split('\n');
        const reason = lines.findLast((line) => line.startsWith('graylane-proxy:')) ?? lines[0];
        return `${reason} (log: ${record.spec.logFile})`;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
