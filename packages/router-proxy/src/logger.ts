import type { DestinationStream } from 'pino';
import { type LevelWithSilent, type Logger, pino } from 'pino';

export type { Logger };

export const REDACTED = '<redacted>';

/**
 * Where a secret can sit in what is logged: the route table's client-lanes secret, whether a line
 * carries the table, one entrypoint, or the secret object itself.
 */
const SECRET_PATHS = [
  'table.entrypoints[*].clientLanesSecret.value',
  'entrypoints[*].clientLanesSecret.value',
  'entrypoint.clientLanesSecret.value',
  'clientLanesSecret.value',
];

export function createLogger(
  level: LevelWithSilent = 'info',
  destination?: DestinationStream,
): Logger {
  const options = {
    name: 'graylane-proxy',
    level,
    base: { pid: process.pid },
    redact: { paths: SECRET_PATHS, censor: REDACTED },
  };
  return destination ? pino(options, destination) : pino(options);
}
