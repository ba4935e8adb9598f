import type { RouteTable } from '@graylane/lane-core';
import { type CompiledTable, compileTable } from './compiled-table.js';

export interface TableInfo {
  revision: number;
  source: string;
  loadedAt: string;
}

/**
 * The route table being served. Swapping is one assignment: a request reads `current` once when it
 * starts and keeps that snapshot, so in-flight requests finish on the table they began with.
 */
export class TableHolder {
  private compiled: CompiledTable | undefined;
  private info: TableInfo | undefined;
  private readonly listeners = new Set<(next: CompiledTable, previous?: CompiledTable) => void>();

  get current(): CompiledTable | undefined {
    return this.compiled;
  }

  get loaded(): TableInfo | undefined {
    return this.info;
  }

  set(table: RouteTable, source: string): CompiledTable {
    const previous = this.compiled;
    const next = compileTable(table);
    this.compiled = next;
    this.info = { revision: table.revision, source, loadedAt: new Date().toISOString() };
    for (const listener of this.listeners) listener(next, previous);
    return next;
  }

  onChange(listener: (next: CompiledTable, previous?: CompiledTable) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
