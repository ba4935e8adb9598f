import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { type GraylaneError, parseRouteTableText, RouteTableParseError } from '@graylane/lane-core';
import type { RouteTableEvents, RouteTableSource } from './source.js';

/**
 * A route table file, watched. The directory is watched rather than the file, so that both in-place
 * writes and atomic renames (a new inode) are seen; a slow poll covers file systems where fs.watch is
 * silent. Identical content is ignored, so an editor's double write applies once.
 */
export class FileRouteTableSource implements RouteTableSource {
  private readonly path: string;
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private lastText: string | undefined;
  private reading = Promise.resolve();

  constructor(
    path: string,
    private readonly events: RouteTableEvents,
    private readonly options: { debounceMs?: number; pollMs?: number } = {},
  ) {
    this.path = resolve(path);
  }

  /** Rejects (with the reason and path) when the file is unreadable or invalid. */
  async start(): Promise<void> {
    const text = await this.read();
    this.events.onTable(parseRouteTableText(text, this.path));
    this.lastText = text;
    this.watch();
  }

  stop(): void {
    this.watcher?.close();
    clearInterval(this.poll);
    clearTimeout(this.debounce);
  }

  private async read(): Promise<string> {
    try {
      return await readFile(this.path, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new RouteTableParseError(`${this.path}: ${code}`, { cause: error });
    }
  }

  private watch(): void {
    const name = basename(this.path);
    try {
      this.watcher = watch(dirname(this.path), (_event, file) => {
        if (file === null || file === name) this.schedule();
      });
      this.watcher.on('error', () => this.watcher?.close());
    } catch {
      this.watcher = undefined;
    }
    this.poll = setInterval(() => this.schedule(), this.options.pollMs ?? 1000);
    this.poll.unref();
  }

  private schedule(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.reading = this.reading.then(() => this.reload());
    }, this.options.debounceMs ?? 50);
    this.debounce.unref();
  }

  private async reload(): Promise<void> {
    let text: string;
    try {
      text = await this.read();
    } catch (error) {
      // A rename in progress briefly leaves no file; the next event or poll picks the new one up.
      if ((error as { cause?: NodeJS.ErrnoException }).cause?.code === 'ENOENT') return;
      this.events.onError(error as GraylaneError);
      return;
    }
    // An in-place write truncates first; the write that follows brings another event.
    if (text === this.lastText || text.trim() === '') return;
    this.lastText = text;
    try {
      this.events.onTable(parseRouteTableText(text, this.path));
    } catch (error) {
      this.events.onError(error as GraylaneError);
    }
  }
}
