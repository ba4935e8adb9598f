// `node bench/peers/graylane.mjs <json>`: one graylane-proxy process, CLI defaults (metrics, head
// guards, body deadlines, all on), log level silent. The JSON argument says what it serves:
//
//   { stable, gray }      service `bench`: a stable endpoint and a `gray` lane on another address of
//                         the same upstream; gateway (entrypoint `/` → bench, clientLanes any, and
//                         `/hop/` → the outbound listener of this same process: two hops),
//                         outbound and inbound (in front of `stable`, as service `bench`) listeners
//   named                 service `named` whose endpoint is this URL (`http://localhost:PORT`)
//   services, lanes       instead: `services` services of `lanes` lanes each (lane l on
//                         127.0.0.(l + 2)), the entrypoint to one in the middle (`svc-<services/2>`)
//   server                the listeners' `server` settings (the idle-connection process)
//   profile               a file: SIGUSR2 starts V8's CPU profiler (after the caller's warm-up, so
//                         start-up and JIT are not in it), SIGTERM writes the .cpuprofile there
//   gatewayPort           the gateway's port (node:cluster workers share it), with no outbound or
//                         inbound listener
//
// Prints {gateway, outbound, inbound} ports as one JSON line; SIGTERM stops it.
import { importBuilt } from '../forwarders/graylane-proxy.mjs';

const spec = JSON.parse(process.argv[2]);
const { createLogger, GraylaneProxy, ProxyConfigSchema, parseRouteTable, proxyOptionsFrom } =
  await importBuilt();
const sidecar = spec.gatewayPort
  ? {}
  : { outbound: '127.0.0.1:0', inbound: '127.0.0.1:0', inboundTarget: spec.stable };
const config = ProxyConfigSchema.parse({
  gateway: `127.0.0.1:${spec.gatewayPort ?? 0}`,
  ...sidecar,
  service: 'bench',
  admin: '127.0.0.1:0',
  logLevel: 'silent',
  ...(spec.server ? { server: spec.server } : {}),
});

/** `services` × `lanes`, every endpoint on the one upstream (a lane's on the `gray` address). */
function largeTable() {
  const services = {};
  for (let s = 0; s < spec.services; s++) {
    const lanes = {};
    for (let l = 0; l < spec.lanes; l++) {
      // A service's endpoints must differ: lane l is on 127.0.0.(l + 2) of the upstream.
      lanes[`lane-${l}`] = { endpoints: [spec.gray.replace('127.0.0.2', `127.0.0.${l + 2}`)] };
    }
    services[`svc-${s}`] = { stable: { endpoints: [spec.stable] }, lanes };
  }
  const service = `svc-${Math.floor(spec.services / 2)}`;
  return {
    services,
    entrypoints: [{ name: 'bench', match: { pathPrefix: '/' }, service, clientLanes: 'any' }],
  };
}

function benchTable(outboundPort) {
  const services = {
    bench: { stable: { endpoints: [spec.stable] }, lanes: { gray: { endpoints: [spec.gray] } } },
  };
  if (spec.named) services.named = { stable: { endpoints: [spec.named] } };
  const entrypoints = [
    { name: 'bench', match: { pathPrefix: '/' }, service: 'bench', clientLanes: 'any' },
  ];
  if (outboundPort) {
    services.hop = { stable: { endpoints: [`http://127.0.0.1:${outboundPort}`] } };
    entrypoints.unshift({ name: 'hop', match: { pathPrefix: '/hop/' }, service: 'hop' });
  }
  return { services, entrypoints };
}

const table = (revision, body) => parseRouteTable({ apiVersion: 'graylane/v1', revision, ...body });
const options = proxyOptionsFrom(config);
const proxy = new GraylaneProxy({
  ...options,
  initialTable: table(1, spec.services ? largeTable() : benchTable()),
  logger: createLogger(config.logLevel),
});
await proxy.start();
const outbound = proxy.address('outbound')?.port;
// The second hop is this process's own outbound listener, known once it listens.
if (!spec.services && outbound) proxy.tables.set(table(2, benchTable(outbound)), 'bench');
process.stdout.write(
  `${JSON.stringify({ gateway: proxy.address('gateway').port, outbound, inbound: proxy.address('inbound')?.port })}\n`,
);
if (spec.profile) {
  const { Session } = await import('node:inspector/promises');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  process.on('SIGUSR2', () => session.post('Profiler.start'));
  process.on('SIGTERM', async () => {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(spec.profile, JSON.stringify(profile));
    process.exit(0);
  });
} else process.on('SIGTERM', () => process.exit(0));
