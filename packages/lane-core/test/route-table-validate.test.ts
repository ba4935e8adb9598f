import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ErrorCodes,
  formatPath,
  formatProblems,
  type Problem,
  parseRouteTable,
  RouteTableError,
  type RouteTableInput,
  validateRouteTable,
} from '../src/index.js';

function table(overrides: Partial<Record<keyof RouteTableInput, unknown>> = {}): RouteTableInput {
  return {
    apiVersion: 'graylane/v1',
    revision: 1,
    services: {
      backend: {
        stable: { version: 'v1', endpoints: ['http://127.0.0.1:9001'] },
        lanes: { gray: { version: 'v2', endpoints: ['http://127.0.0.1:9002'] } },
      },
      frontend: {
        stable: { endpoints: ['http://127.0.0.1:8001'] },
        lanes: { gray: { endpoints: ['http://127.0.0.1:8002'] } },
      },
    },
    entrypoints: [
      {
        name: 'shop',
        service: 'frontend',
        assign: [
          { lane: 'gray', when: { headers: { 'user-agent': { exact: 'tester' } } } },
          { lane: 'gray', weight: 10, sticky: 'cookie:graylane' },
        ],
      },
    ],
    ...overrides,
  } as RouteTableInput;
}

function withService(name: string, service: unknown): RouteTableInput {
  const base = table();
  return { ...base, services: { ...base.services, [name]: service } } as RouteTableInput;
}

/** The problems of a refused document, as `path: message` lines; fails when it is accepted. */
function problemsOf(document: unknown): string[] {
  try {
    parseRouteTable(document);
  } catch (error) {
    expect(error).toBeInstanceOf(RouteTableError);
    expect((error as RouteTableError).code).toBe(ErrorCodes.routeTable);
    return (error as RouteTableError).problems.map((p: Problem) => formatProblems([p]));
  }
  throw new Error('document was accepted');
}

describe('formatPath', () => {
  it('writes paths the way users write them', () => {
    expect(formatPath(['entrypoints', 0, 'assign', 1, 'weight'])).toBe(
      'entrypoints[0].assign[1].weight',
    );
    expect(formatPath(['services', 'backend', 'lanes', 'Gray'])).toBe(
      'services.backend.lanes.Gray',
    );
    expect(formatPath([])).toBe('');
  });
});

describe('validateRouteTable: accepted documents', () => {
  it('accepts the reference example', () => {
    const result = validateRouteTable(table());
    expect(result.ok).toBe(true);
  });

  it('applies the defaults', () => {
    const parsed = parseRouteTable({
      apiVersion: 'graylane/v1',
      revision: 0,
      services: { backend: { stable: {}, lanes: { gray: {} } } },
      entrypoints: [{ name: 'shop', service: 'backend', assign: [{ lane: 'gray' }] }],
    });
    expect(parsed.laneHeader).toBe('x-lane');
    expect(parsed.baggageKey).toBe('lane');
    const backend = parsed.services.backend!;
    expect(backend.loadBalancing).toBe('least-request');
    expect(backend.stable.endpoints).toEqual([]);
    expect(backend.lanes.gray).toEqual({ endpoints: [], fallback: 'stable' });
    const entry = parsed.entrypoints[0]!;
    expect(entry.clientLanes).toBe('known');
    expect(entry.match).toEqual({ pathPrefix: '/' });
    expect(entry.assign[0]).toEqual({ lane: 'gray' });
  });

  it('fills pathPrefix when only host is given', () => {
    const parsed = parseRouteTable(
      table({ entrypoints: [{ name: 'shop', service: 'frontend', match: { host: 'shop.test' } }] }),
    );
    expect(parsed.entrypoints[0]!.match).toEqual({ host: 'shop.test', pathPrefix: '/' });
  });

  it('defaults services and entrypoints to empty', () => {
    expect(parseRouteTable({ apiVersion: 'graylane/v1', revision: 3 })).toMatchObject({
      services: {},
      entrypoints: [],
    });
  });

  it('accepts fallback chains that end in stable or none, and assigning stable', () => {
    const doc = withService('chain', {
      stable: {},
      lanes: {
        'feature-x': { fallback: 'gray' },
        gray: { fallback: 'blue' },
        blue: { fallback: 'none' },
      },
    });
    (doc.entrypoints as unknown[]).push({
      name: 'two',
      service: 'chain',
      assign: [{ lane: 'stable' }],
    });
    expect(validateRouteTable(doc)).toMatchObject({ ok: true });
  });

  it('accepts https endpoints and the same endpoint in two services', () => {
    const doc = withService('other', {
      stable: { endpoints: ['https://127.0.0.1:9001', 'http://127.0.0.1:9001/'] },
    });
    expect(validateRouteTable(doc)).toMatchObject({ ok: true });
  });
});

describe('validateRouteTable: refused documents', () => {
  it.each<[string, unknown, string[]]>([
    [
      'invalid lane name',
      withService('backend', { stable: {}, lanes: { Gray: {} } }),
      ['services.backend.lanes.Gray: invalid lane name'],
    ],
    [
      'a lane called stable',
      withService('backend', { stable: {}, lanes: { stable: {} } }),
      ['services.backend.lanes.stable: "stable" is the stable set, not a lane'],
    ],
    [
      'invalid service name',
      withService('Backend_1', { stable: {} }),
      ['services.Backend_1: invalid service name (a DNS label)'],
    ],
    [
      'unknown entrypoint service',
      table({ entrypoints: [{ name: 'shop', service: 'fronted' }] }),
      ['entrypoints[0].service: unknown service "fronted"'],
    ],
    [
      'a service named like an Object.prototype member',
      table({ entrypoints: [{ name: 'shop', service: 'constructor' }] }),
      ['entrypoints[0].service: unknown service "constructor"'],
    ],
    [
      'fallback cycle',
      withService('a', { stable: {}, lanes: { x: { fallback: 'y' }, y: { fallback: 'x' } } }),
      [
        'services.a.lanes.x.fallback: cycle x -> y -> x',
        'services.a.lanes.y.fallback: cycle y -> x -> y',
      ],
    ],
    [
      'fallback to itself',
      withService('a', { stable: {}, lanes: { x: { fallback: 'x' } } }),
      ['services.a.lanes.x.fallback: cycle x -> x'],
    ],
    [
      'fallback to an unknown lane',
      withService('a', { stable: {}, lanes: { x: { fallback: 'grey' } } }),
      ['services.a.lanes.x.fallback: fallback to unknown lane "grey"'],
    ],
    [
      'fallback to an Object.prototype member',
      withService('a', { stable: {}, lanes: { x: { fallback: 'toString' } } }),
      ['services.a.lanes.x.fallback: fallback to unknown lane "toString"'],
    ],
    [
      'weight over 100',
      table({
        entrypoints: [{ name: 'e', service: 'backend', assign: [{ lane: 'gray', weight: 100.5 }] }],
      }),
      ['entrypoints[0].assign[0].weight: weight must be between 0 and 100'],
    ],
    [
      'weight under 0',
      table({
        entrypoints: [{ name: 'e', service: 'backend', assign: [{ lane: 'gray', weight: -1 }] }],
      }),
      ['entrypoints[0].assign[0].weight: weight must be between 0 and 100'],
    ],
    [
      'duplicate endpoints within a service',
      withService('a', {
        stable: { endpoints: ['http://127.0.0.1:80'] },
        lanes: { x: { endpoints: ['http://127.0.0.1'] } },
      }),
      ['services.a.lanes.x.endpoints[0]: duplicate endpoint (also services.a.stable.endpoints[0])'],
    ],
    [
      'non-http endpoints',
      withService('a', { stable: { endpoints: ['ftp://127.0.0.1:21', 'unix:/tmp/sock'] } }),
      [
        'services.a.stable.endpoints[0]: endpoint must be http or https, not ftp:',
        'services.a.stable.endpoints[1]: endpoint must be http or https, not unix:',
      ],
    ],
    [
      'an endpoint that is not a URL',
      withService('a', { stable: { endpoints: ['127.0.0.1'] } }),
      ['services.a.stable.endpoints[0]: not a URL: "127.0.0.1"'],
    ],
    [
      'an endpoint with a path',
      withService('a', { stable: { endpoints: ['http://127.0.0.1:1/api'] } }),
      ['services.a.stable.endpoints[0]: endpoint is an origin only (no path, query or user)'],
    ],
    [
      'revision not an integer',
      table({ revision: 1.5 }),
      ['revision: revision must be an integer'],
    ],
    ['unknown top-level field', { ...table(), lanes: {} }, ['Unrecognized key: "lanes"']],
    [
      'unknown nested field',
      withService('a', { stable: { endpoint: [] } }),
      ['services.a.stable: Unrecognized key: "endpoint"'],
    ],
    [
      'invalid regex',
      table({
        entrypoints: [
          {
            name: 'e',
            service: 'backend',
            assign: [{ lane: 'gray', when: { headers: { 'x-a': { regex: '(' } } } }],
          },
        ],
      }),
      [
        'entrypoints[0].assign[0].when.headers.x-a.regex: invalid regex: Invalid regular expression: /(/: Unterminated group',
      ],
    ],
    [
      'sticky without weight',
      table({
        entrypoints: [
          { name: 'e', service: 'backend', assign: [{ lane: 'gray', sticky: 'header:x-user' }] },
        ],
      }),
      ['entrypoints[0].assign[0].sticky: sticky needs a weight'],
    ],
    [
      'malformed sticky',
      table({
        entrypoints: [
          {
            name: 'e',
            service: 'backend',
            assign: [{ lane: 'gray', weight: 5, sticky: 'session' }],
          },
        ],
      }),
      ['entrypoints[0].assign[0].sticky: sticky is cookie:NAME or header:NAME'],
    ],
    [
      'assigned lane defined by no service',
      table({ entrypoints: [{ name: 'e', service: 'backend', assign: [{ lane: 'grey' }] }] }),
      ['entrypoints[0].assign[0].lane: lane "grey" is not defined by any service'],
    ],
    [
      'assigned lane that is not a lane name',
      table({ entrypoints: [{ name: 'e', service: 'backend', assign: [{ lane: 'Gray' }] }] }),
      ['entrypoints[0].assign[0].lane: invalid lane name'],
    ],
    [
      'duplicate entrypoint name',
      table({
        entrypoints: [
          { name: 'shop', service: 'frontend' },
          { name: 'shop', service: 'backend' },
        ],
      }),
      ['entrypoints[1].name: duplicate entrypoint "shop"'],
    ],
    [
      'upper-case header name',
      table({ laneHeader: 'X-Lane' }),
      ['laneHeader: a header name in lower case'],
    ],
    [
      'pathPrefix without a leading slash',
      table({ entrypoints: [{ name: 'e', service: 'backend', match: { pathPrefix: 'api' } }] }),
      ['entrypoints[0].match.pathPrefix: pathPrefix starts with /'],
    ],
    [
      'short clientLanesSecret',
      table({
        entrypoints: [
          { name: 'e', service: 'backend', clientLanesSecret: { header: 'x-key', value: 'short' } },
        ],
      }),
      ['entrypoints[0].clientLanesSecret.value: a secret of at least 8 characters'],
    ],
  ])('%s', (_, document, expected) => {
    expect(problemsOf(document)).toEqual(expected);
  });

  it('paths a missing field and a wrong apiVersion', () => {
    const lines = problemsOf({ apiVersion: 'graylane/v2', services: { a: {} } });
    expect(lines.map((l) => l.split(':')[0])).toEqual([
      'apiVersion',
      'revision',
      'services.a.stable',
    ]);
  });

  it('refuses a string match with two keys', () => {
    const lines = problemsOf(
      table({
        entrypoints: [
          {
            name: 'e',
            service: 'backend',
            assign: [{ lane: 'gray', when: { headers: { a: { exact: 'x', prefix: 'y' } } } }],
          },
        ],
      }),
    );
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^entrypoints\[0\]\.assign\[0\]\.when\.headers\.a: /);
  });

  it('lists several structural problems at once', () => {
    expect(
      problemsOf(
        table({
          revision: 'seven',
          laneHeader: 'X-Lane',
          entrypoints: [
            {
              name: 'e',
              service: 'backend',
              clientLanes: 'all',
              assign: [{ lane: 'gray', weight: 200 }],
            },
          ],
        }),
      ).map((l) => l.split(':')[0]),
    ).toEqual([
      'revision',
      'laneHeader',
      'entrypoints[0].clientLanes',
      'entrypoints[0].assign[0].weight',
    ]);
  });

  it('lists several cross-reference problems at once', () => {
    const doc = table({
      services: {
        backend: {
          stable: { endpoints: ['http://127.0.0.1:9001', 'http://127.0.0.1:9001'] },
          lanes: { Gray: {}, x: { fallback: 'y' }, y: { fallback: 'x' } },
        },
      },
      entrypoints: [
        {
          name: 'shop',
          service: 'fronted',
          assign: [{ lane: 'grey' }, { lane: 'x', sticky: 'cookie:c' }],
        },
      ],
    });
    expect(problemsOf(doc)).toEqual([
      'services.backend.stable.endpoints[1]: duplicate endpoint (also services.backend.stable.endpoints[0])',
      'services.backend.lanes.Gray: invalid lane name',
      'services.backend.lanes.x.fallback: cycle x -> y -> x',
      'services.backend.lanes.y.fallback: cycle y -> x -> y',
      'entrypoints[0].service: unknown service "fronted"',
      'entrypoints[0].assign[0].lane: lane "grey" is not defined by any service',
      'entrypoints[0].assign[1].sticky: sticky needs a weight',
    ]);
  });

  it('summarises the problems in the error message, with the source', () => {
    try {
      parseRouteTable(
        table({ entrypoints: [{ name: 'e', service: 'fronted' }], revision: 1 }),
        'routes.yaml',
      );
      expect.unreachable();
    } catch (error) {
      expect((error as RouteTableError).message).toBe(
        'routes.yaml: entrypoints[0].service: unknown service "fronted"',
      );
    }
  });

  it('returns the problems instead of throwing from validateRouteTable', () => {
    const result = validateRouteTable(table({ revision: -1 }));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems.map((p) => p.path)).toEqual(['revision']);
  });

  it('refuses documents that are not objects', () => {
    for (const doc of [null, 'text', 42, []]) {
      expect(validateRouteTable(doc).ok).toBe(false);
    }
  });
});

/** A random lane graph: each lane falls back to stable, none, another lane or a lane not defined. */
const laneGraph = fc.integer({ min: 1, max: 7 }).chain((n) =>
  fc.array(
    fc.oneof(
      fc.constant('stable'),
      fc.constant('none'),
      fc.constant('missing'),
      fc.integer({ min: 0, max: n - 1 }).map((i) => `l${i}`),
    ),
    { minLength: n, maxLength: n },
  ),
);

/** The lanes on a cycle, found by walking at most n steps from each lane. */
function lanesOnCycles(fallbacks: string[]): Set<string> {
  const on = new Set<string>();
  fallbacks.forEach((_, i) => {
    let at = `l${i}`;
    for (let step = 0; step < fallbacks.length; step++) {
      const m = /^l(\d+)$/.exec(at);
      if (!m) return;
      at = fallbacks[Number(m[1])]!;
      if (at === `l${i}`) {
        on.add(at);
        return;
      }
    }
  });
  return on;
}

describe('fallback chains (property)', () => {
  it('reports a cycle iff one exists, on exactly the lanes of the cycle', () => {
    fc.assert(
      fc.property(laneGraph, (fallbacks) => {
        const lanes = Object.fromEntries(fallbacks.map((fallback, i) => [`l${i}`, { fallback }]));
        const result = validateRouteTable({
          apiVersion: 'graylane/v1',
          revision: 1,
          services: { svc: { stable: {}, lanes } },
        });
        const problems = result.ok ? [] : result.problems;
        const cycles = problems.filter((p) => p.message.startsWith('cycle '));
        const expected = lanesOnCycles(fallbacks);
        expect(cycles.length > 0).toBe(expected.size > 0);
        expect(new Set(cycles.map((p) => p.path))).toEqual(
          new Set([...expected].map((lane) => `services.svc.lanes.${lane}.fallback`)),
        );
        for (const problem of cycles) {
          const chain = problem.message.slice('cycle '.length).split(' -> ');
          expect(chain.at(-1)).toBe(chain[0]);
          chain.slice(0, -1).forEach((lane, k) => {
            expect(fallbacks[Number(lane.slice(1))]).toBe(chain[k + 1]);
          });
        }
        const unknown = problems.filter((p) => p.message.startsWith('fallback to unknown lane'));
        expect(unknown).toHaveLength(fallbacks.filter((f) => f === 'missing').length);
        expect(problems).toHaveLength(cycles.length + unknown.length);
      }),
      { numRuns: 1000 },
    );
  });
});
