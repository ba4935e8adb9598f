import { LANE_PATTERN } from '@graylane/lane-core';
import { z } from 'zod';
import { parseCidr } from './http/addresses.js';
import type { ListenAddress } from './proxy.js';

/**
 * The proxy's settings: what the config file holds and the flags set. This schema is the one source
 * of their defaults (the runtime and the listeners take theirs from it) and of the config block in
 * the package README (`scripts/config-docs.mjs`, kept fresh by a test).
 */

/** Milliseconds, at least 1. */
const ms = (value: number, description: string) =>
  z.number().int().min(1).default(value).describe(description);

const ADDRESS = /^(?:(\[[^\]]+\]|[^:]*):)?(\d{1,5})$/;

/** `HOST:PORT`, `:PORT` or `PORT` (host 127.0.0.1), parsed here so a bad one is a config error. */
const address = z
  .string()
  .transform((value, ctx): ListenAddress => {
    const match = ADDRESS.exec(value.trim());
    const port = Number(match?.[2]);
    if (!match || port > 65535) {
      ctx.addIssue({ code: 'custom', message: `expected HOST:PORT, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return { host: (match[1] || '127.0.0.1').replace(/^\[|\]$/g, ''), port };
  })
  .describe('HOST:PORT, :PORT or PORT');

/** The local app's origin: http(s), no path, since every request keeps its own. */
function isAppOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return /^https?:$/.test(url.protocol) && url.pathname === '/' && !url.search && !url.hash;
  } catch {
    return false;
  }
}

/** A file path, or an http(s) URL of the controller's route table; no other scheme. */
function isRouteTableSpec(value: string): boolean {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value.trim() !== '';
  try {
    return /^https?:$/.test(new URL(value).protocol);
  } catch {
    return false;
  }
}

const EndpointTlsSchema = z
  .object({
    caFile: z.string().min(1).optional().describe('PEM file of the CA(s) to trust'),
    serverName: z.string().min(1).optional().describe('name to send (SNI) and check'),
    certFile: z.string().min(1).optional().describe('PEM client certificate (mTLS)'),
    keyFile: z.string().min(1).optional().describe('PEM key of the client certificate'),
  })
  .strict()
  .refine((tls) => !tls.certFile === !tls.keyFile, 'certFile and keyFile go together');

const isTlsKey = (key: string) => {
  if (key === '*') return true;
  try {
    return new URL(key).protocol === 'https:' && new URL(key).origin === key;
  } catch {
    return false;
  }
};

/** The config file: the flags plus settings too detailed for flags. */
export const ProxyConfigSchema = z
  .object({
    routeTable: z
      .string()
      .refine(isRouteTableSpec, "a file, or the controller's http(s) URL")
      .optional()
      .describe("a file, or the controller's http(s) URL (--route-table)"),
    /** The controller's bearer token; kept off the command line, where `ps` would show it. */
    routeTableToken: z
      .string()
      .min(1)
      .optional()
      .describe("the controller's bearer token (GRAYLANE_ROUTE_TABLE_TOKEN)"),
    routeTableStartTimeoutMs: z
      .number()
      .int()
      .min(0)
      .default(10_000)
      .describe('how long start-up waits for the controller to send a first table'),
    gateway: address.optional().describe('the gateway listener (--gateway)'),
    outbound: address.optional().describe('the outbound listener (--outbound)'),
    inbound: address.optional().describe('the inbound listener (--inbound)'),
    inboundTarget: z
      .string()
      .refine(isAppOrigin, 'an http(s) origin of the local app, e.g. http://127.0.0.1:3000')
      .optional()
      .describe('the local app behind the inbound listener (--inbound-target)'),
    service: z
      .string()
      .regex(LANE_PATTERN, 'a service name is a DNS label')
      .optional()
      .describe('the service the local app is (--service)'),
    version: z
      .string()
      .min(1)
      .optional()
      .describe("the local app's version, a label (--service-version)"),
    lane: z
      .string()
      .regex(LANE_PATTERN, 'a lane is a DNS label')
      .default('stable')
      .describe('the lane the local app serves (--service-lane)'),
    admin: address.prefault('127.0.0.1:15000').describe('the admin listener (--admin)'),
    adminAllowRemote: z.boolean().default(false).describe('answer non-loopback admin clients'),
    logLevel: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info')
      .describe('pino levels; one JSON event per line (--log-level)'),
    proxyId: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/)
      .optional()
      .describe('names this proxy in Via; random per process when absent'),
    loopLimit: z
      .number()
      .int()
      .min(1)
      .default(8)
      .describe('a request that passed this proxy this many times gets 508'),
    unknownHosts: z
      .enum(['passthrough', 'refuse'])
      .default('passthrough')
      .describe('outbound calls to hosts that are not services: passthrough | refuse (502)'),
    trustedProxies: z
      .array(
        z.string().refine((value) => parseCidr(value) !== undefined, 'a CIDR such as 10.0.0.0/8'),
      )
      .default([])
      .describe('CIDRs of proxies in front of the gateway whose X-Forwarded-* it keeps'),
    upstreamTls: z
      .record(z.string(), EndpointTlsSchema)
      .superRefine((record, ctx) => {
        for (const key of Object.keys(record)) {
          if (isTlsKey(key)) continue;
          ctx.addIssue({
            code: 'custom',
            path: [key],
            message: 'an https origin (https://host:port) or *',
          });
        }
      })
      .default({})
      .describe('by https origin or "*": { caFile, serverName, certFile, keyFile } (mTLS)'),
    serviceDomains: z
      .array(
        z
          .string()
          .regex(/^\.?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$/, 'a domain such as .corp.internal'),
      )
      .default([])
      .describe('e.g. [.corp.internal]: <service>.corp.internal names a service too'),
    drainTimeoutMs: z
      .number()
      .int()
      .min(0)
      .default(10_000)
      .describe('requests in flight and tunnels get this long once accepting stops'),
    drainDelayMs: z
      .number()
      .int()
      .min(0)
      .default(5_000)
      .describe('/readyz is 503 at once; accepting goes on this long (--drain-delay-ms)'),
    server: z
      .object({
        headersTimeoutMs: ms(
          10_000,
          'a request head not complete by then is answered 408 and closed',
        ),
        keepAliveTimeoutMs: ms(5_000, 'an idle client connection is closed after this'),
        maxConnections: z
          .number()
          .int()
          .min(1)
          .default(10_000)
          .describe('per listener; the next connection is answered 503 and closed'),
        maxHeaderBytes: z
          .number()
          .int()
          .min(1024)
          .default(60 * 1024)
          .describe('request line and headers; a larger head gets 431'),
        maxHeaderCount: z.number().int().min(1).default(100).describe('header lines; more get 431'),
        tunnelIdleTimeoutMs: ms(
          3_600_000,
          "a WebSocket or CONNECT tunnel silent both ways this long is closed (Envoy's TCP default)",
        ),
        requestBodyTimeoutMs: ms(
          60_000,
          'the whole request body, from its head: 408 (504 once forwarding began)',
        ),
        requestBodyIdleTimeoutMs: ms(
          15_000,
          'no body bytes for this long while waiting for them: the same',
        ),
      })
      .strict()
      .prefault({})
      .describe('every listener (the admin one too)'),
    upstream: z
      .object({
        connectTimeoutMs: ms(2_000, 'to open a connection to an endpoint'),
        headersTimeoutMs: ms(15_000, 'no response head in time: retried (idempotent) or 504'),
        bodyTimeoutMs: ms(60_000, 'silence between response body chunks'),
        requestTimeoutMs: ms(
          30_000,
          'the whole request, retries included, until the response head: 504',
        ),
        keepAliveTimeoutMs: ms(
          4_000,
          "below Node's 5 s server default, so a closing socket is not reused",
        ),
        dnsTtlMs: ms(
          10_000,
          "a host-name endpoint's addresses are kept this long, refreshed in the background",
        ),
      })
      .strict()
      .prefault({})
      .describe('towards endpoints'),
    retry: z
      .object({
        ratio: z
          .number()
          .min(0)
          .max(1)
          .default(0.2)
          .describe("at most this share of a service's requests in the window are retries…"),
        windowMs: z.number().int().min(100).default(10_000).describe('the window'),
        minRetries: z.number().int().min(0).default(10).describe('…plus this many'),
        bufferBytes: z
          .number()
          .int()
          .min(0)
          .default(64 * 1024)
          .describe('request bodies up to this size are kept to send again'),
      })
      .strict()
      .prefault({})
      .describe('one retry on the next endpoint or the fallback lane'),
    outlier: z
      .object({
        consecutiveFailures: z
          .number()
          .int()
          .min(1)
          .default(5)
          .describe('connect failures or 5xx in a row eject an endpoint'),
        baseEjectionMs: ms(30_000, '× times ejected…'),
        maxEjectionMs: ms(300_000, '…capped'),
        maxEjectionPercent: z
          .number()
          .min(0)
          .max(100)
          .default(50)
          .describe("of the stable set at once; a lane's set may go to zero and fall back"),
      })
      .strict()
      .prefault({})
      .describe('passive ejection'),
  })
  .strict();

export type ProxyConfig = z.output<typeof ProxyConfigSchema>;

/** Every default, as the schema gives it to a config that sets nothing. */
export const SETTINGS_DEFAULTS = ProxyConfigSchema.parse({});
