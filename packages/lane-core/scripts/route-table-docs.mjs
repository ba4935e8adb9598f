#!/usr/bin/env node
/**
 * Renders the field tables of docs/route-table.md from the route-table zod schema, so the reference
 * cannot drift from what proxies accept. Reads the built package: run `pnpm build` first.
 *
 *   node packages/lane-core/scripts/route-table-docs.mjs --write   rewrite the generated block
 *   node packages/lane-core/scripts/route-table-docs.mjs --check   exit 1 when the block is stale
 *   --doc PATH                                                      another file (tests)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { RouteTableSchema } from '../dist/index.js';

export const START = '<!-- generated:fields:start -->';
export const END = '<!-- generated:fields:end -->';
const DEFAULT_DOC = fileURLToPath(new URL('../../../docs/route-table.md', import.meta.url));

/** What a map's keys are called in a path, by the field that holds the map. */
const KEY_NAMES = {
  services: '<service>',
  lanes: '<lane>',
  headers: '<header>',
  env: '<variable>',
  labels: '<label>',
  analysis: '<setting>',
};

const code = (text) => {
  const s = String(text);
  if (!s.includes('`')) return `\`${s}\``;
  // A code span that contains a backtick needs a longer fence, and padding only at a backtick edge.
  const pad = s.startsWith('`') || s.endsWith('`') ? ' ' : '';
  return `\`\`${pad}${s}${pad}\`\``;
};
const lowerFirst = (text) => text.charAt(0).toLowerCase() + text.slice(1);
const cell = (text) => String(text).replaceAll('\n', ' ').replaceAll('|', '\\|');

function resolve(root, schema) {
  if (!schema.$ref) return schema;
  const name = schema.$ref.replace(/^#\/\$defs\//, '');
  return { ...root.$defs?.[name], ...schema, $ref: undefined };
}

function isObject(schema) {
  return schema.type === 'object' && schema.properties !== undefined;
}

function isMap(schema) {
  return schema.type === 'object' && schema.properties === undefined;
}

/** A union of objects that each require one key: `{ exact } | { prefix } | { regex }`. */
function isOneKeyUnion(schema) {
  return (
    Array.isArray(schema.anyOf) &&
    schema.anyOf.every((s) => isObject(s) && Object.keys(s.properties).length === 1)
  );
}

function constraints(schema) {
  const out = [];
  if (schema.minLength === 1) out.push('non-empty');
  else if (schema.minLength !== undefined) out.push(`at least ${schema.minLength} characters`);
  if (schema.format === 'starts_with') {
    // zod renders startsWith('/') as the pattern `^\/.*`; show the prefix itself.
    out.push(`starts with ${code(schema.pattern.slice(1, -2).replace(/\\(.)/g, '$1'))}`);
  } else if (schema.pattern !== undefined) out.push(`matching ${code(schema.pattern)}`);
  const min = schema.minimum;
  const max = schema.maximum === Number.MAX_SAFE_INTEGER ? undefined : schema.maximum;
  if (min !== undefined && max !== undefined) out.push(`${min}..${max}`);
  else if (min !== undefined) out.push(`≥ ${min}`);
  else if (max !== undefined) out.push(`≤ ${max}`);
  return out.length === 0 ? '' : `, ${out.join(', ')}`;
}

/** Renders a field's type; nested objects are queued as sections of their own. */
function typeOf(root, raw, path, queue) {
  const schema = resolve(root, raw);
  if (schema.const !== undefined) return code(JSON.stringify(schema.const));
  if (schema.enum) return schema.enum.map((v) => code(v)).join(' or ');
  if (isOneKeyUnion(schema)) {
    queue.push({ path, schema });
    return `object with exactly one of ${schema.anyOf.map((s) => code(Object.keys(s.properties)[0])).join(', ')}; see ${code(path)}`;
  }
  if (isObject(schema)) {
    queue.push({ path, schema });
    return `object; see ${code(path)}`;
  }
  if (isMap(schema)) {
    const key = KEY_NAMES[path.split('.').at(-1)] ?? '<name>';
    const keys = resolve(root, schema.propertyNames ?? { type: 'string' });
    const keyText = keys.description
      ? `; keys: ${lowerFirst(keys.description.replace(/\.$/, ''))}`
      : '';
    const value = typeOf(root, schema.additionalProperties, `${path}.${key}`, queue);
    return `map of ${code(key)} → ${value}${keyText}`;
  }
  if (schema.type === 'array') {
    const item = typeOf(root, schema.items, `${path}[]`, queue);
    return item.startsWith('object') ? `list of objects${item.slice(6)}` : `list of ${item}`;
  }
  if (schema.type) return `${schema.type}${constraints(schema)}`;
  return 'any';
}

function presence(schema, name, required) {
  if (schema.default !== undefined) return `default ${code(JSON.stringify(schema.default))}`;
  return required.includes(name) ? 'required' : 'optional';
}

/** A table laid out the way `biome format` lays out markdown, so `pnpm format` leaves it alone. */
function table(header, rows) {
  const width = (text) => [...text].length;
  const widths = header.map((h, i) => Math.max(3, width(h), ...rows.map((r) => width(r[i]))));
  const line = (cells) =>
    `| ${cells.map((c, i) => c + ' '.repeat(widths[i] - width(c))).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

function renderSection(root, { path, schema }, queue) {
  const title = path === '' ? 'Top level' : code(path);
  const lines = [`### ${title}`, ''];
  if (path !== '' && schema.description) lines.push(cell(schema.description), '');
  const rows = [];
  const variants = isOneKeyUnion(schema) ? schema.anyOf : [schema];
  for (const variant of variants) {
    const required = isOneKeyUnion(schema) ? [] : (variant.required ?? []);
    for (const [name, rawField] of Object.entries(variant.properties)) {
      const field = resolve(root, rawField);
      const fieldPath = path === '' ? name : `${path}.${name}`;
      const type = typeOf(root, field, fieldPath, queue);
      const row = [code(name), type, presence(field, name, required), field.description ?? ''];
      rows.push(row.map(cell));
    }
  }
  lines.push(...table(['Field', 'Type', 'Required / default', 'Description'], rows));
  return lines.join('\n');
}

/**
 * The generated block: one table per object in the schema, top level first, in document order.
 * Any zod schema renders (the controller's documents reuse this for docs/controller.md).
 */
export function renderFields(schema = RouteTableSchema) {
  const root = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
  const queue = [{ path: '', schema: root }];
  const sections = [];
  while (queue.length > 0) {
    const next = queue.shift();
    const found = [];
    sections.push(renderSection(root, next, found));
    queue.unshift(...found);
  }
  return `${sections.join('\n\n')}\n`;
}

/** The doc with its generated block replaced; throws when the markers are missing. */
export function updateDoc(text, fields = renderFields()) {
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  if (start === -1 || end === -1 || end < start) {
    throw new Error(`markers ${START} … ${END} not found`);
  }
  return `${text.slice(0, start + START.length)}\n${fields}${text.slice(end)}`;
}

function sectionsOf(text) {
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  const block = start === -1 || end === -1 ? '' : text.slice(start + START.length, end);
  const sections = new Map();
  for (const part of block.split(/^### /m).slice(1)) {
    const newline = part.indexOf('\n');
    sections.set(part.slice(0, newline), part.slice(newline).trim());
  }
  return sections;
}

/** The headings of the sections that differ between the doc and what the schema renders. */
function staleSections(current, wanted) {
  const have = sectionsOf(current);
  const want = sectionsOf(wanted);
  const titles = new Set([...have.keys(), ...want.keys()]);
  const stale = [...titles].filter((t) => have.get(t) !== want.get(t));
  return stale.length === 0 ? ['(text around the tables)'] : stale;
}

function main(argv) {
  const mode = argv.includes('--write') ? 'write' : argv.includes('--check') ? 'check' : undefined;
  const docAt = argv.indexOf('--doc');
  const doc = docAt === -1 ? DEFAULT_DOC : argv[docAt + 1];
  if (mode === undefined || doc === undefined) {
    process.stderr.write('usage: route-table-docs.mjs --write|--check [--doc PATH]\n');
    return 2;
  }
  const text = readFileSync(doc, 'utf8');
  const next = updateDoc(text);
  if (next === text) {
    process.stdout.write(`${doc}: field tables up to date\n`);
    return 0;
  }
  if (mode === 'write') {
    writeFileSync(doc, next);
    process.stdout.write(`${doc}: field tables rewritten\n`);
    return 0;
  }
  const stale = staleSections(text, next);
  process.stderr.write(
    `${doc}: field tables are stale (the route-table schema changed); run \`pnpm docs\`\n` +
      stale.map((title) => `  stale: ${title}\n`).join(''),
  );
  return 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = main(process.argv.slice(2));
}
