/** `HOST:PORT`, `:PORT` or `PORT` (host 127.0.0.1; `[::1]:PORT` for IPv6), as the listen flags take it. */
export function parseListen(value: string): { host: string; port: number } {
  const at = value.lastIndexOf(':');
  const host = at <= 0 ? '127.0.0.1' : value.slice(0, at).replace(/^\[|\]$/g, '');
  const port = Number(at === -1 ? value : value.slice(at + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`not HOST:PORT: ${value}`);
  return { host, port };
}
