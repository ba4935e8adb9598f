import { Agent, Pool } from 'undici';

/** TLS settings for `https://` endpoints: whom to trust, what name to check, what to present. */
export interface EndpointTls {
  /** PEM of the CA(s) that sign the endpoint's certificate, instead of Node's default roots. */
  ca?: string | undefined;
  /** The name to send (SNI) and check the certificate against, when the endpoint URL is an IP. */
  serverName?: string | undefined;
  /** PEM certificate and key this proxy presents (mTLS). */
  cert?: string | undefined;
  key?: string | undefined;
}

/** Settings by endpoint origin (`https://10.0.0.5:8443`), `*` for every https endpoint. */
export type UpstreamTls = Record<string, EndpointTls>;

/** The TLS options (as `tls.connect` names them) for an origin: its own settings over `*`'s. */
export function tlsOptionsFor(settings: UpstreamTls, origin: string) {
  if (!origin.startsWith('https:')) return {};
  const tls = { ...settings['*'], ...settings[origin] };
  return {
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.serverName ? { servername: tls.serverName } : {}),
    ...(tls.cert ? { cert: tls.cert } : {}),
    ...(tls.key ? { key: tls.key } : {}),
  };
}

/** An undici Agent whose pool for each origin connects with that endpoint's TLS settings. */
export function tlsAgent(settings: UpstreamTls, options: Agent.Options = {}): Agent {
  const connect = options.connect && typeof options.connect === 'object' ? options.connect : {};
  return new Agent({
    ...options,
    factory: (origin, poolOptions) =>
      new Pool(origin, {
        ...poolOptions,
        connect: { ...connect, ...tlsOptionsFor(settings, new URL(String(origin)).origin) },
      }),
  });
}
