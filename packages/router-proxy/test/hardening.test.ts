import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProxyConfigSchema } from '../src/config.js';
import { checkRequestHead } from '../src/http/guard.js';
import type { GraylaneProxy } from '../src/index.js';
import { createAdminHandler, isLoopbackAddress } from '../src/listeners/admin.js';
import { send, startProxy, startUpstream, table, type Upstream } from './helpers.js';
import { collect, rawConnect, rawExchange } from './raw-socket.js';

const TEST_TIMEOUT = 10_000;

function backendTable(upstream: Upstream) {
  return table({
    revision: 1,
    services: { backend: { stable: { endpoints: [upstream.url] } } },
    entrypoints: [{ name: 'all', service: 'backend' }],
  });
}

/** A head with the given header lines after `Host`, each `name: value`. */
function head(lines: string[], requestLine = 'GET /x HTTP/1.1', host = 'backend'): string {
  return [requestLine, `Host: ${host}`, ...lines, '', ''].join('\r\n');
}

describe('hardening: request heads', () => {
  let proxy: GraylaneProxy;
  let upstream: Upstream;
  const received: string[][] = [];
  let gateway: number;
  let outbound: number;

  beforeAll(async () => {
    upstream = await startUpstream('backend-v1', (req: IncomingMessage, res) => {
      received.push(req.rawHeaders);
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'x-upstream': 'backend-v1' });
        res.end('ok');
      });
    });
    proxy = await startProxy({ initialTable: backendTable(upstream) });
    gateway = proxy.address('gateway')!.port;
    outbound = proxy.address('outbound')!.port;
  });

  afterAll(async () => {
    await proxy.close();
    await upstream.close();
  });

  /** Sends a head that must be refused: the answer's status and code, the close, no forwarding. */
  async function expectRefused(port: number, bytes: string, status: number, code: string) {
    const before = received.length;
    const reply = await rawExchange(port, bytes, { timeoutMs: 3_000 });
    expect(reply.status, reply.text).toBe(status);
    expect(reply.headers['x-graylane-error']).toBe(code);
    expect(reply.headers.connection).toBe('close');
    expect(reply.closed).toBe(true);
    expect(received.length).toBe(before);
  }

  const malformed = (port: number, bytes: string) =>
    expectRefused(port, bytes, 400, 'GRAYLANE_ERR_MALFORMED_REQUEST');
  const tooLarge = (port: number, bytes: string) =>
    expectRefused(port, bytes, 431, 'GRAYLANE_ERR_HEADERS_TOO_LARGE');

  it('forwards a well-formed head sent over a raw socket', async () => {
    const reply = await rawExchange(gateway, head(['Connection: close']));
    expect(reply.status).toBe(200);
    expect(reply.headers['x-upstream']).toBe('backend-v1');
  });

  it(
    '431 for a header block over 60 KiB that Node itself would accept',
    async () => {
      await tooLarge(gateway, head([`X-Big: ${'a'.repeat(61 * 1024)}`]));
    },
    TEST_TIMEOUT,
  );

  it('431 with the same code past Node’s own limit (HPE_HEADER_OVERFLOW)', async () => {
    await tooLarge(gateway, head([`X-Big: ${'a'.repeat(80 * 1024)}`]));
  });

  it('431 for 101 header lines; 100 pass', async () => {
    const lines = (n: number) => Array.from({ length: n }, (_, i) => `X-H${i}: v`);
    await tooLarge(gateway, head(lines(100)));
    const reply = await rawExchange(gateway, head([...lines(98), 'Connection: close']));
    expect(reply.status).toBe(200);
  });

  it('431 for more header lines than Node keeps (its maxHeadersCount, 2000)', async () => {
    await tooLarge(gateway, head(Array.from({ length: 2500 }, (_, i) => `X-H${i}: v`)));
  });

  it('400 for Content-Length together with Transfer-Encoding', async () => {
    await malformed(
      gateway,
      `${head(['Content-Length: 5', 'Transfer-Encoding: chunked'], 'POST /x HTTP/1.1')}0\r\n\r\n`,
    );
  });

  it('400 for Transfer-Encoding whose last coding is not chunked', async () => {
    await malformed(gateway, head(['Transfer-Encoding: chunked, identity'], 'POST /x HTTP/1.1'));
  });

  it('400 for Transfer-Encoding split over two lines ending in identity', async () => {
    await malformed(
      gateway,
      head(['Transfer-Encoding: chunked', 'Transfer-Encoding: identity'], 'POST /x HTTP/1.1'),
    );
  });

  it('400 for Transfer-Encoding in an HTTP/1.0 request', async () => {
    await malformed(
      gateway,
      `${head(['Transfer-Encoding: chunked'], 'POST /x HTTP/1.0')}0\r\n\r\n`,
    );
  });

  it('501 for a transfer coding before chunked (gzip, chunked)', async () => {
    await expectRefused(
      gateway,
      `${head(['Transfer-Encoding: gzip, chunked'], 'POST /x HTTP/1.1')}0\r\n\r\n`,
      501,
      'GRAYLANE_ERR_TRANSFER_CODING',
    );
  });

  it('400 for two differing Content-Length headers', async () => {
    await malformed(
      gateway,
      `${head(['Content-Length: 1', 'Content-Length: 2'], 'POST /x HTTP/1.1')}ab`,
    );
  });

  it.each(['+1', '0x1', '1, 1', '-1', '1.0'])('400 for Content-Length %j', async (value) => {
    await malformed(gateway, `${head([`Content-Length: ${value}`], 'POST /x HTTP/1.1')}a`);
  });

  it('400 for an obs-fold line (starting with a space)', async () => {
    await malformed(gateway, head(['X-A: b', ' folded']));
  });

  it('400 for an obs-fold line (starting with a tab)', async () => {
    await malformed(gateway, head(['X-A: b', '\tfolded']));
  });

  it('400 for a bare CR inside a header value', async () => {
    await malformed(gateway, head(['X-A: b\rc']));
  });

  it('400 for a bare CR ending a line', async () => {
    await malformed(gateway, 'GET /x HTTP/1.1\rHost: backend\r\n\r\n');
  });

  it('400 for a NUL in a header value', async () => {
    await malformed(gateway, head(['X-A: b\0c']));
  });

  it('400 for a repeated Host (which Node would pass, keeping the first)', async () => {
    await malformed(gateway, head(['Host: elsewhere']));
  });

  it('400 for an HTTP/1.1 request without Host', async () => {
    await malformed(gateway, 'GET /x HTTP/1.1\r\nX-A: b\r\n\r\n');
  });

  it('400 for a Host that is not an authority', async () => {
    await malformed(gateway, head([], 'GET /x HTTP/1.1', 'a/b@c'));
  });

  it('outbound: the same guard (repeated Host, CL with TE, too many lines)', async () => {
    await malformed(outbound, head(['Host: elsewhere']));
    await malformed(
      outbound,
      `${head(['Content-Length: 5', 'Transfer-Encoding: chunked'], 'POST /x HTTP/1.1')}0\r\n\r\n`,
    );
    await tooLarge(outbound, head(Array.from({ length: 101 }, (_, i) => `X-H${i}: v`)));
  });

  it('outbound: CONNECT with a repeated Host is refused before any tunnel', async () => {
    await malformed(
      outbound,
      'CONNECT backend:80 HTTP/1.1\r\nHost: backend:80\r\nHost: other:80\r\n\r\n',
    );
  });

  it('400 for an upgrade request that announces a body (it would be read as the tunnel)', async () => {
    await malformed(
      gateway,
      `${head(['Connection: upgrade', 'Upgrade: websocket', 'Content-Length: 3'])}abc`,
    );
  });

  it('outbound: a CONNECT refusal carries a code too', async () => {
    await expectRefused(
      outbound,
      'CONNECT nowhere HTTP/1.1\r\nHost: nowhere\r\n\r\n',
      400,
      'GRAYLANE_ERR_BAD_REQUEST',
    );
  });

  it('outbound: a well-formed request is still forwarded', async () => {
    const reply = await rawExchange(outbound, head(['Connection: close']));
    expect(reply.status).toBe(200);
    expect(reply.headers['x-upstream']).toBe('backend-v1');
  });

  it('inbound: the same guard in front of the app', async () => {
    const sidecar = await startProxy({
      inbound: { host: '127.0.0.1', port: 0 },
      inboundApp: { target: upstream.url, service: 'backend' },
    });
    try {
      const port = sidecar.address('inbound')!.port;
      await malformed(port, head(['Host: elsewhere']));
      await malformed(port, head(['Transfer-Encoding: chunked, identity'], 'POST /x HTTP/1.1'));
      const reply = await rawExchange(port, head(['Connection: close']));
      expect(reply.status).toBe(200);
    } finally {
      await sidecar.close();
    }
  });

  it('the limits are config-file settings with defaults', () => {
    expect(ProxyConfigSchema.parse({}).server).toMatchObject({
      maxConnections: 10_000,
      maxHeaderBytes: 60 * 1024,
      maxHeaderCount: 100,
    });
    const server = ProxyConfigSchema.parse({ server: { maxConnections: 5 } }).server;
    expect(server).toMatchObject({ maxConnections: 5, headersTimeoutMs: 10_000 });
  });

  it('the guard is one reusable function of the request head', () => {
    const ok = { method: 'GET', url: '/', httpVersion: '1.1', rawHeaders: ['Host', 'a'] };
    expect(checkRequestHead(ok)).toBeUndefined();
    expect(checkRequestHead({ ...ok, rawHeaders: ['Host', 'a', 'HOST', 'b'] })?.code).toBe(
      'GRAYLANE_ERR_MALFORMED_REQUEST',
    );
    expect(
      checkRequestHead(
        { ...ok, rawHeaders: ['Host', 'a', 'x', 'y'.repeat(200)] },
        { maxHeaderBytes: 100, maxHeaderCount: 10 },
      )?.status,
    ).toBe(431);
  });

  it('counts the head in bytes as sent, and knows the framing headers in any case', () => {
    const ok = { method: 'GET', url: '/', httpVersion: '1.1', rawHeaders: ['Host', 'a'] };
    // "GET / HTTP/1.1\r\n" (16) + "Host: a\r\n" (9) + "\r\n" (2)
    const size = 27;
    const limits = (maxHeaderBytes: number) => ({ maxHeaderBytes, maxHeaderCount: 10 });
    expect(checkRequestHead(ok, limits(size))).toBeUndefined();
    expect(checkRequestHead(ok, limits(size - 1))?.status).toBe(431);
    const framed = (...rawHeaders: string[]) =>
      checkRequestHead({ ...ok, method: 'POST', rawHeaders: ['hOsT', 'a', ...rawHeaders] });
    expect(framed('CONTENT-LENGTH', '1', 'Transfer-encoding', 'chunked')?.reason).toBe(
      'Content-Length and Transfer-Encoding together',
    );
    expect(framed('content-length', '1', 'Content-Length', '2')?.reason).toBe(
      'differing Content-Length values',
    );
    expect(framed('TRANSFER-ENCODING', 'gzip')?.reason).toBe(
      'Transfer-Encoding does not end with chunked',
    );
    expect(framed('x-host', 'not an authority')).toBeUndefined();
    expect(framed('HOST', 'b')?.reason).toBe('Host repeated');
    expect(checkRequestHead({ ...ok, rawHeaders: ['HoSt', 'a b'] })?.reason).toBe('invalid Host');
    expect(checkRequestHead({ ...ok, rawHeaders: ['Host', 'a', 'bad name', 'x'] })?.reason).toBe(
      'invalid header name',
    );
    expect(checkRequestHead({ ...ok, rawHeaders: ['Host', 'a', 'nämlich', 'x'] })?.reason).toBe(
      'invalid header name',
    );
  });
});

describe('hardening: connections', () => {
  let upstream: Upstream;

  beforeAll(async () => {
    upstream = await startUpstream('backend-v1');
  });

  afterAll(async () => {
    await upstream.close();
  });

  it(
    'closes a slowloris client that dribbles its head past the headers timeout',
    async () => {
      const proxy = await startProxy({
        initialTable: backendTable(upstream),
        server: { headersTimeoutMs: 1_000, keepAliveTimeoutMs: 5_000 },
      });
      try {
        const socket = await rawConnect(proxy.address('gateway')!.port);
        const started = Date.now();
        const reply = collect(socket, 5_000, started);
        socket.write('GET /x HTTP/1.1\r\nHost: backend\r\nX-Slow: ');
        const dribble = setInterval(() => {
          if (!socket.destroyed) socket.write('a');
        }, 200);
        const result = await reply;
        clearInterval(dribble);
        expect(result.closed).toBe(true);
        expect(result.elapsedMs).toBeGreaterThanOrEqual(900);
        expect(result.elapsedMs).toBeLessThan(3_000);
        expect(result.status).toBe(408);
        expect(result.headers['x-graylane-error']).toBe('GRAYLANE_ERR_REQUEST_TIMEOUT');
      } finally {
        await proxy.close();
      }
    },
    TEST_TIMEOUT,
  );

  it(
    'closes an idle keep-alive connection after the keep-alive timeout',
    async () => {
      const proxy = await startProxy({
        initialTable: backendTable(upstream),
        server: { headersTimeoutMs: 5_000, keepAliveTimeoutMs: 500 },
      });
      try {
        const reply = await rawExchange(proxy.address('gateway')!.port, head([]), {
          timeoutMs: 5_000,
        });
        expect(reply.status).toBe(200);
        expect(reply.closed).toBe(true);
        expect(reply.elapsedMs).toBeGreaterThanOrEqual(400);
        expect(reply.elapsedMs).toBeLessThan(3_000);
      } finally {
        await proxy.close();
      }
    },
    TEST_TIMEOUT,
  );

  it(
    'answers a connection past maxConnections with 503 and closes it; a slot frees on close',
    async () => {
      const proxy = await startProxy({
        initialTable: backendTable(upstream),
        server: { headersTimeoutMs: 5_000, keepAliveTimeoutMs: 5_000, maxConnections: 2 },
      });
      const port = proxy.address('gateway')!.port;
      try {
        // Two kept-alive connections, each proven accepted by a served request.
        const held = await Promise.all([rawConnect(port), rawConnect(port)]);
        for (const socket of held) {
          const answered = new Promise<string>((resolve) =>
            socket.once('data', (d: Buffer) => resolve(d.toString())),
          );
          socket.write(head([]));
          expect(await answered).toMatch(/^HTTP\/1\.1 200/);
        }
        const refused = await rawExchange(port, head([]));
        expect(refused.status).toBe(503);
        expect(refused.headers['x-graylane-error']).toBe('GRAYLANE_ERR_OVERLOADED');
        expect(refused.closed).toBe(true);

        held[0]!.destroy();
        let status: number | undefined;
        for (let i = 0; i < 40 && status !== 200; i++) {
          await sleep(25);
          status = (await rawExchange(port, head(['Connection: close']))).status;
        }
        expect(status).toBe(200);
        held[1]!.destroy();
      } finally {
        await proxy.close();
      }
    },
    TEST_TIMEOUT,
  );
});

describe('hardening: admin listener', () => {
  it('treats only loopback addresses as local', () => {
    for (const address of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) {
      expect(isLoopbackAddress(address), address).toBe(true);
    }
    for (const address of ['10.0.0.1', '192.0.2.2', '::ffff:10.0.0.1', 'fd00::2', '', undefined]) {
      expect(isLoopbackAddress(address), String(address)).toBe(false);
    }
  });

  /**
   * The admin handler itself, given a request that says it came from 192.0.2.2. No traffic leaves
   * loopback: tests here never connect to a non-loopback address, even the machine's own.
   */
  it('refuses a client from a non-loopback address, unless adminAllowRemote', async () => {
    const proxy = await startProxy({});
    try {
      for (const allowRemote of [false, true]) {
        const handler = createAdminHandler(proxy.runtime, { allowRemote, isDraining: () => false });
        let status = 0;
        const res = {
          writeHead(code: number) {
            status = code;
            return res;
          },
          end() {},
        };
        const req = { method: 'GET', url: '/healthz', socket: { remoteAddress: '192.0.2.2' } };
        handler(req as unknown as IncomingMessage, res as unknown as ServerResponse);
        expect(status).toBe(allowRemote ? 200 : 403);
      }
      expect((await send(`${proxy.url('admin')}/healthz`)).status).toBe(200);
    } finally {
      await proxy.close();
    }
  });
});
