import { formatPath, type Problem } from '@graylane/lane-core';
import { parseAllDocuments } from 'yaml';
import type { z } from 'zod';
import { invalid } from '../errors.js';
import {
  API_VERSION,
  EntrypointDocumentSchema,
  KINDS,
  type Kind,
  ReleaseDocumentSchema,
  ServiceDocumentSchema,
} from './schema.js';

export type AnyDocument =
  | z.output<typeof ServiceDocumentSchema>
  | z.output<typeof EntrypointDocumentSchema>
  | z.output<typeof ReleaseDocumentSchema>;

const SCHEMAS = {
  Service: ServiceDocumentSchema,
  Entrypoint: EntrypointDocumentSchema,
  Release: ReleaseDocumentSchema,
} as const;

function problemsOf(error: z.ZodError, prefix: string): Problem[] {
  return error.issues.map((issue) => ({
    path: [prefix, formatPath(issue.path)].filter(Boolean).join('.'),
    message: issue.message,
  }));
}

/** Validates one document of a known kind; throws GRAYLANE_ERR_INVALID_DOCUMENT naming the path. */
export function parseDocument<K extends Kind>(
  value: unknown,
  kind?: K,
  prefix = '',
): z.output<(typeof SCHEMAS)[K]> {
  const found = (value as { kind?: unknown } | null)?.kind;
  const wanted = kind ?? found;
  if (typeof wanted !== 'string' || !KINDS.includes(wanted as Kind)) {
    throw invalid([
      {
        path: [prefix, 'kind'].filter(Boolean).join('.'),
        message: `kind is one of ${KINDS.join(', ')}`,
      },
    ]);
  }
  if (kind !== undefined && found !== undefined && found !== kind) {
    throw invalid([
      { path: [prefix, 'kind'].filter(Boolean).join('.'), message: `expected kind ${kind}` },
    ]);
  }
  const schema = SCHEMAS[wanted as K];
  const parsed = schema.safeParse({ apiVersion: API_VERSION, kind: wanted, ...(value as object) });
  if (!parsed.success) throw invalid(problemsOf(parsed.error, prefix));
  return parsed.data as z.output<(typeof SCHEMAS)[K]>;
}

/**
 * The documents of a file: YAML with `---` between documents, a JSON object, a JSON array, or a
 * Kubernetes-style `{ kind: List, items }`. Every document is checked before any is returned.
 */
export function parseDocumentsText(text: string, source = 'input'): AnyDocument[] {
  let values: unknown[];
  try {
    const trimmed = text.trimStart();
    if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
      const value: unknown = JSON.parse(text);
      values = Array.isArray(value) ? value : [value];
    } else {
      values = parseAllDocuments(text, { uniqueKeys: true }).map((doc) => {
        if (doc.errors.length > 0) throw doc.errors[0];
        return doc.toJS() as unknown;
      });
    }
  } catch (error) {
    throw invalid([
      { path: source, message: (error as Error).message.split('\n')[0] ?? 'unreadable' },
    ]);
  }
  values = values.flatMap((value) => {
    const list = value as { kind?: unknown; items?: unknown };
    return list?.kind === 'List' && Array.isArray(list.items) ? list.items : [value];
  });
  values = values.filter((value) => value !== null && value !== undefined);
  if (values.length === 0) throw invalid([{ path: source, message: 'no documents' }]);
  const problems: Problem[] = [];
  const documents: AnyDocument[] = [];
  values.forEach((value, i) => {
    try {
      documents.push(parseDocument(value, undefined, values.length > 1 ? `[${i}]` : ''));
    } catch (error) {
      problems.push(...((error as { problems?: Problem[] }).problems ?? []));
    }
  });
  if (problems.length > 0) throw invalid(problems);
  return documents;
}
