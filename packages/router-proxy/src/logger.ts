import { type LevelWithSilent, type Logger, pino } from 'pino';

export type { Logger };

export function createLogger(level: LevelWithSilent = 'info'): Logger {
  return pino({ name: 'graylane-proxy', level, base: { pid: process.pid } });
}
