#!/usr/bin/env node
import { formatProblems, RouteTableError } from '@graylane/lane-core';
import { parseCli, proxyOptionsFrom, USAGE } from './config.js';
import { createLogger } from './logger.js';
import { GraylaneProxy } from './proxy.js';

function fail(message: string): never {
  process.stderr.write(`graylane-proxy: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  let cli: ReturnType<typeof parseCli>;
  try {
    cli = parseCli(process.argv.slice(2), process.env);
  } catch (error) {
    fail(`${(error as Error).message}\n${USAGE.split('\n')[0]} (see --help)`);
  }
  if (cli.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const logger = createLogger(cli.config.logLevel);
  let options: ReturnType<typeof proxyOptionsFrom>;
  try {
    options = proxyOptionsFrom(cli.config);
  } catch (error) {
    fail((error as Error).message);
  }
  const proxy = new GraylaneProxy({ ...options, logger });
  try {
    await proxy.start();
  } catch (error) {
    if (error instanceof RouteTableError) {
      const where = error.source ? `${error.source}: ` : '';
      fail(`${where}${error.problems.map((p) => formatProblems([p])).join('; ')}`);
    }
    fail(error instanceof Error ? (error.message.split('\n')[0] ?? error.name) : String(error));
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      // An operator who signals again wants it gone, drain or not.
      logger.warn({ signal }, 'second signal: stopping now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'draining');
    proxy.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
