#!/usr/bin/env node
/**
 * Renders the config-file block of the package README from the settings schema (src/settings.ts),
 * every field with its default and description, so the README cannot drift from what the proxy
 * reads. Reads the built package: run `pnpm build` first.
 *
 *   node packages/router-proxy/scripts/config-docs.mjs --write   rewrite the generated block
 *   node packages/router-proxy/scripts/config-docs.mjs --check   exit 1 when the block is stale
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ProxyConfigSchema } from '../dist/settings.js';

export const START = '<!-- generated:config:start -->';
export const END = '<!-- generated:config:end -->';
const README = fileURLToPath(new URL('../README.md', import.meta.url));

/** The schema under defaults, optionals and transforms: where an object's fields are. */
function unwrap(schema) {
  let current = schema;
  for (;;) {
    const def = current._zod.def;
    if (def.innerType) current = def.innerType;
    else if (def.type === 'pipe') current = def.in;
    else return current;
  }
}

function defaultOf(schema) {
  const result = schema.safeParse(undefined);
  return result.success ? result.data : undefined;
}

function yamlValue(value) {
  if (value && typeof value === 'object' && 'host' in value && 'port' in value) {
    return `${value.host}:${value.port}`;
  }
  if (Array.isArray(value)) return `[${value.join(', ')}]`;
  if (value && typeof value === 'object')
    return Object.keys(value).length === 0 ? '{}' : JSON.stringify(value);
  return String(value);
}

function render(shape, indent = '') {
  const lines = [];
  for (const [key, field] of Object.entries(shape)) {
    const note = field.description ? ` # ${field.description}` : '';
    const inner = unwrap(field);
    if (inner._zod.def.type === 'object' && inner._zod.def.shape) {
      lines.push(`${indent}${key}:${note}`);
      lines.push(...render(inner._zod.def.shape, `${indent}  `));
      continue;
    }
    const value = defaultOf(field);
    if (value === undefined) lines.push(`${indent}# ${key}:${note}`);
    else lines.push(`${indent}${key}: ${yamlValue(value)}${note}`);
  }
  return lines;
}

export function block() {
  return [START, '', '```yaml', ...render(ProxyConfigSchema._zod.def.shape), '```', '', END].join(
    '\n',
  );
}

export function rewrite(text) {
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  if (start === -1 || end === -1) throw new Error(`README has no ${START} … ${END} block`);
  return text.slice(0, start) + block() + text.slice(end + END.length);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const text = readFileSync(README, 'utf8');
  const next = rewrite(text);
  if (process.argv.includes('--check')) {
    if (next !== text) {
      process.stderr.write(
        'packages/router-proxy/README.md: the config block is stale; run `pnpm run docs`\n',
      );
      process.exit(1);
    }
  } else if (next !== text) {
    writeFileSync(README, next);
    process.stdout.write(`${README}: config block rewritten\n`);
  }
}
