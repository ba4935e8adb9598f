import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { RouteTableInput } from '@graylane/lane-core';
import type { AppliedResult, WatcherInfo } from '../src/index.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/routetable-server.mjs', import.meta.url));

/** A controller stand-in in its own process (a RouteTablePublisher behind node:http), to kill -9. */
export interface ControllerProcess {
  child: ChildProcess;
  url: string;
  port: number;
  publish(table: RouteTableInput): Promise<void>;
  waitApplied(revision: number): Promise<AppliedResult>;
  watchers(): Promise<WatcherInfo[]>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

type Reply = Record<string, unknown>;

export async function startController(
  options: { port?: number; token?: string; heartbeatMs?: number } = {},
): Promise<ControllerProcess> {
  const child = fork(FIXTURE, [], {
    env: {
      PATH: process.env.PATH ?? '',
      PORT: String(options.port ?? 0),
      TOKEN: options.token ?? '',
      HEARTBEAT_MS: String(options.heartbeatMs ?? 5_000),
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = once(child, 'exit');
  const next = async (): Promise<Reply> => {
    const [reply] = (await Promise.race([once(child, 'message'), exited])) as [Reply];
    if (!reply || typeof reply !== 'object') throw new Error('the controller process exited');
    if (typeof reply.error === 'string') throw new Error(reply.error);
    return reply;
  };
  const ready = await next();
  return {
    child,
    url: ready.listening as string,
    port: ready.port as number,
    publish: async (table) => {
      child.send({ publish: { apiVersion: 'graylane/v1', ...table } });
      await next();
    },
    waitApplied: async (revision) => {
      child.send({ waitApplied: revision });
      const { applied, missing } = await next();
      return { applied, missing } as AppliedResult;
    },
    watchers: async () => {
      child.send({ watchers: true });
      return (await next()).watchers as WatcherInfo[];
    },
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}
