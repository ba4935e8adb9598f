import type { RouteTable, RouteTableInput } from '@graylane/lane-core';

export type DesiredRouting = Omit<RouteTableInput, 'revision'>;

/**
 * Puts routing into effect on one data plane (Flagger's router.Interface). Local mode: the route
 * table served to graylane-proxy watchers. The release core knows only this interface.
 */
export interface TrafficRouter {
  readonly name: string;
  /** Puts this routing into effect; the revision that carries it (the same one when nothing changed). */
  apply(desired: DesiredRouting): Promise<number>;
  /** Whether every data-plane instance serves `revision` or a later one. */
  applied(revision: number): boolean;
  /** What is in effect now. */
  current(): RouteTable | undefined;
  /** Each data-plane instance and the revision it serves, for status. */
  instances(): Array<{ id: string; appliedRevision: number | undefined }>;
  close(): void;
}
