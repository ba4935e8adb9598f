import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ErrorCodes, formatPath, GraylaneError, parseDocumentText } from '@graylane/lane-core';
import type { ProxyOptions } from './proxy.js';
import { defaultRuntimeOptions } from './runtime.js';
import { type ProxyConfig, ProxyConfigSchema } from './settings.js';
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

export { type ProxyConfig, ProxyConfigSchema };

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
      upstream: config.upstream,
      retry: config.retry,
      outlier: config.outlier,
    },
  };
}
