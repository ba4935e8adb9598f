import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { injectManifest } from '../src/kubernetes/inject.js';
import { runCli, tempDir } from './graylane.js';
import { DEPLOY } from './kube-env.js';

const manifest = `apiVersion: apps/v1
kind: Deployment
metadata: { name: backend }
spec:
  selector: { matchLabels: { app: backend } }
  template:
    metadata: { labels: { app: backend } }
    spec:
      containers:
        - name: app
          image: backend:1
          env: [{ name: HTTP_PROXY, value: http://old:3128 }, { name: LOG, value: debug }]
---
apiVersion: v1
kind: Service
metadata: { name: backend }
spec: { selector: { app: backend }, ports: [{ port: 80 }] }
`;

const options = {
  image: 'graylane-proxy:1',
  routeTable: 'http://graylane-controller:7070/v1/routetable',
};

describe('graylane inject', () => {
  it('adds the sidecar and points the app at it, and injecting twice changes nothing more', () => {
    const docs = parseAllDocuments(manifest).map((d) => d.toJS());
    const once = injectManifest(docs, options) as Array<{
      kind: string;
      spec: {
        template?: {
          spec: {
            containers: Array<{
              name: string;
              image: string;
              env?: Array<{ name: string; value: string }>;
              args?: string[];
            }>;
          };
        };
      };
    }>;
    const containers = once[0]!.spec.template!.spec.containers;
    expect(containers.map((c) => c.name)).toEqual(['app', 'graylane-proxy']);
    expect(containers[0]!.env).toEqual([
      { name: 'LOG', value: 'debug' },
      { name: 'HTTP_PROXY', value: 'http://127.0.0.1:15001' },
      { name: 'http_proxy', value: 'http://127.0.0.1:15001' },
      { name: 'NO_PROXY', value: 'localhost,127.0.0.1,::1' },
      { name: 'no_proxy', value: 'localhost,127.0.0.1,::1' },
    ]);
    expect(containers[1]!.args).toEqual([
      '--route-table',
      options.routeTable,
      '--outbound',
      '127.0.0.1:15001',
      '--admin',
      '127.0.0.1:15000',
    ]);
    expect(once[1]).toEqual(docs[1]);
    expect(injectManifest(once, options)).toEqual(once);
  });

  it('works from the CLI on a file, YAML in and out', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'deploy.yaml'), manifest);
    const res = await runCli([
      'inject',
      '-f',
      join(dir, 'deploy.yaml'),
      '--image',
      'graylane-proxy:1',
    ]);
    expect(res.code).toBe(0);
    const out = parseAllDocuments(res.stdout).map((d) => d.toJS());
    expect(out).toHaveLength(2);
    expect(out[0].spec.template.spec.containers[1].image).toBe('graylane-proxy:1');
  });

  it('writes exactly the shipped snippet, deploy/kubernetes/sidecar.yaml, with its defaults', async () => {
    const shipped = parseAllDocuments(readFileSync(join(DEPLOY, 'sidecar.yaml'), 'utf8')).map((d) =>
      d.toJS(),
    );
    // The snippet's Deployment as it was before inject: no sidecar, no proxy env, no annotation.
    const plain = structuredClone(shipped[0]);
    const template = plain.spec.template;
    delete template.metadata.annotations;
    template.spec.containers = template.spec.containers
      .filter((c: { name: string }) => c.name !== 'graylane-proxy')
      .map(({ env, ...container }: { env: Array<{ name: string }> }) => {
        const kept = env.filter((e) => !/^(HTTP_PROXY|NO_PROXY)$/i.test(e.name));
        return kept.length > 0 ? { ...container, env: kept } : container;
      });
    const dir = tempDir();
    writeFileSync(join(dir, 'app.yaml'), stringify(plain));
    const res = await runCli(['inject', '-f', join(dir, 'app.yaml')]);
    expect(res.code).toBe(0);
    expect(parseAllDocuments(res.stdout).map((d) => d.toJS())).toEqual(shipped);
    // The sidecar runs the proxy's bin from the one image the Dockerfile builds.
    const sidecar = shipped[0].spec.template.spec.containers.at(-1);
    expect(sidecar.command).toEqual(['graylane-proxy']);
    expect(readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8')).toContain(
      '/usr/local/bin/graylane-proxy',
    );
    expect(readFileSync(join(DEPLOY, 'gateway.yaml'), 'utf8')).toContain(`image: ${sidecar.image}`);
  });
});
