#!/usr/bin/env node
/**
 * Renders the field tables of docs/controller.md from the controller's document schemas (the same
 * renderer as docs/route-table.md), so the reference cannot drift from what `graylane apply` takes.
 * Reads the built package: run `pnpm build` first.
 *
 *   node packages/controller/scripts/controller-docs.mjs --write   rewrite the generated blocks
 *   node packages/controller/scripts/controller-docs.mjs --check   exit 1 when a block is stale
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderFields } from '../../lane-core/scripts/route-table-docs.mjs';
import {
  EntrypointDocumentSchema,
  ReleaseDocumentSchema,
  ServiceDocumentSchema,
} from '../dist/documents/schema.js';

const DOC = fileURLToPath(new URL('../../../docs/controller.md', import.meta.url));
const BLOCKS = {
  release: ReleaseDocumentSchema,
  service: ServiceDocumentSchema,
  entrypoint: EntrypointDocumentSchema,
};

/** The doc with every generated block replaced; throws when a block's markers are missing. */
export function updateDoc(text) {
  let out = text;
  for (const [name, schema] of Object.entries(BLOCKS)) {
    const start = `<!-- generated:${name}:start -->`;
    const end = `<!-- generated:${name}:end -->`;
    const from = out.indexOf(start);
    const to = out.indexOf(end);
    if (from === -1 || to === -1 || to < from)
      throw new Error(`markers ${start} … ${end} not found`);
    out = `${out.slice(0, from + start.length)}\n${renderFields(schema)}${out.slice(to)}`;
  }
  return out;
}

function main(argv) {
  const mode = argv.includes('--write') ? 'write' : argv.includes('--check') ? 'check' : undefined;
  if (mode === undefined) {
    process.stderr.write('usage: controller-docs.mjs --write|--check\n');
    return 2;
  }
  const text = readFileSync(DOC, 'utf8');
  const next = updateDoc(text);
  if (next === text) {
    process.stdout.write(`${DOC}: field tables up to date\n`);
    return 0;
  }
  if (mode === 'write') {
    writeFileSync(DOC, next);
    process.stdout.write(`${DOC}: field tables rewritten\n`);
    return 0;
  }
  process.stderr.write(
    `${DOC}: field tables are stale (a document schema changed); run \`pnpm docs\`\n`,
  );
  return 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = main(process.argv.slice(2));
}
