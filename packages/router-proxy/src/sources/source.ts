import type { GraylaneError, RouteTable } from '@graylane/lane-core';

/** What a source tells the proxy: a table to serve, or one it refused (the last good one stays). */
export interface RouteTableEvents {
  /** Applies a table; a throw refuses it. */
  onTable(table: RouteTable): void;
  onError(error: GraylaneError): void;
}

/** Where the route table comes from: a watched file, or the controller's watch. */
export interface RouteTableSource {
  /**
   * Hands the first table to `onTable`, then keeps watching. A file source rejects when the file is
   * unreadable or invalid; the controller source resolves without a table when none came in time.
   */
  start(): Promise<void>;
  stop(): void;
}
