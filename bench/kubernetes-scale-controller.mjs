// The Kubernetes-mode controller as bench/kubernetes-scale.mjs runs it: the same KubernetesController
// the `graylane controller --kubernetes` bin runs, in a process of its own, which reports its memory
// and how long its first full list took to the parent over IPC.
//   node bench/kubernetes-scale-controller.mjs KUBECONFIG NAMESPACE
import { hostname } from 'node:os';
import { KubernetesController } from '../packages/controller/dist/kubernetes-controller.js';
import { KubeConfig } from '../packages/controller/node_modules/@kubernetes/client-node/dist/index.js';
import pino from '../packages/controller/node_modules/pino/pino.js';

const [kubeconfig, namespace] = process.argv.slice(2);
const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(kubeconfig);
const controller = new KubernetesController({
  kubeConfig,
  namespace,
  identity: `${hostname()}-${process.pid}`,
  logger: pino({ level: process.env.LOG_LEVEL ?? 'warn', base: { component: 'controller' } }),
});

const memory = () => {
  const { rss, heapUsed, heapTotal } = process.memoryUsage();
  return { rss, heapUsed, heapTotal };
};
const started = performance.now();
await controller.start();
process.send({ type: 'listed', ms: performance.now() - started, ...memory() });
const sampler = setInterval(() => process.send({ type: 'memory', ...memory() }), 1_000);
process.on('disconnect', () => {
  clearInterval(sampler);
  void controller.close().finally(() => process.exit(0));
});
