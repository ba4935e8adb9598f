import { readFile } from 'node:fs/promises';
import { parseDocument, parse as parseYaml } from 'yaml';
import { RouteTableParseError } from '../errors.js';
import type { RouteTable } from './schema.js';
import { parseRouteTable } from './validate.js';

/**
 * JSON.parse keeps the last of two equal keys without a word, so a table could say one thing to a
 * reader and another to the proxy; the YAML parser (JSON is YAML) finds them.
 */
function refuseDuplicateKeys(text: string): void {
  const [error] = parseDocument(text, { uniqueKeys: true }).errors;
  if (error) throw error;
}

/** Parses JSON or YAML text (JSON is YAML, but its own parser gives better errors for JSON files). */
export function parseDocumentText(text: string, source = 'route table'): unknown {
  const trimmed = text.trimStart();
  try {
    if (trimmed.startsWith('{')) {
      const value: unknown = JSON.parse(text);
      refuseDuplicateKeys(text);
      return value;
    }
    return parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (error) {
    throw new RouteTableParseError(`${source}: ${(error as Error).message.split('\n')[0]}`, {
      cause: error,
    });
  }
}

export function parseRouteTableText(text: string, source?: string): RouteTable {
  return parseRouteTable(parseDocumentText(text, source), source);
}

export async function loadRouteTableFile(path: string): Promise<RouteTable> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new RouteTableParseError(
      `${path}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`,
      {
        cause: error,
      },
    );
  }
  return parseRouteTableText(text, path);
}
