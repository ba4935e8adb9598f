import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  ErrorCodes,
  formatPath,
  GraylaneError,
  LANE_PATTERN,
  parseDocumentText,
} from '@graylane/lane-core';
import { z } from 'zod';
import { parseCidr } from './http/addresses.js';
import { DEFAULT_BODY_LIMITS } from './http/body-watch.js';
import { DEFAULT_HEAD_LIMITS } from './http/guard.js';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_TUNNEL_IDLE_TIMEOUT_MS } from './http/limits.js';
import type { ListenAddress, ProxyOptions } from './proxy.js';
import { defaultRuntimeOptions } from './runtime.js';
import type { UpstreamTls } from './upstream/tls.js';

export const USAGE = `Usage: graylane-proxy --route-table <file|url> [options]
       graylane-proxy --inbound HOST:PORT --inbound-target URL --service NAME [options]

  --route-table FILE|URL route table (JSON or YAML), watched for changes; or the controller's
                         http(s)://HOST:PORT/v1/routetable, watched (token: GRAYLANE_ROUTE_TABLE_TOKEN);
                         optional with --inbound alone
  --gateway HOST:PORT    gateway (entry) listener
  --outbound HOST:PORT   outbound (sidecar) listener: the app's HTTP_PROXY, or Host-addressed calls
  --inbound HOST:PORT    inbound (sidecar) listener in front of the local app: per-lane metrics, tag
                         normalised (with --inbound-target URL of the app, --service NAME of it,
                         --service-lane LANE it serves (stable), --service-version V as a label)
  --admin HOST:PORT      admin listener: /metrics /healthz /readyz /routetable (127.0.0.1:15000)
  --drain-delay-ms MS    on SIGTERM, keep accepting this long after /readyz turned 503 (5000)
  --config FILE          proxy settings (YAML or JSON); flags win over it
  --log-level LEVEL      fatal | error | warn | info | debug | trace | silent (info)
  -h, --help             this text

Every flag is also read from the environment as GRAYLANE_<FLAG>, e.g. GRAYLANE_ROUTE_TABLE.`;

export class ConfigError extends GraylaneError {
  constructor(message: string) {
    super(ErrorCodes.config, message);
    this.name = 'ConfigError';
  }
}

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
      .optional(),
    /** The controller's bearer token; kept off the command line, where `ps` would show it. */
    routeTableToken: z.string().min(1).optional(),
    routeTableStartTimeoutMs: z.number().int().min(0).default(10_000),
    gateway: address.optional(),
    outbound: address.optional(),
    inbound: address.optional(),
    inboundTarget: z
      .string()
      .refine(isAppOrigin, 'an http(s) origin of the local app, e.g. http://127.0.0.1:3000')
      .optional(),
    service: z.string().regex(LANE_PATTERN, 'a service name is a DNS label').optional(),
    version: z.string().min(1).optional(),
    lane: z.string().regex(LANE_PATTERN, 'a lane is a DNS label').default('stable'),
    admin: address.prefault('127.0.0.1:15000'),
    adminAllowRemote: z.boolean().default(false),
    logLevel: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info'),
    proxyId: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/)
      .optional(),
    loopLimit: z.number().int().min(1).default(8),
    unknownHosts: z.enum(['passthrough', 'refuse']).default('passthrough'),
    trustedProxies: z
      .array(
        z.string().refine((value) => parseCidr(value) !== undefined, 'a CIDR such as 10.0.0.0/8'),
      )
      .default([]),
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
      .default({}),
    serviceDomains: z
      .array(
        z
          .string()
          .regex(/^\.?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$/, 'a domain such as .corp.internal'),
      )
      .default([]),
    drainTimeoutMs: z.number().int().min(0).default(10_000),
    drainDelayMs: z.number().int().min(0).default(5_000),
    server: z
      .object({
        headersTimeoutMs: z.number().int().min(1).default(10_000),
        keepAliveTimeoutMs: z.number().int().min(1).default(5_000),
        maxConnections: z.number().int().min(1).default(DEFAULT_MAX_CONNECTIONS),
        maxHeaderBytes: z.number().int().min(1024).default(DEFAULT_HEAD_LIMITS.maxHeaderBytes),
        maxHeaderCount: z.number().int().min(1).default(DEFAULT_HEAD_LIMITS.maxHeaderCount),
        tunnelIdleTimeoutMs: z.number().int().min(1).default(DEFAULT_TUNNEL_IDLE_TIMEOUT_MS),
        requestBodyTimeoutMs: z
          .number()
          .int()
          .min(1)
          .default(DEFAULT_BODY_LIMITS.requestBodyTimeoutMs),
        requestBodyIdleTimeoutMs: z
          .number()
          .int()
          .min(1)
          .default(DEFAULT_BODY_LIMITS.requestBodyIdleTimeoutMs),
      })
      .strict()
      .prefault({}),
    upstream: z
      .object({
        connectTimeoutMs: z.number().int().min(1).optional(),
        headersTimeoutMs: z.number().int().min(1).optional(),
        bodyTimeoutMs: z.number().int().min(1).optional(),
        requestTimeoutMs: z.number().int().min(1).optional(),
        keepAliveTimeoutMs: z.number().int().min(1).optional(),
      })
      .strict()
      .default({}),
    retry: z
      .object({
        ratio: z.number().min(0).max(1).optional(),
        windowMs: z.number().int().min(100).optional(),
        minRetries: z.number().int().min(0).optional(),
        bufferBytes: z.number().int().min(0).optional(),
      })
      .strict()
      .default({}),
    outlier: z
      .object({
        consecutiveFailures: z.number().int().min(1).optional(),
        baseEjectionMs: z.number().int().min(1).optional(),
        maxEjectionMs: z.number().int().min(1).optional(),
        maxEjectionPercent: z.number().min(0).max(100).optional(),
      })
      .strict()
      .default({}),
  })
  .strict();

/** The fields of a partial settings object that were given, to lay over the defaults. */
function given<T extends object>(partial: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(partial).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}

export type ProxyConfig = z.output<typeof ProxyConfigSchema>;

const FLAGS = [
  'route-table',
  'gateway',
  'outbound',
  'inbound',
  'inbound-target',
  'service',
  'service-version',
  'service-lane',
  'admin',
  'drain-delay-ms',
  'config',
  'log-level',
] as const;
type Flag = (typeof FLAGS)[number];

/** The config-file field a flag sets: its camel-case name, but for `--service-version|lane`. */
const field = (flag: Flag) =>
  flag === 'service-version' || flag === 'service-lane'
    ? flag.slice('service-'.length)
    : flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const envName = (flag: string) => `GRAYLANE_${flag.toUpperCase().replace(/-/g, '_')}`;

function readPem(path: string, where: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `${where}: ${path}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    );
  }
}

/** The TLS settings with their files read, so a missing one stops the start, not a request. */
function readTlsFiles(files: ProxyConfig['upstreamTls']): UpstreamTls {
  return Object.fromEntries(
    Object.entries(files).map(([origin, tls]) => {
      const at = (field: string) => `upstreamTls.${origin}.${field}`;
      return [
        origin,
        {
          serverName: tls.serverName,
          ca: tls.caFile && readPem(tls.caFile, at('caFile')),
          cert: tls.certFile && readPem(tls.certFile, at('certFile')),
          key: tls.keyFile && readPem(tls.keyFile, at('keyFile')),
        },
      ];
    }),
  );
}

function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`${path}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`);
  }
  try {
    return parseDocumentText(text, path) ?? {};
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
}

export type CliResult = { help: true } | { help: false; config: ProxyConfig };

/** Flags win over the environment, which wins over the config file. */
export function parseCli(argv: readonly string[], env: NodeJS.ProcessEnv): CliResult {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        ...Object.fromEntries(FLAGS.map((flag) => [flag, { type: 'string' as const }])),
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  if (parsed.values.help) return { help: true };
  const pick = (flag: Flag): string | undefined => {
    const value = parsed.values[flag];
    return typeof value === 'string' ? value : env[envName(flag)] || undefined;
  };
  const configPath = pick('config');
  const fromFile = configPath ? readConfigFile(configPath) : {};
  const overrides: Record<string, string | number> = {};
  for (const flag of FLAGS) {
    const value = pick(flag);
    if (flag === 'config' || value === undefined) continue;
    // A number given as text is checked by the schema like any other value.
    overrides[field(flag)] = flag.endsWith('-ms') && /^\d+$/.test(value) ? Number(value) : value;
  }
  const token = env.GRAYLANE_ROUTE_TABLE_TOKEN;
  if (token) overrides.routeTableToken = token;
  const merged = { ...(fromFile as object), ...overrides };
  const result = ProxyConfigSchema.safeParse(merged);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const where = configPath ? `${configPath}: ` : '';
    throw new ConfigError(`${where}${formatPath(issue.path)}: ${issue.message}`);
  }
  const config = result.data;
  if (!config.gateway && !config.outbound && !config.inbound) {
    throw new ConfigError('nothing to serve: give --gateway, --outbound and/or --inbound');
  }
  if ((config.gateway || config.outbound) && !config.routeTable) {
    throw new ConfigError('--route-table is required');
  }
  if (config.inbound && (!config.inboundTarget || !config.service)) {
    throw new ConfigError('--inbound needs --inbound-target and --service');
  }
  return { help: false, config };
}

export function proxyOptionsFrom(config: ProxyConfig): ProxyOptions {
  const runtime = defaultRuntimeOptions();
  return {
    ...(config.routeTable ? { routeTable: config.routeTable } : {}),
    ...(config.routeTableToken ? { routeTableToken: config.routeTableToken } : {}),
    routeTableStartTimeoutMs: config.routeTableStartTimeoutMs,
    ...(config.gateway ? { gateway: config.gateway } : {}),
    ...(config.outbound ? { outbound: config.outbound } : {}),
    ...(config.inbound && config.inboundTarget && config.service
      ? {
          inbound: config.inbound,
          inboundApp: {
            target: config.inboundTarget,
            service: config.service,
            version: config.version,
            lane: config.lane,
          },
        }
      : {}),
    admin: config.admin,
    adminAllowRemote: config.adminAllowRemote,
    drainTimeoutMs: config.drainTimeoutMs,
    drainDelayMs: config.drainDelayMs,
    server: config.server,
    runtime: {
      ...runtime,
      ...(config.proxyId ? { proxyId: config.proxyId } : {}),
      loopLimit: config.loopLimit,
      unknownHosts: config.unknownHosts,
      serviceDomains: config.serviceDomains,
      upstreamTls: readTlsFiles(config.upstreamTls),
      trustedProxies: config.trustedProxies,
      upstream: { ...runtime.upstream, ...given(config.upstream) },
      retry: { ...runtime.retry, ...given(config.retry) },
      outlier: { ...runtime.outlier, ...given(config.outlier) },
    },
  };
}
