import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GraylaneProxy } from '../../src/index.js';
import { send, startProxy, startUpstream, table, type Upstream } from '../helpers.js';

/** Issue 15 item 9, through a real gateway: the host decides before the path. */
describe('gateway: entrypoint precedence', () => {
  let proxy: GraylaneProxy;
  const upstreams: Upstream[] = [];

  beforeAll(async () => {
    for (const name of ['api', 'rules', 'tenants']) upstreams.push(await startUpstream(name));
    const [api, rules, tenants] = upstreams as [Upstream, Upstream, Upstream];
    proxy = await startProxy({
      initialTable: table({
        revision: 1,
        services: {
          api: { stable: { endpoints: [api.url] } },
          rules: { stable: { endpoints: [rules.url] } },
          tenants: { stable: { endpoints: [tenants.url] } },
        },
        entrypoints: [
          { name: 'any-v', match: { pathPrefix: '/v' }, service: 'api' },
          { name: 'rules', match: { host: 'rules.example' }, service: 'rules' },
          { name: 'tenants', match: { host: '*.example', pathPrefix: '/v' }, service: 'tenants' },
        ],
      }),
    });
  });

  afterAll(async () => {
    await proxy.close();
    for (const upstream of upstreams) await upstream.close();
  });

  it('answers as docs/route-table.md says', async () => {
    const cases: Array<[string, string, string | number]> = [
      ['rules.example', '/v', 'rules'],
      ['Rules.Example:8080', '/v/x', 'rules'],
      ['acme.example', '/v/x', 'tenants'],
      ['acme.example', '/w', 404],
      ['other.test', '/v', 'api'],
      ['other.test', '/w', 404],
    ];
    for (const [host, path, expected] of cases) {
      const sent = await send(`${proxy.url('gateway')}${path}`, { headers: { host } });
      if (typeof expected === 'number') expect(sent.status, `${host}${path}`).toBe(expected);
      else expect(sent.headers['x-upstream'], `${host}${path}`).toBe(expected);
    }
  });
});
