import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { type Logger, pino } from 'pino';
import { buildApi, createApp, registerRouteTableRoutes } from '../api/server.js';
import { Controller } from '../controller.js';
import { ControllerError } from '../errors.js';
import { type KubernetesTarget, kubernetesTarget } from '../kubernetes/kubeconfig.js';
import { KubernetesController } from '../kubernetes-controller.js';
import { parseListen } from '../listen-address.js';

export interface ControllerCommandOptions {
  listen: string;
  stateDir: string;
  gateway?: string;
  outbound?: string;
  readToken?: string;
  logLevel: string;
  leaveRunning?: boolean;
  drain: number;
  kubernetes?: boolean;
  kubeconfig?: string;
  namespace?: string;
  leaseDuration?: number;
}

/** `graylane controller`: the control plane in the foreground until SIGTERM or SIGINT. */
export async function runController(
  options: ControllerCommandOptions,
  fail: (message: string) => never,
): Promise<void> {
  let listen: { host: string; port: number };
  try {
    listen = parseListen(options.listen);
    if (options.gateway) parseListen(options.gateway);
    if (options.outbound) parseListen(options.outbound);
  } catch (error) {
    fail((error as Error).message);
  }
  const logger = pino({ level: options.logLevel, base: { component: 'controller' } });
  if (options.kubernetes) {
    await runKubernetesController(options, listen, logger, fail);
    return;
  }
  let url = '';
  const controller = new Controller({
    stateDir: resolve(options.stateDir),
    url: () => url,
    logger,
    proxies: {
      ...(options.gateway ? { gateway: options.gateway } : {}),
      ...(options.outbound ? { outbound: options.outbound } : {}),
    },
    ...(options.readToken ? { readToken: options.readToken } : {}),
    drainMs: options.drain,
  });
  const api = buildApi({
    controller,
    token: () => controller.token,
    ...(options.readToken ? { readToken: options.readToken } : {}),
    logger,
  });
  try {
    // The port is bound before the proxies start, so that they find the route table at once.
    await api.listen({ host: listen.host, port: listen.port });
    const address = api.server.address() as { address: string; port: number };
    const host = address.address.includes(':') ? `[${address.address}]` : address.address;
    url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${address.port}`;
    await controller.start();
  } catch (error) {
    await api.close().catch(() => {});
    if (error instanceof ControllerError) fail(error.message);
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES')
      fail(`cannot listen on ${options.listen}: ${code}`);
    throw error;
  }
  const shutDown = async (stopWorkloads: boolean) => {
    // Watch streams never end by themselves; the API closes once they are gone.
    controller.publisher.close();
    await api.close();
    await controller.close({ stopWorkloads });
  };
  const proxyProblem = await controller.managedProxyProblem();
  if (proxyProblem !== undefined) {
    // Left running, as with --leave-running: the next controller adopts the apps, nothing is lost.
    await shutDown(false).catch(() => {});
    const listeners = [
      options.gateway && `--gateway ${options.gateway}`,
      options.outbound && `--outbound ${options.outbound}`,
    ].filter(Boolean);
    fail(`the proxy for ${listeners.join(' and ')} did not start: ${proxyProblem}`);
  }
  if (controller.tokenCreated) {
    process.stderr.write(
      `graylane: write token created in ${resolve(options.stateDir)}/token (shown once):\n  ${controller.token}\n`,
    );
  }
  logger.info({ url, stateDir: resolve(options.stateDir) }, 'controller listening');
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'stopping');
    void shutDown(!options.leaveRunning).then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** `graylane controller --kubernetes`: Releases as custom resources; only the route-table API here. */
async function runKubernetesController(
  options: ControllerCommandOptions,
  listen: { host: string; port: number },
  logger: Logger,
  fail: (message: string) => never,
): Promise<void> {
  let target: KubernetesTarget;
  try {
    target = kubernetesTarget(options);
  } catch (error) {
    fail((error as Error).message);
  }
  const { kubeConfig, namespace } = target;
  const controller = new KubernetesController({
    kubeConfig,
    namespace,
    identity: `${hostname()}-${process.pid}`,
    logger,
    ...(options.leaseDuration ? { leaseDurationMs: options.leaseDuration } : {}),
  });
  const app = createApp(logger);
  app.get('/healthz', async () => ({ status: 'ok', leader: controller.isLeader }));
  registerRouteTableRoutes(app, controller.publisher, (request) => {
    if (!options.readToken) return;
    const given = /^Bearer\s+(.+)$/i.exec(String(request.headers.authorization ?? ''))?.[1];
    if (given !== options.readToken)
      throw new ControllerError('unauthorized', 'this request needs the read token');
  });
  try {
    await app.listen({ host: listen.host, port: listen.port });
    await controller.start();
  } catch (error) {
    await app.close().catch(() => {});
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES')
      fail(`cannot listen on ${options.listen}: ${code}`);
    fail(`cannot start in Kubernetes mode: ${(error as Error).message.split('\n')[0]}`);
  }
  logger.info(
    { namespace, identity: `${hostname()}-${process.pid}` },
    'controller listening (kubernetes mode)',
  );
  const stop = () => {
    void (async () => {
      controller.publisher.close();
      await app.close();
      await controller.close();
      process.exit(0);
    })();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
