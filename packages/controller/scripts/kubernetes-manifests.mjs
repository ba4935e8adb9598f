#!/usr/bin/env node
/**
 * Writes deploy/kubernetes/crds.yaml from the controller's document schemas, so the CRDs' OpenAPI
 * schemas and what `graylane apply` accepts cannot drift. Kubernetes wants a *structural* schema:
 * a type on every node, no `additionalProperties: false` next to `properties`, no `$ref`; unions of
 * objects become one object whose `oneOf` says which field is required. Reads the built package.
 *
 *   node packages/controller/scripts/kubernetes-manifests.mjs --write | --check
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { z } from 'zod';
import { EntrypointSpecSchema, ReleaseSpecSchema } from '../dist/documents/schema.js';

const OUT = fileURLToPath(new URL('../../../deploy/kubernetes/crds.yaml', import.meta.url));
const GROUP = 'graylane.dev';

/** What a workload must say: exactly one of endpoints, run, or image/patch (zod's refine, in CEL). */
const WORKLOAD_RULE = {
  rule: '(has(self.endpoints) ? 1 : 0) + (has(self.run) ? 1 : 0) + ((has(self.image) || has(self.patch)) ? 1 : 0) == 1',
  message: 'exactly one of endpoints, run, or image/patch',
};

const SCHEMA_MAPS = new Set(['properties', '$defs', 'definitions', 'patternProperties']);
const SCHEMA_VALUES = new Set(['items', 'additionalProperties', 'not']);
const SCHEMA_LISTS = new Set(['anyOf', 'oneOf', 'allOf', 'prefixItems']);
// Not part of Kubernetes' JSONSchemaProps (map keys are free strings there anyway).
const DROPPED = new Set(['$schema', 'id', '$id', 'propertyNames']);

/**
 * One property two branches of a union define differently (`min` of a success-rate check is a
 * percentage, of a custom check any number): only what both say holds for the merged object; the
 * controller's parse checks each branch's own limits.
 */
function looser(a, b) {
  if (a.type !== b.type) return { 'x-kubernetes-preserve-unknown-fields': true };
  return {
    type: a.type,
    ...(a.type === 'object' ? { 'x-kubernetes-preserve-unknown-fields': true } : {}),
  };
}

/** One schema node made structural; maps of schemas, lists of schemas and plain values kept apart. */
export function structural(schema) {
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) return schema;
  const out = {};
  for (const [key, value] of Object.entries(schema)) {
    if (DROPPED.has(key)) continue;
    if (key === 'additionalProperties' && value === false) continue;
    if (SCHEMA_MAPS.has(key))
      out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, structural(v)]));
    else if (SCHEMA_VALUES.has(key)) out[key] = structural(value);
    else if (SCHEMA_LISTS.has(key)) out[key] = value.map(structural);
    else out[key] = value;
  }
  if ('const' in out) {
    out.enum = [out.const];
    delete out.const;
  }
  // A union of objects ({ weight } | { pause }, or one discriminated by `type`) becomes one object
  // with every property; which fields go together is then a `oneOf` (or `anyOf`) of `required`.
  for (const union of ['anyOf', 'oneOf']) {
    const branches = out[union];
    if (!Array.isArray(branches) || !branches.every((b) => b.type === 'object' && b.properties))
      continue;
    const properties = {};
    for (const branch of branches) {
      for (const [name, branchProperty] of Object.entries(branch.properties)) {
        // The API server would apply a branch's default to every branch (`stat: p99` on a
        // success-rate check, which the document schema then refuses); the controller's parse
        // applies each branch's own defaults.
        const { default: _branchDefault, ...property } = branchProperty;
        const seen = properties[name];
        properties[name] =
          seen?.enum && property.enum
            ? { ...seen, enum: [...new Set([...seen.enum, ...property.enum])] }
            : seen === undefined || JSON.stringify(seen) === JSON.stringify(property)
              ? property
              : looser(seen, property);
      }
    }
    const required = branches.map((b) => b.required ?? Object.keys(b.properties));
    const disjoint = required.every((r, i) =>
      required.every((o, j) => i === j || !r.some((k) => o.includes(k))),
    );
    delete out[union];
    Object.assign(out, {
      type: 'object',
      properties,
      [disjoint ? 'oneOf' : 'anyOf']: required.map((r) => ({ required: r })),
    });
  }
  // A free-form value (z.unknown, a record of unknown): kept as written.
  if (out.type === undefined && !out.oneOf && !out.anyOf && !out.enum && !out.properties) {
    return { ...out, 'x-kubernetes-preserve-unknown-fields': true };
  }
  const free = (s) =>
    s &&
    Object.keys(s).every(
      (k) => k === 'x-kubernetes-preserve-unknown-fields' || k === 'description',
    );
  if (out.type === 'object' && out.additionalProperties && free(out.additionalProperties)) {
    delete out.additionalProperties;
    out['x-kubernetes-preserve-unknown-fields'] = true;
  }
  if (out.properties?.endpoints && out.properties?.run && out.properties?.image) {
    out['x-kubernetes-validations'] = [WORKLOAD_RULE];
  }
  return out;
}

function crd(kind, plural, spec, columns) {
  const specSchema = structural(z.toJSONSchema(spec, { io: 'input', unrepresentable: 'any' }));
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${GROUP}` },
    spec: {
      group: GROUP,
      names: {
        kind,
        plural,
        singular: kind.toLowerCase(),
        listKind: `${kind}List`,
        categories: ['graylane'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: 'v1alpha1',
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: columns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: specSchema,
                status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
              },
            },
          },
        },
      ],
    },
  };
}

export function renderCrds() {
  const age = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };
  const docs = [
    crd('Release', 'releases', ReleaseSpecSchema, [
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'Lane', type: 'string', jsonPath: '.spec.lane' },
      { name: 'Weight', type: 'integer', jsonPath: '.status.weight' },
      age,
    ]),
    crd('Entrypoint', 'entrypoints', EntrypointSpecSchema, [
      { name: 'Service', type: 'string', jsonPath: '.spec.service' },
      age,
    ]),
  ];
  const header =
    '# Generated by packages/controller/scripts/kubernetes-manifests.mjs from the document schemas; do not edit.\n';
  return header + docs.map((d) => stringify(d, { lineWidth: 0 })).join('---\n');
}

function main(argv) {
  const next = renderCrds();
  let current = '';
  try {
    current = readFileSync(OUT, 'utf8');
  } catch {}
  if (argv.includes('--write')) {
    if (current !== next) writeFileSync(OUT, next);
    process.stdout.write(`${OUT}: ${current === next ? 'up to date' : 'written'}\n`);
    return 0;
  }
  if (current !== next) {
    process.stderr.write(`${OUT} is stale (a document schema changed); run \`pnpm docs\`\n`);
    return 1;
  }
  process.stdout.write(`${OUT}: up to date\n`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = main(process.argv.slice(2));
}
