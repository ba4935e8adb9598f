import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import type { GraylaneProxy } from '../src/index.js';
import { metricValue, startProxy, startUpstream, table, type Upstream } from './helpers.js';

interface LaneServer {
  url: string;
  server: WebSocketServer;
  /** The handshake requests it received. */
  handshakes: IncomingMessage['headers'][];
}

/** A WebSocket server that greets with its name and echoes every message with its name in front. */
async function startWsServer(name: string): Promise<LaneServer> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const handshakes: LaneServer['handshakes'] = [];
  server.on('connection', (socket, req) => {
    handshakes.push(req.headers);
    socket.send(`${name}:welcome`);
    socket.on('message', (data, isBinary) => {
      socket.send(isBinary ? data : `${name}:${data.toString()}`, { binary: isBinary });
    });
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, server, handshakes };
}

/** Messages in arrival order; `next()` waits for the next one (bounded). */
function inbox(socket: WebSocket) {
  const queue: RawData[] = [];
  const waiting: Array<(data: RawData) => void> = [];
  socket.on('message', (data) => {
    const waiter = waiting.shift();
    if (waiter) waiter(data);
    else queue.push(data);
  });
  return {
    next: (timeoutMs = 3_000) =>
      new Promise<RawData>((resolve, reject) => {
        const queued = queue.shift();
        if (queued) return resolve(queued);
        const timer = setTimeout(() => reject(new Error('no message')), timeoutMs);
        waiting.push((data) => {
          clearTimeout(timer);
          resolve(data);
        });
      }),
  };
}

interface Opened {
  socket: WebSocket;
  response: IncomingMessage;
  messages: ReturnType<typeof inbox>;
}

/** Opens a WebSocket through the proxy; resolves with the 101 response, rejects on anything else. */
async function open(url: string, headers: Record<string, string> = {}): Promise<Opened> {
  const socket = new WebSocket(url, { headers, handshakeTimeout: 3_000 });
  const messages = inbox(socket);
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    socket.once('upgrade', resolve);
    socket.once('unexpected-response', (_req, res: IncomingMessage) => {
      const error = Object.assign(new Error(`status ${res.statusCode}`), { response: res });
      res.resume();
      reject(error);
    });
    socket.once('error', reject);
  });
  if (socket.readyState !== WebSocket.OPEN) await once(socket, 'open');
  return { socket, response, messages };
}

/** The response of a handshake the proxy (or the endpoint) refused. */
async function refused(url: string, headers: Record<string, string> = {}) {
  try {
    const opened = await open(url, headers);
    opened.socket.terminate();
    throw new Error('the handshake succeeded');
  } catch (error) {
    const response = (error as { response?: IncomingMessage }).response;
    if (!response) throw error;
    return response;
  }
}

async function closeSocket(socket: WebSocket) {
  if (socket.readyState === WebSocket.CLOSED) return;
  const closed = once(socket, 'close');
  socket.close();
  await closed;
}

const wsUrl = (httpUrl: string, path = '/') => `${httpUrl.replace(/^http/, 'ws')}${path}`;

describe('WebSocket (Upgrade) through the gateway and the outbound listener', () => {
  let stable: LaneServer;
  let gray: LaneServer;
  let plain: Upstream;
  let proxy: GraylaneProxy;

  beforeAll(async () => {
    stable = await startWsServer('stable');
    gray = await startWsServer('gray');
    plain = await startUpstream('plain');
    proxy = await startProxy({
      initialTable: table({
        revision: 1,
        services: {
          chat: {
            stable: { version: 'v1', endpoints: [stable.url] },
            lanes: { gray: { version: 'v2', endpoints: [gray.url] } },
          },
          plain: { stable: { endpoints: [plain.url] } },
          dead: { stable: { endpoints: ['http://127.0.0.1:1'] } },
        },
        entrypoints: [
          { name: 'plain', match: { pathPrefix: '/plain' }, service: 'plain' },
          { name: 'dead', match: { pathPrefix: '/dead' }, service: 'dead' },
          { name: 'chat', service: 'chat', clientLanes: 'known' },
        ],
      }),
    });
  });

  afterAll(async () => {
    await proxy.close();
    await Promise.all([
      ...[stable, gray].map(
        (s) =>
          new Promise<void>((resolve) => {
            for (const client of s.server.clients) client.terminate();
            s.server.close(() => resolve());
          }),
      ),
      plain.close(),
    ]);
  });

  it('takes a gray-tagged client to the gray server and echoes both ways', async () => {
    const { socket, response, messages } = await open(wsUrl(proxy.url('gateway'), '/room'), {
      'x-lane': 'gray',
    });
    try {
      expect(response.headers['x-lane-served']).toBe('chat=gray');
      expect((await messages.next()).toString()).toBe('gray:welcome');
      socket.send('hello');
      expect((await messages.next()).toString()).toBe('gray:hello');
      socket.send('again');
      expect((await messages.next()).toString()).toBe('gray:again');
      const handshake = gray.handshakes.at(-1)!;
      expect(handshake['x-lane']).toBe('gray');
      expect(handshake.baggage).toBe('lane=gray');
      expect(handshake.via).toMatch(/^1\.1 graylane-/);
      expect(handshake['x-forwarded-for']).toBe('127.0.0.1');
      expect(handshake['x-forwarded-proto']).toBe('http');
      expect(handshake.upgrade).toBe('websocket');
    } finally {
      await closeSocket(socket);
    }
  });

  it('keeps an untagged client on stable', async () => {
    const { socket, response, messages } = await open(wsUrl(proxy.url('gateway'), '/room'));
    try {
      expect(response.headers['x-lane-served']).toBe('chat=stable');
      expect((await messages.next()).toString()).toBe('stable:welcome');
      socket.send('hi');
      expect((await messages.next()).toString()).toBe('stable:hi');
      expect(stable.handshakes.at(-1)!['x-lane']).toBeUndefined();
    } finally {
      await closeSocket(socket);
    }
  });

  it('carries large binary messages intact both ways', async () => {
    const { socket, messages } = await open(wsUrl(proxy.url('gateway')), { 'x-lane': 'gray' });
    try {
      await messages.next();
      const payload = Buffer.alloc(1024 * 1024);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) % 251;
      socket.send(payload);
      const echoed = (await messages.next()) as Buffer;
      expect(Buffer.compare(echoed, payload)).toBe(0);
    } finally {
      await closeSocket(socket);
    }
  });

  it('routes by lane through the outbound listener with Host: service', async () => {
    const url = wsUrl(proxy.url('outbound'), '/room');
    const grayed = await open(url, { host: 'chat', 'x-lane': 'gray' });
    const untagged = await open(url, { host: 'chat' });
    try {
      expect(grayed.response.headers['x-lane-served']).toBe('chat=gray');
      expect((await grayed.messages.next()).toString()).toBe('gray:welcome');
      grayed.socket.send('out');
      expect((await grayed.messages.next()).toString()).toBe('gray:out');
      expect(gray.handshakes.at(-1)!.host).toBe('chat');
      expect((await untagged.messages.next()).toString()).toBe('stable:welcome');
    } finally {
      await Promise.all([closeSocket(grayed.socket), closeSocket(untagged.socket)]);
    }
  });

  it('counts the handshake by listener, service, lane, version and code', async () => {
    const labels = { listener: 'gateway', service: 'chat', lane: 'gray', version: 'v2' };
    const before = await metricValue(proxy, 'graylane_requests_total', { ...labels, code: '101' });
    const { socket } = await open(wsUrl(proxy.url('gateway')), { 'x-lane': 'gray' });
    await closeSocket(socket);
    const after = await metricValue(proxy, 'graylane_requests_total', { ...labels, code: '101' });
    expect(after - before).toBe(1);
  });

  it('answers a raw 502 with a code when the endpoint cannot be reached', async () => {
    const res = await refused(wsUrl(proxy.url('gateway'), '/dead'));
    expect(res.statusCode).toBe(502);
    expect(res.headers['x-graylane-error']).toBe('GRAYLANE_ERR_UPSTREAM');
    expect(res.headers['x-lane-served']).toBe('dead=stable');
  });

  it('relays an endpoint that declines the upgrade, then closes', async () => {
    const res = await refused(wsUrl(proxy.url('gateway'), '/plain'));
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-lane-served']).toBe('plain=stable');
    expect(res.headers.connection).toBe('close');
  });

  it('refuses with 404 when no entrypoint matches, as for a plain request', async () => {
    const only = await startProxy({
      initialTable: table({
        revision: 1,
        services: { chat: { stable: { endpoints: [stable.url] } } },
        entrypoints: [{ name: 'chat', match: { pathPrefix: '/chat' }, service: 'chat' }],
      }),
    });
    try {
      const res = await refused(wsUrl(only.url('gateway'), '/other'));
      expect(res.statusCode).toBe(404);
      expect(res.headers['x-graylane-error']).toBe('GRAYLANE_ERR_NO_ENTRYPOINT');
    } finally {
      await only.close();
    }
  });

  it('tunnels through the inbound listener to the app, the tag normalised', async () => {
    const sidecar = await startProxy({
      gateway: undefined,
      outbound: undefined,
      inbound: { host: '127.0.0.1', port: 0 },
      inboundApp: { target: gray.url, service: 'chat', version: 'v2', lane: 'gray' },
    });
    try {
      const { socket, response, messages } = await open(wsUrl(sidecar.url('inbound'), '/room'), {
        baggage: 'lane=gray',
      });
      expect(response.headers['x-lane-served']).toBe('chat=gray');
      expect((await messages.next()).toString()).toBe('gray:welcome');
      socket.send('in');
      expect((await messages.next()).toString()).toBe('gray:in');
      expect(gray.handshakes.at(-1)!['x-lane']).toBe('gray');
      await closeSocket(socket);
      const labels = { listener: 'inbound', service: 'chat', lane: 'gray', code: '101' };
      expect(await metricValue(sidecar, 'graylane_requests_total', labels)).toBe(1);
    } finally {
      await sidecar.close();
    }
  });

  it("keeps an idle tunnel open past the listener's header and keep-alive timeouts", async () => {
    const strict = await startProxy({
      initialTable: table({
        revision: 1,
        services: { chat: { stable: { endpoints: [stable.url] } } },
        entrypoints: [{ name: 'chat', service: 'chat' }],
      }),
      server: { headersTimeoutMs: 200, keepAliveTimeoutMs: 200 },
    });
    try {
      const { socket, messages } = await open(wsUrl(strict.url('gateway')));
      await messages.next();
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(socket.readyState).toBe(WebSocket.OPEN);
      socket.send('still here');
      expect((await messages.next()).toString()).toBe('stable:still here');
      await closeSocket(socket);
    } finally {
      await strict.close();
    }
  });

  it('cuts open tunnels when the proxy stops', async () => {
    const stopping = await startProxy({
      initialTable: table({
        revision: 1,
        services: { chat: { stable: { endpoints: [stable.url] } } },
        entrypoints: [{ name: 'chat', service: 'chat' }],
      }),
      drainTimeoutMs: 200,
    });
    const { socket, messages } = await open(wsUrl(stopping.url('gateway')));
    await messages.next();
    const closed = once(socket, 'close');
    const started = Date.now();
    await stopping.close();
    await closed;
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
