import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { V1Deployment, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ReleaseSpecSchema } from '../src/documents/schema.js';
import {
  canaryDeployment,
  indexServicesBySelector,
  LABELS,
  mergePatch,
  promotedTemplate,
  selectorsMatching,
} from '../src/platform/kubernetes.js';

/** The same object with every map's keys in reverse order. */
function reversedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversedKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .reverse()
      .map(([k, v]) => [k, reversedKeys(v)]),
  );
}

interface CrdSchema {
  default?: unknown;
  minimum?: number;
  maximum?: number;
  properties?: Record<string, CrdSchema>;
  items?: CrdSchema;
}
interface CrdSpec {
  versions: Array<{ schema: { openAPIV3Schema: CrdSchema } }>;
}

const base: V1Deployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'backend', namespace: 'shop' },
  spec: {
    replicas: 3,
    selector: { matchLabels: { app: 'backend' } },
    template: {
      metadata: { labels: { app: 'backend', tier: 'api', team: 'checkout' } },
      spec: {
        containers: [
          { name: 'app', image: 'backend:1', ports: [{ containerPort: 8080 }] },
          { name: 'sidecar', image: 'graylane-proxy:1' },
        ],
      },
    },
  },
};

describe('the canary Deployment', () => {
  it('keeps its pods out of the stable Deployment and of every Service that selects the stable pods', () => {
    const canary = canaryDeployment(
      base,
      { service: 'backend', lane: 'gray' },
      { version: 'v2', image: 'backend:2' },
      [{ tier: 'api' }],
    );
    expect(canary.metadata?.name).toBe('backend-gray');
    expect(canary.spec?.selector?.matchLabels).toEqual({
      [LABELS.service]: 'backend',
      [LABELS.lane]: 'gray',
    });
    const labels = canary.spec?.template.metadata?.labels;
    // `app` is the Deployment's selector and `tier` a Service's: both dropped; `team` stays.
    expect(labels).toEqual({
      team: 'checkout',
      [LABELS.service]: 'backend',
      [LABELS.lane]: 'gray',
      [LABELS.version]: 'v2',
    });
    expect(canary.spec?.replicas).toBe(3);
    expect(canary.spec?.template.spec?.containers.map((c) => c.image)).toEqual([
      'backend:2',
      'backend:2',
    ]);
    // The user's Deployment is not changed.
    expect(base.spec?.template.metadata?.labels).toEqual({
      app: 'backend',
      tier: 'api',
      team: 'checkout',
    });
  });

  it('applies a strategic-merge patch (containers merged by name) and is owned by the Release', () => {
    const canary = canaryDeployment(
      base,
      { service: 'backend', lane: 'gray' },
      {
        version: 'v2',
        patch: {
          spec: {
            template: {
              spec: {
                containers: [{ name: 'app', image: 'backend:2', env: [{ name: 'X', value: '1' }] }],
              },
            },
          },
        },
      },
      [],
      { apiVersion: 'graylane.dev/v1alpha1', kind: 'Release', name: 'checkout-v2', uid: 'u-1' },
    );
    expect(canary.spec?.template.spec?.containers).toEqual([
      {
        name: 'app',
        image: 'backend:2',
        ports: [{ containerPort: 8080 }],
        env: [{ name: 'X', value: '1' }],
      },
      { name: 'sidecar', image: 'graylane-proxy:1' },
    ]);
    expect(canary.metadata?.ownerReferences).toEqual([
      {
        apiVersion: 'graylane.dev/v1alpha1',
        kind: 'Release',
        name: 'checkout-v2',
        uid: 'u-1',
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
  });

  it('has a spec hash that changes with the spec and only with it', () => {
    const hash = (image: string) =>
      canaryDeployment(base, { service: 'backend', lane: 'gray' }, { version: 'v2', image }, [])
        .metadata?.annotations?.[LABELS.specHash];
    expect(hash('backend:2')).toBe(hash('backend:2'));
    expect(hash('backend:2')).not.toBe(hash('backend:3'));
  });

  it('is the same whether the user Deployment was read from a LIST or a WATCH (key order differs)', () => {
    // The client types LIST results (keys in its models' order); WATCH events are the server's JSON.
    const listed = reversedKeys(base) as V1Deployment;
    expect(JSON.stringify(listed)).not.toBe(JSON.stringify(base));
    const ref = { service: 'backend', lane: 'gray' };
    const canary = canaryDeployment(base, ref, { version: 'v2', image: 'backend:2' }, []);
    const again = canaryDeployment(listed, ref, { version: 'v2', image: 'backend:2' }, []);
    expect(again.metadata?.annotations?.[LABELS.specHash]).toBe(
      canary.metadata?.annotations?.[LABELS.specHash],
    );
    // Promotion: a user Deployment that already has the canary's template is left alone.
    const promoted = structuredClone(base);
    promoted.spec!.template = promotedTemplate(base, canary)!;
    expect(promotedTemplate(promoted, reversedKeys(canary) as V1Deployment)).toBeUndefined();
    expect(promotedTemplate(reversedKeys(promoted) as V1Deployment, canary)).toBeUndefined();
    expect(promotedTemplate(base, canary)?.spec?.containers[0]?.image).toBe('backend:2');
  });

  it('finds the Services that select the stable pods, by any of their labels, and no other', () => {
    const service = (name: string, selector?: Record<string, string>): V1Service => ({
      metadata: { name },
      spec: selector ? { selector } : {},
    });
    const index = indexServicesBySelector([
      service('by-app', { app: 'backend' }),
      service('by-tier', { tier: 'api' }),
      service('both', { app: 'backend', tier: 'api' }),
      service('narrower', { app: 'backend', tier: 'web' }),
      service('other', { app: 'frontend' }),
      service('external'),
    ]);
    const labels = { app: 'backend', tier: 'api', team: 'checkout' };
    expect(selectorsMatching(index, labels)).toEqual([
      { app: 'backend' },
      { app: 'backend', tier: 'api' },
      { tier: 'api' },
    ]);
    expect(selectorsMatching(index, { team: 'checkout' })).toEqual([]);
  });

  it('merges patches as Kubernetes does for maps, lists of named items and null (delete)', () => {
    expect(mergePatch({ a: 1, b: { c: 2, d: 3 } }, { b: { c: 5, d: null }, e: [1] })).toEqual({
      a: 1,
      b: { c: 5 },
      e: [1],
    });
    expect(
      mergePatch(
        [{ name: 'x', v: 1 }],
        [
          { name: 'y', v: 2 },
          { name: 'x', w: 3 },
        ],
      ),
    ).toEqual([
      { name: 'x', v: 1, w: 3 },
      { name: 'y', v: 2 },
    ]);
    expect(mergePatch([1, 2], [3])).toEqual([3]);
  });
});

describe('deploy/kubernetes/crds.yaml', () => {
  /**
   * What the API server does with a written object, as far as these schemas go: `default` set where
   * the field is absent (structural defaulting), `minimum`/`maximum` refused.
   */
  function admit(schema: CrdSchema, value: unknown, path = 'spec'): unknown {
    if (typeof value === 'number') {
      if (schema.minimum !== undefined && value < schema.minimum)
        throw new Error(`${path} < minimum`);
      if (schema.maximum !== undefined && value > schema.maximum)
        throw new Error(`${path} > maximum`);
    }
    if (Array.isArray(value))
      return value.map((v, i) => admit(schema.items ?? {}, v, `${path}[${i}]`));
    if (value === null || typeof value !== 'object') return value;
    const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    for (const [key, property] of Object.entries(schema.properties ?? {})) {
      if (out[key] === undefined && property.default !== undefined) out[key] = property.default;
      if (out[key] !== undefined) out[key] = admit(property, out[key], `${path}.${key}`);
    }
    return out;
  }

  it('lets the API server default nothing that the document schema then refuses (union branches keep their own defaults)', async () => {
    const { renderCrds } = (await import('../scripts/kubernetes-manifests.mjs')) as {
      renderCrds: () => string;
    };
    const release = parseAllDocuments(renderCrds())
      .map((d) => d.toJS() as { metadata: { name: string }; spec: CrdSpec })
      .find((d) => d.metadata.name === 'releases.graylane.dev')!;
    const spec = release.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!;
    const written = {
      lane: 'gray',
      entrypoint: 'shop',
      services: [{ name: 'backend', canary: { version: 'v2', image: 'backend:2' } }],
      analysis: {
        provider: { type: 'prometheus', address: 'http://prometheus:9090' },
        stepWeight: 20,
        checks: [
          { name: 'request-success-rate' },
          { name: 'request-duration', max: '200ms' },
          { name: 'custom', id: 'errors', query: 'sum(x)', max: 1 },
          { name: 'custom', id: 'rps', query: 'sum(y)', min: 500 },
        ],
      },
    };
    const stored = admit(spec, written) as typeof written;
    const parsed = ReleaseSpecSchema.safeParse(stored);
    expect(parsed.error?.issues ?? []).toEqual([]);
    // A custom check with only max stays so: no min borrowed from request-success-rate.
    expect(stored.analysis.checks[2]).toEqual({
      name: 'custom',
      id: 'errors',
      query: 'sum(x)',
      max: 1,
    });
  });

  it('is generated from the current document schemas (run `pnpm run docs` when this fails)', async () => {
    const script = fileURLToPath(new URL('../scripts/kubernetes-manifests.mjs', import.meta.url));
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [script, '--check']);
    expect(stderr).toBe('');
    expect(stdout).toContain('up to date');
  });
});
