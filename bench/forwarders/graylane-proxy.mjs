// The product itself: a graylane-proxy gateway from packages/router-proxy/dist (build with
// `npx tsc -b`), configured as `graylane-proxy --gateway 127.0.0.1:0 --log-level silent` would be,
// with the route table given in code. Unlike the minimal forwarders it does the whole hot path:
// entrypoint match, loop check (Via), lane assignment, route resolution with fallback, retry budget
// bookkeeping, metrics, and the x-lane-served provenance header.
//
// The table has one service, `bench`, with only a stable endpoint (the upstream). A `canary` lane
// would need an endpoint origin of its own (the table refuses duplicate endpoints within a service)
// and the upstream listens on one port, so the bench's `x-lane: canary` requests take the realistic
// "service without canary" path: accepted from the client (clientLanes: any), kept on the forwarded
// request, served by stable with `x-lane-served: bench=stable;fallback=absent`.

import path from 'node:path';
import { pathToFileURL } from 'node:url';

export const SERVICE = 'bench';

/** The x-lane-served value the gateway answers with for a request in `lane`. */
export function expectedLaneServed(lane) {
  return lane === undefined || lane === 'stable'
    ? `${SERVICE}=stable`
    : `${SERVICE}=stable;fallback=absent`;
}

export async function importBuilt() {
  try {
    const [proxy, core] = await Promise.all([
      // GRAYLANE_PROXY_DIST: another build of the package (under packages/router-proxy, so that
      // its imports resolve), for a before/after in one run (bench/proxy-cpu.mjs --baseline).
      import(
        process.env.GRAYLANE_PROXY_DIST
          ? pathToFileURL(path.resolve(process.env.GRAYLANE_PROXY_DIST, 'index.js')).href
          : '../../packages/router-proxy/dist/index.js'
      ),
      import('../../packages/lane-core/dist/index.js'),
    ]);
    return { ...proxy, parseRouteTable: core.parseRouteTable };
  } catch (err) {
    throw new Error(`graylane-proxy is not built (run \`npx tsc -b\` first): ${err.message}`);
  }
}

/** Starts the gateway in front of `upstreamUrl`; resolves with the port it listens on. */
export const startGateway = (upstreamUrl) => startListener('gateway', upstreamUrl);

/**
 * Starts one listener (`gateway`, or `outbound`: the sidecar, reached with `Host: bench`) in front of
 * `upstreamUrl`; resolves with the port it listens on.
 */
export async function startListener(listener, upstreamUrl) {
  const { createLogger, GraylaneProxy, ProxyConfigSchema, parseRouteTable, proxyOptionsFrom } =
    await importBuilt();
  // The CLI's own defaults (server limits, upstream timeouts and keep-alive, retry budget,
  // outlier detection), not the test helper's.
  const config = ProxyConfigSchema.parse({
    [listener]: '127.0.0.1:0',
    admin: '127.0.0.1:0',
    logLevel: 'silent',
    // The load generator on loopback stands where a load balancer would: trusted, like the
    // other forwarders, to append to x-forwarded-for rather than replace it.
    trustedProxies: ['127.0.0.0/8'],
  });
  const proxy = new GraylaneProxy({
    ...proxyOptionsFrom(config),
    initialTable: parseRouteTable({
      apiVersion: 'graylane/v1',
      revision: 1,
      services: process.env.GRAYLANE_BENCH_TABLE
        ? largeServices(process.env.GRAYLANE_BENCH_TABLE, upstreamUrl)
        : { [SERVICE]: { stable: { endpoints: [upstreamUrl] } } },
      entrypoints: [
        { name: SERVICE, match: { pathPrefix: '/' }, service: SERVICE, clientLanes: 'any' },
      ],
    }),
    logger: createLogger(config.logLevel),
  });
  await proxy.start();
  return proxy.address(listener).port;
}

/**
 * GRAYLANE_BENCH_TABLE=<services>x<lanes>: `bench` and services `svc-1`… of `lanes` lanes each, to
 * weigh the size of the table alone (send `x-lane: lane-7`; compare 1x10 with 100x10). Lane 7 of
 * `bench` is the upstream, and its stable the same upstream written as `localhost` (a service's
 * endpoints must differ); every other endpoint is a port nothing listens on, never asked.
 */
function largeServices(size, upstreamUrl) {
  const [count, laneCount] = size.split('x').map(Number);
  const upstream = new URL(upstreamUrl);
  const unused = (n) => `http://127.0.0.1:${20000 + n}`;
  const services = {};
  for (let s = 0; s < count; s++) {
    const lanes = {};
    for (let l = 0; l < laneCount; l++) {
      lanes[`lane-${l}`] = { endpoints: [s === 0 && l === 7 ? upstreamUrl : unused(l)] };
    }
    const stable = s === 0 ? `http://localhost:${upstream.port}` : unused(laneCount);
    services[s === 0 ? SERVICE : `svc-${s}`] = { stable: { endpoints: [stable] }, lanes };
  }
  return services;
}
