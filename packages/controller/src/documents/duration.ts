import { z } from 'zod';

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;

/** Parses `500ms`, `30s`, `2m`, `1h` (Go and Kubernetes style); undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (!match) return undefined;
  return Math.round(Number(match[1]) * (UNITS[match[2]!] ?? Number.NaN));
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1_000 === 0 && ms > 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}

/** A positive duration written as text (`30s`); the document keeps the text, code reads `parseDuration`. */
export const DurationSchema = z
  .string()
  .refine(
    (text) => (parseDuration(text) ?? 0) > 0,
    'a positive duration such as 500ms, 30s, 2m, 1h',
  )
  .describe('A duration: a number and a unit, `ms`, `s`, `m` or `h` (`30s`).');
