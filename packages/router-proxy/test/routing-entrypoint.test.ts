import type { RouteTableInput } from '@graylane/lane-core';
import { parseRouteTable } from '@graylane/lane-core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileTable } from '../src/routing/compiled-table.js';
import { hostWithoutPort, matchEntrypoint, pathHasPrefix } from '../src/routing/entrypoint.js';
import { serviceForHost, serviceFromHost } from '../src/routing/service-host.js';

type EntrypointInput = NonNullable<RouteTableInput['entrypoints']>[number];

function tableOf(entrypoints: Array<{ name: string; host?: string; pathPrefix?: string }>) {
  return compileTable(
    parseRouteTable({
      apiVersion: 'graylane/v1',
      revision: 1,
      services: { web: { stable: { endpoints: ['http://127.0.0.1:8000'] } } },
      entrypoints: entrypoints.map(
        ({ name, host, pathPrefix }): EntrypointInput => ({
          name,
          service: 'web',
          match: {
            ...(host === undefined ? {} : { host }),
            ...(pathPrefix === undefined ? {} : { pathPrefix }),
          },
        }),
      ),
    }),
  );
}

const match = (table: ReturnType<typeof tableOf>, host: string | undefined, path: string) =>
  matchEntrypoint(table, host, path)?.name;

describe('matchEntrypoint', () => {
  const table = tableOf([
    { name: 'root' },
    { name: 'api', pathPrefix: '/api' },
    { name: 'api-v2', pathPrefix: '/api/v2' },
    { name: 'admin-host', host: 'Admin.Example.com', pathPrefix: '/api' },
    { name: 'shop-host', host: 'shop.example.com' },
  ]);

  it('takes the longest path prefix', () => {
    expect(match(table, 'x', '/')).toBe('root');
    expect(match(table, 'x', '/api')).toBe('api');
    expect(match(table, 'x', '/api/v1/items')).toBe('api');
    expect(match(table, 'x', '/api/v2')).toBe('api-v2');
    expect(match(table, 'x', '/api/v2/items?q=1')).toBe('api-v2');
    expect(match(table, 'x', '/other')).toBe('root');
  });

  it('is independent of the order the entrypoints are written in', () => {
    const shuffled = tableOf([
      { name: 'api-v2', pathPrefix: '/api/v2' },
      { name: 'shop-host', host: 'shop.example.com' },
      { name: 'root' },
      { name: 'admin-host', host: 'admin.example.com', pathPrefix: '/api' },
      { name: 'api', pathPrefix: '/api' },
    ]);
    for (const [host, path] of [
      ['x', '/api/v2/a'],
      ['x', '/api/v1'],
      ['admin.example.com', '/api/x'],
      ['shop.example.com', '/'],
      ['shop.example.com', '/api'],
      [undefined, '/'],
    ] as const)
      expect(match(shuffled, host, path)).toBe(match(table, host, path));
  });

  it('prefers a host-specific entrypoint at equal prefix length', () => {
    expect(match(table, 'admin.example.com', '/api/x')).toBe('admin-host');
    expect(match(table, 'shop.example.com', '/x')).toBe('shop-host');
    expect(match(table, 'other.example.com', '/api/x')).toBe('api');
  });

  it('prefers a host-specific entrypoint over a longer any-host prefix (Gateway API, nginx)', () => {
    expect(match(table, 'shop.example.com', '/api/x')).toBe('shop-host');
    expect(match(table, 'admin.example.com', '/api/v2/x')).toBe('admin-host');
  });

  it('falls to a less specific host when none of the host entrypoints matches the path', () => {
    expect(match(table, 'admin.example.com', '/other')).toBe('root');
    expect(match(table, 'admin.example.com', '/api')).toBe('admin-host');
  });

  it('matches the host case-insensitively and whatever the port', () => {
    for (const host of [
      'admin.example.com',
      'ADMIN.EXAMPLE.COM',
      'Admin.Example.Com:8443',
      'admin.example.com:80',
    ])
      expect(match(table, host, '/api')).toBe('admin-host');
    expect(match(table, 'admin.example.com.evil', '/api')).toBe('api');
    expect(match(table, 'xadmin.example.com', '/api')).toBe('api');
  });

  it('a request without a Host header only matches any-host entrypoints', () => {
    expect(match(table, undefined, '/api/x')).toBe('api');
    expect(match(table, '', '/x')).toBe('root');
  });

  it('matches prefixes on whole path segments', () => {
    const only = tableOf([{ name: 'api', pathPrefix: '/api' }]);
    expect(match(only, 'x', '/api')).toBe('api');
    expect(match(only, 'x', '/api/')).toBe('api');
    expect(match(only, 'x', '/api/x')).toBe('api');
    expect(match(only, 'x', '/api?q=1')).toBe('api');
    expect(match(only, 'x', '/apix')).toBeUndefined();
    expect(match(only, 'x', '/ap')).toBeUndefined();
    expect(match(only, 'x', '/')).toBeUndefined();
    expect(match(only, 'x', '/v1/api')).toBeUndefined();
  });

  it('a prefix written with a trailing slash matches below it', () => {
    const only = tableOf([{ name: 'api', pathPrefix: '/api/' }]);
    expect(match(only, 'x', '/api/x')).toBe('api');
    expect(match(only, 'x', '/api/')).toBe('api');
    expect(match(only, 'x', '/apix')).toBeUndefined();
  });

  it('returns undefined when nothing matches', () => {
    const hostOnly = tableOf([{ name: 'shop', host: 'shop.example.com' }]);
    expect(match(hostOnly, 'other.example.com', '/')).toBeUndefined();
    expect(match(hostOnly, undefined, '/')).toBeUndefined();
    expect(match(tableOf([]), 'x', '/')).toBeUndefined();
  });

  it('property: host-specific first, then the longest matching prefix', () => {
    const segment = fc.constantFrom('a', 'ab', 'b', 'api', 'v1');
    const prefix = fc.array(segment, { maxLength: 3 }).map((parts) => `/${parts.join('/')}`);
    const host = fc.option(fc.constantFrom('h1.test', 'h2.test'), { nil: undefined });
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(prefix, host), {
          minLength: 1,
          maxLength: 6,
          selector: ([p, h]) => `${h}|${p}`,
        }),
        fc.array(segment, { maxLength: 4 }),
        fc.constantFrom('h1.test', 'H2.TEST:8080', 'other'),
        (entries, pathParts, reqHost) => {
          const t = tableOf(
            entries.map(([p, h], i) => ({ name: `e${i}`, pathPrefix: p, host: h })),
          );
          const path = `/${pathParts.join('/')}`;
          const got = matchEntrypoint(t, reqHost, path);
          const bare = reqHost.split(':')[0]!.toLowerCase();
          const candidates = entries.filter(
            ([p, h]) => (h === undefined || h === bare) && pathHasPrefix(path, p),
          );
          if (candidates.length === 0) {
            expect(got).toBeUndefined();
            return;
          }
          expect(got).toBeDefined();
          expect(pathHasPrefix(path, got!.pathPrefix)).toBe(true);
          const hostSpecific = candidates.filter(([, h]) => h !== undefined);
          const tier = hostSpecific.length > 0 ? hostSpecific : candidates;
          if (hostSpecific.length > 0) expect(got!.host).toBe(bare);
          else expect(got!.host).toBeUndefined();
          const longest = Math.max(...tier.map(([p]) => p.length));
          expect(got!.pathPrefix.length).toBe(longest);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('matchEntrypoint: precedence, every pairing (issue 15 item 9)', () => {
  const both = (a: { name: string; host?: string; pathPrefix?: string }, b: typeof a) => [
    tableOf([a, b]),
    tableOf([b, a]),
  ];

  it('exact host beats any-host, whatever the prefixes', () => {
    for (const t of both(
      { name: 'exact', host: 'rules.example', pathPrefix: '/' },
      { name: 'any', pathPrefix: '/v' },
    )) {
      expect(match(t, 'rules.example', '/v')).toBe('exact');
      expect(match(t, 'rules.example:8080', '/v/x')).toBe('exact');
      expect(match(t, 'other.example', '/v')).toBe('any');
    }
  });

  it('exact host beats a wildcard, whatever the prefixes', () => {
    for (const t of both(
      { name: 'exact', host: 'a.example.com', pathPrefix: '/' },
      { name: 'wild', host: '*.example.com', pathPrefix: '/v/w' },
    )) {
      expect(match(t, 'a.example.com', '/v/w')).toBe('exact');
      expect(match(t, 'b.example.com', '/v/w')).toBe('wild');
      expect(match(t, 'b.example.com', '/')).toBeUndefined();
    }
  });

  it('a wildcard beats any-host, whatever the prefixes', () => {
    for (const t of both(
      { name: 'wild', host: '*.example.com', pathPrefix: '/' },
      { name: 'any', pathPrefix: '/v' },
    )) {
      expect(match(t, 'b.example.com', '/v')).toBe('wild');
      expect(match(t, 'x.y.example.com', '/v')).toBe('wild');
      expect(match(t, 'example.com', '/v')).toBe('any');
      expect(match(t, 'badexample.com', '/v')).toBe('any');
    }
  });

  it('the longer wildcard suffix beats the shorter one', () => {
    for (const t of both(
      { name: 'short', host: '*.example.com', pathPrefix: '/v' },
      { name: 'long', host: '*.eu.example.com', pathPrefix: '/' },
    )) {
      expect(match(t, 'a.eu.example.com', '/v')).toBe('long');
      expect(match(t, 'a.us.example.com', '/v')).toBe('short');
    }
  });

  it('within one host tier, the longest path prefix wins', () => {
    for (const [host, name] of [
      ['h.example', 'exact'],
      ['*.example', 'wild'],
      [undefined, 'any'],
    ] as const) {
      const entries = [
        { name: `${name}-short`, pathPrefix: '/a', ...(host ? { host } : {}) },
        { name: `${name}-long`, pathPrefix: '/a/b', ...(host ? { host } : {}) },
      ];
      for (const t of both(entries[0]!, entries[1]!)) {
        expect(match(t, 'h.example', '/a/b/c')).toBe(`${name}-long`);
        expect(match(t, 'h.example', '/a/c')).toBe(`${name}-short`);
      }
    }
  });
});

describe('pathHasPrefix', () => {
  it('`/` and the empty prefix match everything', () => {
    for (const path of ['/', '/x', '/x/y?z', '']) {
      expect(pathHasPrefix(path, '/')).toBe(true);
      expect(pathHasPrefix(path, '')).toBe(true);
    }
  });

  it('matches whole segments', () => {
    expect(pathHasPrefix('/api', '/api')).toBe(true);
    expect(pathHasPrefix('/api/x', '/api')).toBe(true);
    expect(pathHasPrefix('/api?q=1', '/api')).toBe(true);
    expect(pathHasPrefix('/apix', '/api')).toBe(false);
    expect(pathHasPrefix('/api-v2', '/api')).toBe(false);
    expect(pathHasPrefix('/API', '/api')).toBe(false);
  });

  it('property: a path built as prefix + (nothing | /rest | ?query) matches', () => {
    const seg = fc.stringMatching(/^[a-z0-9_-]{1,6}$/);
    fc.assert(
      fc.property(
        fc.array(seg, { minLength: 1, maxLength: 3 }),
        fc.constantFrom('', '/', '/more', '?q=1', '/a?b'),
        seg,
        (parts, tail, extra) => {
          const prefix = `/${parts.join('/')}`;
          expect(pathHasPrefix(prefix + tail, prefix)).toBe(true);
          // Extending the last segment is a different segment.
          expect(pathHasPrefix(prefix + extra, prefix)).toBe(false);
        },
      ),
    );
  });
});

describe('hostWithoutPort', () => {
  it('drops the port and lower-cases', () => {
    expect(hostWithoutPort('backend')).toBe('backend');
    expect(hostWithoutPort('backend:8080')).toBe('backend');
    expect(hostWithoutPort('BackEnd.Shop:80')).toBe('backend.shop');
    expect(hostWithoutPort('127.0.0.1:9001')).toBe('127.0.0.1');
  });

  it('keeps an IPv6 literal in its brackets', () => {
    expect(hostWithoutPort('[::1]:8080')).toBe('[::1]');
    expect(hostWithoutPort('[::1]')).toBe('[::1]');
    expect(hostWithoutPort('[FE80::1]:80')).toBe('[fe80::1]');
  });

  it('returns undefined for a missing or empty host', () => {
    expect(hostWithoutPort(undefined)).toBeUndefined();
    expect(hostWithoutPort('')).toBeUndefined();
  });
});

describe('serviceFromHost', () => {
  it('takes the first DNS label, lower case, without port', () => {
    expect(serviceFromHost('backend')).toBe('backend');
    expect(serviceFromHost('backend:8080')).toBe('backend');
    expect(serviceFromHost('backend.shop.svc.cluster.local')).toBe('backend');
    expect(serviceFromHost('backend.shop.svc.cluster.local:8080')).toBe('backend');
    expect(serviceFromHost('BACKEND')).toBe('backend');
    expect(serviceFromHost('Backend.Shop:80')).toBe('backend');
  });

  it('returns undefined for an IPv6 literal, an empty label or no host', () => {
    expect(serviceFromHost('[::1]')).toBeUndefined();
    expect(serviceFromHost('[::1]:8080')).toBeUndefined();
    expect(serviceFromHost('[2001:db8::1]:443')).toBeUndefined();
    expect(serviceFromHost('.backend')).toBeUndefined();
    expect(serviceFromHost(':8080')).toBeUndefined();
    expect(serviceFromHost('')).toBeUndefined();
    expect(serviceFromHost(undefined)).toBeUndefined();
  });

  it('returns undefined for an IPv4 literal (10.0.0.1 is not service `10`)', () => {
    expect(serviceFromHost('10.0.0.1')).toBeUndefined();
    expect(serviceFromHost('127.0.0.1:9001')).toBeUndefined();
    // A name that merely starts with digits is still a label.
    expect(serviceFromHost('123abc.shop:80')).toBe('123abc');
    expect(serviceFromHost('web1.shop')).toBe('web1');
  });

  it('property: a label in a cluster form, with any port, names that label', () => {
    const label = fc.stringMatching(/^[a-z]([-a-z0-9]{0,20}[a-z0-9])?$/);
    fc.assert(
      fc.property(
        label,
        fc.constantFrom('', '.ns', '.ns.svc', '.ns.svc.cluster.local', '.shop.svc.k8s.example'),
        fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
        fc.boolean(),
        (first, suffix, port, upper) => {
          let host = `${first}${suffix}`;
          if (upper) host = host.toUpperCase();
          if (port !== undefined) host += `:${port}`;
          expect(serviceFromHost(host)).toBe(first);
        },
      ),
    );
  });

  it('property: three or more labels not in a cluster form name no service', () => {
    const label = fc.stringMatching(/^[a-z]([-a-z0-9]{0,20}[a-z0-9])?$/);
    fc.assert(
      fc.property(
        label,
        label.filter((l) => l !== 'svc'),
        fc.array(label, { minLength: 1, maxLength: 3 }),
        (first, second, rest) => {
          const third = rest[0] === 'svc' ? ['x', ...rest.slice(1)] : rest;
          expect(serviceFromHost([first, second, ...third].join('.'))).toBeUndefined();
        },
      ),
    );
  });

  it('a configured service domain and the table hosts name a service too', () => {
    const options = {
      serviceDomains: ['.corp.internal'],
      hosts: new Map([['api.example.org', 'api']]),
    };
    expect(serviceFromHost('billing.corp.internal', options)).toBe('billing');
    expect(serviceFromHost('billing.corp.internal.evil.com', options)).toBeUndefined();
    expect(serviceFromHost('API.example.org:443', options)).toBe('api');
    expect(serviceFromHost('api.example.org.evil.com', options)).toBeUndefined();
    expect(serviceFromHost('api.github.com', options)).toBeUndefined();
  });
});

describe('serviceForHost (kept per table, by host)', () => {
  const table = tableOf([{ name: 'web' }]);

  it('answers a host asked again, or among more hosts than it keeps, as serviceFromHost does', () => {
    const hosts = [
      'web',
      'WEB:8080',
      'web.shop.svc',
      'web.corp.internal',
      'api.github.com',
      '10.0.0.1',
    ];
    const expected = (host: string) => {
      const name = serviceFromHost(host, { serviceDomains: ['corp.internal'] });
      return name === undefined ? undefined : table.services.get(name)?.name;
    };
    for (let round = 0; round < 3; round++) {
      for (const host of hosts) {
        expect(serviceForHost(table, host, ['corp.internal'])?.name, host).toBe(expected(host));
      }
      // Past what the memo keeps: it starts afresh and still answers.
      for (let i = 0; i < 1100; i++)
        serviceForHost(table, `client-${i}.example`, ['corp.internal']);
    }
    expect(serviceForHost(table, undefined, [])).toBeUndefined();
  });

  it('answers again when asked with other service domains', () => {
    expect(serviceForHost(table, 'web.corp.internal', ['corp.internal'])?.name).toBe('web');
    expect(serviceForHost(table, 'web.corp.internal', [])).toBeUndefined();
    expect(serviceForHost(table, 'web.corp.internal', ['corp.internal'])?.name).toBe('web');
  });
});
