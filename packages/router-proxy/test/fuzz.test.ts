import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GraylaneProxy } from '../src/index.js';
import { send, startProxy, startUpstream, table, type Upstream } from './helpers.js';
import { collect, type RawReply, rawConnect } from './raw-socket.js';

/**
 * Random request heads over raw sockets. Whatever arrives, the proxy keeps serving, answers with a 4xx
 * (or closes), or forwards a request whose head is well-formed at the upstream.
 */

const TEST_TIMEOUT = 10_000;

/** A request in parts; mutations change one part. Lines carry their own line ending. */
interface Head {
  method: string;
  target: string;
  version: string;
  lines: string[];
  body: string;
}

const serialize = (h: Head) =>
  `${h.method} ${h.target} ${h.version}\r\n${h.lines.join('')}\r\n${h.body}`;

const printable = fc.stringMatching(/^[!-~]([ -~]{0,18}[!-~])?$/);

const wellFormedLine = fc
  .tuple(
    fc.oneof(
      fc.constantFrom(
        'x-lane',
        'baggage',
        'Via',
        'X-Forwarded-For',
        'Accept',
        'User-Agent',
        'Cookie',
      ),
      fc.stringMatching(/^X-[A-Za-z0-9-]{1,10}$/),
    ),
    fc.oneof(fc.constantFrom('gray', 'lane=gray', 'a, b', '1.1 other'), printable),
  )
  .map(([name, value]) => `${name}: ${value}\r\n`);

const framing = fc.constantFrom(
  { lines: [], body: '' },
  { lines: ['Content-Length: 0\r\n'], body: '' },
  { lines: ['Content-Length: 3\r\n'], body: 'abc' },
  { lines: ['Transfer-Encoding: chunked\r\n'], body: '3\r\nabc\r\n0\r\n\r\n' },
);

const wellFormed: fc.Arbitrary<Head> = fc
  .record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
    target: fc.constantFrom('/', '/x?y=1', '/a/b', '/a%20b', '/x/../y'),
    headers: fc.array(wellFormedLine, { maxLength: 5 }),
    framing,
    close: fc.boolean(),
  })
  .map(({ method, target, headers, framing, close }) => ({
    method,
    target,
    version: 'HTTP/1.1',
    lines: [
      'Host: backend\r\n',
      ...headers,
      ...framing.lines,
      ...(close ? ['Connection: close\r\n'] : []),
    ],
    body: framing.body,
  }));

const oddChar = fc.constantFrom(
  'a',
  'Z',
  '-',
  ' ',
  '\t',
  '\r',
  '\n',
  '\0',
  ':',
  '\x01',
  '\x7f',
  'é',
);
const odd = fc.string({ unit: oddChar, minLength: 1, maxLength: 12 });

/** Header lines that are wrong, or that request smuggling is made of. */
const oddLine = fc.oneof(
  fc.constantFrom(
    'Content-Length: 3\r\nContent-Length: 3\r\n',
    'Content-Length: 3\r\nContent-Length: 4\r\n',
    'Content-Length: 3\r\nTransfer-Encoding: chunked\r\n',
    'Transfer-Encoding: chunked\r\nContent-Length: 3\r\n',
    'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n',
    'Transfer-Encoding: chunked, identity\r\n',
    'Transfer-Encoding: gzip, chunked\r\n',
    'Transfer-Encoding: identity\r\n',
    'Transfer-Encoding : chunked\r\n',
    'Transfer-Encoding:\tchunked\r\n',
    ' Transfer-Encoding: chunked\r\n',
    'Content-Length: +3\r\n',
    'Content-Length: 0x3\r\n',
    'Content-Length: 3, 3\r\n',
    'Content-Length: -1\r\n',
    'Host: elsewhere\r\n',
    'Expect: 100-continue\r\n',
    'Connection: upgrade\r\nUpgrade: websocket\r\n',
    `X-Big: ${'v'.repeat(61 * 1024)}\r\n`,
    `X-Big: ${'v'.repeat(70 * 1024)}\r\n`,
    'X-N: v\r\n'.repeat(120),
  ),
  fc.tuple(odd, fc.constantFrom(': ', ':', ' : '), printable).map((p) => `${p.join('')}\r\n`),
  fc
    .tuple(
      printable.filter((v) => !v.includes(':')),
      odd,
    )
    .map(([n, v]) => `${n}: ${v}\r\n`),
);

type Mutation = (h: Head) => Head;

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc
    .oneof(fc.constantFrom('get', 'G ET', '', 'GET\0', 'PO\rST', 'HEAD', 'CONNECT'), odd)
    .map((method) => (h: Head) => ({ ...h, method })),
  fc
    .oneof(fc.constantFrom('*', '//', 'http://backend/x', 'backend:80', '/a b', '/#f'), odd)
    .map((target) => (h: Head) => ({ ...h, target })),
  fc
    .constantFrom('HTTP/1.0', 'HTTP/2.0', 'http/1.1', 'HTTP/1.1 ', 'HTTP/1.', 'HTTP/1.10')
    .map((version) => (h: Head) => ({ ...h, version })),
  oddLine.map((line) => (h: Head) => ({ ...h, lines: [...h.lines, line] })),
  fc
    .tuple(fc.nat(), fc.constantFrom('\n', '\r', '\r\n ', '\r\n\t', '\n\r', '\r\r\n'))
    .map(([at, end]) => (h: Head) => {
      const lines = [...h.lines];
      if (lines.length === 0) return h;
      const i = at % lines.length;
      lines[i] = `${lines[i]!.slice(0, -2)}${end}`;
      return { ...h, lines };
    }),
  fc.constant((h: Head) => ({ ...h, lines: h.lines.filter((l) => !l.startsWith('Host:')) })),
  fc
    .constantFrom(
      '',
      'abc',
      'abcdef',
      '0\r\n\r\n',
      'GET /smuggled HTTP/1.1\r\nHost: backend\r\n\r\n',
    )
    .map((body) => (h: Head) => ({ ...h, body })),
);

const request: fc.Arbitrary<Head> = fc
  .tuple(
    wellFormed,
    fc.oneof(
      { weight: 2, arbitrary: fc.constant([] as Mutation[]) },
      { weight: 3, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 2 }) },
    ),
  )
  .map(([head, mutations]) => mutations.reduce((h, mutate) => mutate(h), head));

const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: backend\r\n\r\n';

/**
 * Heads that every run sends, whatever the generator draws: oversized ones and the shapes request
 * smuggling is made of, each with a second request hidden where a desynchronised parser would see it.
 */
const base = (lines: string[], body = '', method = 'POST'): Head => ({
  method,
  target: '/must-run',
  version: 'HTTP/1.1',
  lines: ['Host: backend\r\n', ...lines],
  body,
});
const mustRun: Head[] = [
  base([`X-Big: ${'v'.repeat(70 * 1024)}\r\n`], '', 'GET'),
  base(['X-N: v\r\n'.repeat(120)], '', 'GET'),
  base(['Content-Length: 3\r\n', 'Transfer-Encoding: chunked\r\n'], `0\r\n\r\n${SMUGGLED}`),
  base(['Transfer-Encoding: chunked\r\n', 'Content-Length: 3\r\n'], `0\r\n\r\n${SMUGGLED}`),
  base(['Content-Length: 3\r\n', 'Content-Length: 48\r\n'], `abc${SMUGGLED}`),
  base(['Transfer-Encoding: gzip, chunked\r\n'], `0\r\n\r\n${SMUGGLED}`),
  base(['Transfer-Encoding : chunked\r\n', 'Content-Length: 5\r\n'], `0\r\n\r\n${SMUGGLED}`),
  base(['Transfer-Encoding:\tchunked\r\n'], `0\r\n\r\n${SMUGGLED}`),
  base(['Transfer-Encoding: chunked\r\n'], `3\r\nabc\r\n0\r\n\r\n${SMUGGLED}`),
  base(['Host: elsewhere\r\n', 'Content-Length: 0\r\n'], SMUGGLED, 'GET'),
  base(['Content-Length: 0\r\n'], SMUGGLED, 'GET'),
  // A body that is itself a request: forwarded as anything but a body, it would be a second one.
  base([`Content-Length: ${SMUGGLED.length}\r\n`], SMUGGLED),
  base(
    ['Transfer-Encoding: chunked\r\n'],
    `${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`,
  ),
];

/** Marks a head with the exchange it belongs to, as its first header line, out of reach of mutations. */
const FUZZ_ID = 'x-fuzz-id';
const withId = (h: Head, id: number): Head => ({
  ...h,
  lines: [`X-Fuzz-Id: ${id}\r\n`, ...h.lines],
});

/** The seed of this run: FUZZ_SEED=<n> replays a failed one. */
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));

/**
 * Writes a head; once an answer has begun (or none came quickly: a body the head promised and never
 * sent), ends our side, so that every exchange finishes with the proxy closing the connection.
 */
async function exchange(port: number, bytes: string): Promise<RawReply> {
  const socket = await rawConnect(port);
  const reply = collect(socket, 2_000);
  socket.write(Buffer.from(bytes, 'latin1'));
  await Promise.race([once(socket, 'data').catch(() => {}), once(socket, 'close'), sleep(100)]);
  await sleep(5);
  socket.end();
  return reply;
}

function isToken(name: string): boolean {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name);
}

/** Every head the upstream saw: well-formed names and values, one way to frame the body. */
function expectWellFormed(received: readonly string[][]): void {
  for (const raw of received) {
    const names: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const value = raw[i + 1]!;
      expect(isToken(name), JSON.stringify(name)).toBe(true);
      expect(/[\r\n\0]/.test(value), JSON.stringify(value)).toBe(false);
      names.push(name.toLowerCase());
    }
    const count = (name: string) => names.filter((n) => n === name).length;
    expect(count('content-length'), raw.join('|')).toBeLessThanOrEqual(1);
    expect(count('content-length') > 0 && count('transfer-encoding') > 0, raw.join('|')).toBe(
      false,
    );
    expect(count('host'), raw.join('|')).toBeLessThanOrEqual(1);
  }
}

describe('fuzz: request heads over raw sockets', () => {
  let proxy: GraylaneProxy;
  let upstream: Upstream;
  const received: string[][] = [];
  const upstreamParseErrors: string[] = [];
  let nextId = 0;

  beforeAll(async () => {
    upstream = await startUpstream('backend-v1', (req, res) => {
      received.push(req.rawHeaders);
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'x-upstream': 'backend-v1' });
        res.end('ok');
      });
      req.on('error', () => res.destroy());
    });
    upstream.server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
      // A request the proxy cut short (its client went away mid-body) is not a malformed one.
      if (!['ECONNRESET', 'HPE_INVALID_EOF_STATE'].includes(error.code ?? '')) {
        upstreamParseErrors.push(error.code ?? String(error));
      }
      socket.destroy();
    });
    proxy = await startProxy({
      initialTable: table({
        revision: 1,
        services: { backend: { stable: { endpoints: [upstream.url] } } },
        entrypoints: [{ name: 'all', service: 'backend' }],
      }),
      // Nothing leaves the machine: a host that is not a service is refused, not passed through.
      runtime: { unknownHosts: 'refuse' },
    });
  });

  afterAll(async () => {
    await proxy.close();
    await upstream.close();
  });

  /** The answer is a forward, a 4xx, an unsupported coding, or (outbound) a refused outside host. */
  function expectAcceptable(reply: RawReply, listener: 'gateway' | 'outbound'): void {
    expect(reply.closed, `no close: ${JSON.stringify(reply.text.slice(0, 200))}`).toBe(true);
    if (reply.status === undefined) return;
    const code = reply.headers['x-graylane-error'];
    const what = `${reply.status} ${code}`;
    if (reply.status >= 200 && reply.status < 300) {
      expect(reply.headers['x-upstream'], what).toBe('backend-v1');
    } else if (reply.status === 501) {
      expect(code, what).toBe('GRAYLANE_ERR_TRANSFER_CODING');
    } else if (reply.status === 502 && listener === 'outbound') {
      expect(code, what).toBe('GRAYLANE_ERR_UNKNOWN_HOST');
    } else {
      expect(reply.status >= 400 && reply.status < 500, what).toBe(true);
    }
  }

  /** The path the upstream should see for a request target that was forwarded. */
  const forwardedPath = (target: string) => target.replace(/^http:\/\/[^/]*/, '') || '/';

  /**
   * What reached the upstream for one exchange: at most one request, carrying the exchange's id;
   * exactly one, with the head's method and target, when the client got a 2xx. (A refusal does not
   * mean nothing was forwarded: bytes after a complete head are the next request, and the 400 for
   * them may come first.) A request the upstream got with no id is a second request the client
   * itself pipelined (`/smuggled`), never bytes of a body, so it also carries the proxy's Via.
   */
  function expectForwarded(id: number, head: Head, reply: RawReply): void {
    const mine = upstream.requests.filter((r) => r.headers[FUZZ_ID] === String(id));
    const what = `exchange ${id}: ${reply.status} ${reply.headers['x-graylane-error'] ?? ''}`;
    expect(mine.length, what).toBeLessThanOrEqual(1);
    if (reply.status !== undefined && reply.status < 300) {
      expect(
        mine.map((r) => [r.method, r.url]),
        what,
      ).toEqual([[head.method, forwardedPath(head.target)]]);
    }
  }

  function expectNothingSmuggled(): void {
    const token = proxy.runtime.viaToken;
    for (const r of upstream.requests) {
      const what = `${r.method} ${r.url} ${JSON.stringify(r.headers)}`;
      expect(String(r.headers.via ?? ''), what).toContain(token);
      // Or the request each run makes afterwards, to see that the proxy still serves.
      if (r.headers[FUZZ_ID] === undefined) expect(['/smuggled', '/after'], what).toContain(r.url);
    }
  }

  async function fuzz(listener: 'gateway' | 'outbound', numRuns: number) {
    const port = proxy.address(listener)!.port;
    const property = fc.asyncProperty(request, async (generated) => {
      const id = nextId++;
      const head = withId(generated, id);
      const reply = await exchange(port, serialize(head));
      expectAcceptable(reply, listener);
      expectForwarded(id, head, reply);
    });
    try {
      await fc.assert(property, { numRuns, seed: SEED, examples: mustRun.map((h) => [h]) });
      expectWellFormed(received);
      expect(upstreamParseErrors).toEqual([]);
      expectNothingSmuggled();
    } catch (error) {
      throw new Error(`fuzz failed; replay with FUZZ_SEED=${SEED}\n${String(error)}`, {
        cause: error,
      });
    }
    const after = await send(`${proxy.url(listener)}/after`, { headers: { host: 'backend' } });
    expect(after.status).toBe(200);
  }

  it(
    'gateway: 300 random heads; still serving afterwards',
    async () => {
      await fuzz('gateway', 300);
    },
    TEST_TIMEOUT,
  );

  it(
    'outbound: 150 random heads; still serving afterwards',
    async () => {
      await fuzz('outbound', 150);
    },
    TEST_TIMEOUT,
  );
});
