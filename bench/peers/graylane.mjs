// `node bench/peers/graylane.mjs <stable-url> <gray-url>`: one graylane-proxy process with a
// gateway and an outbound listener, CLI defaults (metrics, head guards, body deadlines, all on),
// over a table whose service `bench` has a stable endpoint and a `gray` lane on another address of
// the same upstream. Prints {gateway, outbound} ports as one JSON line; SIGTERM stops it.
import { importBuilt } from '../forwarders/graylane-proxy.mjs';

const [stable, gray] = process.argv.slice(2);
const { createLogger, GraylaneProxy, ProxyConfigSchema, parseRouteTable, proxyOptionsFrom } =
  await importBuilt();
const config = ProxyConfigSchema.parse({
  gateway: '127.0.0.1:0',
  outbound: '127.0.0.1:0',
  admin: '127.0.0.1:0',
  logLevel: 'silent',
});
const proxy = new GraylaneProxy({
  ...proxyOptionsFrom(config),
  initialTable: parseRouteTable({
    apiVersion: 'graylane/v1',
    revision: 1,
    services: {
      bench: { stable: { endpoints: [stable] }, lanes: { gray: { endpoints: [gray] } } },
    },
    entrypoints: [
      { name: 'bench', match: { pathPrefix: '/' }, service: 'bench', clientLanes: 'any' },
    ],
  }),
  logger: createLogger(config.logLevel),
});
await proxy.start();
process.stdout.write(
  `${JSON.stringify({ gateway: proxy.address('gateway').port, outbound: proxy.address('outbound').port })}\n`,
);
process.on('SIGTERM', () => process.exit(0));
