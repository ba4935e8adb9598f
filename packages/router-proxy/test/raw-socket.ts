import { connect, type Socket } from 'node:net';

/** What came back on a raw connection: the final (non-1xx) response head, and whether it closed. */
export interface RawReply {
  /** Everything received, latin1-decoded. */
  text: string;
  /** The status of the first final response, or undefined if none arrived. */
  status: number | undefined;
  /** Its headers, names lower-cased (the last one wins). */
  headers: Record<string, string>;
  /** The proxy closed the connection before the timeout. */
  closed: boolean;
  /** Milliseconds from the first byte written to the close (or to the timeout). */
  elapsedMs: number;
}

export function parseReply(text: string): Pick<RawReply, 'status' | 'headers'> {
  // Skip interim responses (100 Continue) to the final one.
  const heads = text.split('\r\n\r\n');
  for (const head of heads) {
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(head);
    if (!match) continue;
    const status = Number(match[1]);
    if (status >= 100 && status < 200) continue;
    const headers: Record<string, string> = {};
    for (const line of head.split('\r\n').slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0)
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    return { status, headers };
  }
  return { status: undefined, headers: {} };
}

export function rawConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * Collects what arrives on `socket` until the peer closes it or `timeoutMs` passes (then the socket is
 * destroyed and `closed` is false). A reset counts as a close.
 */
export function collect(
  socket: Socket,
  timeoutMs: number,
  started = Date.now(),
): Promise<RawReply> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ text, ...parseReply(text), closed, elapsedMs: Date.now() - started });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => finish(true));
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
  });
}

/** Writes `bytes` on a new connection and collects the answer (see `collect`). */
export async function rawExchange(
  port: number,
  bytes: string | Buffer,
  options: { timeoutMs?: number; endAfterWrite?: boolean } = {},
): Promise<RawReply> {
  const socket = await rawConnect(port);
  const started = Date.now();
  const reply = collect(socket, options.timeoutMs ?? 3_000, started);
  socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  if (options.endAfterWrite) socket.end();
  return reply;
}
