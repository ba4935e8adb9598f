import { shared } from './state.js';

/**
 * The SDK's only output. Structured, one event per line; any pino-compatible logger can replace the
 * default, which writes JSON to stderr (library code never uses console.log).
 */
export interface SdkLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

export const stderrLogger: SdkLogger = {
  warn(fields, message) {
    const line = { level: 'warn', time: Date.now(), name: 'graylane-sdk', msg: message, ...fields };
    process.stderr.write(`${JSON.stringify(line)}\n`);
  },
};

export function setLogger(next: SdkLogger): void {
  shared.logger = next;
}

/** Bounds the memory of "already warned" keys; a process with unbounded call sites stops warning. */
const MAX_ONCE_KEYS = 1000;
const warned = shared.warned;

/** Warns the first time `key` is seen. Returns whether it warned. */
export function warnOnce(key: string, fields: Record<string, unknown>, message: string): boolean {
  if (warned.has(key) || warned.size >= MAX_ONCE_KEYS) return false;
  warned.add(key);
  try {
    (shared.logger ?? stderrLogger).warn(fields, message);
  } catch {
    // A broken logger must not break the call that is being instrumented.
  }
  return true;
}

/**
 * Instrumentation never throws into the app: an unexpected error is logged once per place and the
 * call goes on untagged.
 */
export function internalError(where: string, err: unknown): void {
  const error = err instanceof Error ? { name: err.name, message: err.message } : { value: err };
  warnOnce(
    `internal:${where}`,
    { where, error },
    'graylane sdk internal error; call goes on untagged',
  );
}

/** For tests: forget which keys were warned. */
export function resetWarnings(): void {
  warned.clear();
}
