import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ControllerError } from '../errors.js';
import { isAlive, processStartTime } from '../platform/processes.js';
import { type ControllerState, emptyState, type StateStore } from './store.js';

const STATE_FILE = 'state.json';
const LOCK_FILE = 'controller.lock';
const TOKEN_FILE = 'token';

/** Writes a file so that a crash at any instant leaves the old content or the new, never a mix. */
export async function writeFileAtomic(path: string, text: string, mode = 0o600): Promise<void> {
  const temp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temp, 'w', mode);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, path);
  const dir = await open(join(path, '..'), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

function isState(value: unknown): value is ControllerState {
  const state = value as Partial<ControllerState> | null;
  return (
    typeof state === 'object' &&
    state !== null &&
    state.format === 1 &&
    Number.isInteger(state.revision) &&
    typeof state.services === 'object' &&
    typeof state.entrypoints === 'object' &&
    typeof state.releases === 'object' &&
    Array.isArray(state.processes)
  );
}

/**
 * Local mode's store: one JSON file in the state directory, replaced atomically on every change
 * (temp file, fsync, rename, fsync of the directory). A directory is owned by one controller at a
 * time: a lock file holds its pid and start time, and a lock whose process is gone is taken over.
 */
export class FileStateStore implements StateStore {
  readonly path: string;
  private writes = Promise.resolve();
  private locked = false;

  constructor(readonly dir: string) {
    this.path = join(dir, STATE_FILE);
  }

  /** Takes the directory's lock; throws GRAYLANE_ERR_LOCKED naming the other controller's pid. */
  async lock(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    const lockPath = join(this.dir, LOCK_FILE);
    const mine = JSON.stringify({ pid: process.pid, start: processStartTime(process.pid) ?? null });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const handle = await open(lockPath, 'wx', 0o600);
        await handle.writeFile(mine);
        await handle.close();
        this.locked = true;
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      let holder: { pid?: number; start?: string | null } = {};
      try {
        holder = JSON.parse(await readFile(lockPath, 'utf8'));
      } catch {
        // a lock file cut short by a crash: nobody holds it
      }
      if (
        typeof holder.pid === 'number' &&
        holder.pid !== process.pid &&
        isAlive(holder.pid, holder.start ?? undefined)
      ) {
        throw new ControllerError(
          'locked',
          `another controller (pid ${holder.pid}) uses the state directory ${this.dir}; stop it first or pick another --state-dir`,
        );
      }
      await unlink(lockPath).catch(() => {});
    }
    throw new ControllerError('locked', `cannot lock the state directory ${this.dir}`);
  }

  /** Reads the state; a missing file is a new controller, a damaged one stops the start (never a reset). */
  async load(): Promise<ControllerState> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
      throw new ControllerError(
        'state',
        `${this.path}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`,
      );
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new ControllerError(
        'state',
        `${this.path} is damaged (${(error as Error).message}); the controller will not start over it. Restore it, or move it away to start empty`,
      );
    }
    if (!isState(value)) {
      throw new ControllerError(
        'state',
        `${this.path} is not a graylane state file (format 1); the controller will not start over it`,
      );
    }
    return value;
  }

  /** Writes are queued, so the file always ends with the last state given. */
  save(state: ControllerState): Promise<void> {
    const text = `${JSON.stringify(state, null, 2)}\n`;
    const write = this.writes.then(() => writeFileAtomic(this.path, text));
    this.writes = write.catch(() => {});
    return write;
  }

  async close(): Promise<void> {
    await this.writes;
    if (this.locked) await unlink(join(this.dir, LOCK_FILE)).catch(() => {});
    this.locked = false;
  }
}

/** The write token: made on first start (mode 0600), read afterwards. `created` says to print it once. */
export async function loadOrCreateToken(
  dir: string,
): Promise<{ token: string; created: boolean; path: string }> {
  const path = join(dir, TOKEN_FILE);
  try {
    const token = (await readFile(path, 'utf8')).trim();
    if (token.length >= 16) return { token, created: false, path };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const token = randomBytes(24).toString('base64url');
  await writeFileAtomic(path, `${token}\n`, 0o600);
  return { token, created: true, path };
}

export async function readToken(dir: string): Promise<string | undefined> {
  try {
    return (await readFile(join(dir, TOKEN_FILE), 'utf8')).trim() || undefined;
  } catch {
    return undefined;
  }
}
