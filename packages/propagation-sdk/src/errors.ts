import { ErrorCodes, GraylaneError } from '@graylane/lane-core';

/** Stable codes for what the SDK throws; tests and callers branch on these, never on message text. */
export const SdkErrorCodes = {
  /**
   * Strict mode only: an outbound call left with no lane while tagged requests were in flight, or in
   * the context of a request that had ended.
   */
  laneLeak: 'GRAYLANE_ERR_LANE_LEAK',
} as const;

/** `no-context`: no context while tagged requests are in flight; `stale-context`: its request ended. */
export type LeakKind = 'no-context' | 'stale-context';

export class LaneLeakError extends GraylaneError {
  /** `file:line:column` of the first frame outside the SDK, Node's internals and `node_modules`. */
  readonly callSite: string;
  readonly client: string;
  readonly kind: LeakKind;

  constructor(client: string, callSite: string, kind: LeakKind = 'no-context') {
    super(
      SdkErrorCodes.laneLeak,
      kind === 'no-context'
        ? `${client} call with no lane context while tagged requests are in flight (at ${callSite}); ` +
            'the async context was lost, or wrap intentional background calls in withLane("stable", fn)'
        : `${client} call in the context of a request that has ended (at ${callSite}); ` +
            'a queue or pool made at start-up runs it: bind the job with bindLane(job)',
    );
    this.name = 'LaneLeakError';
    this.client = client;
    this.callSite = callSite;
    this.kind = kind;
  }
}

export class SdkConfigError extends GraylaneError {
  constructor(message: string) {
    // lane-core's config code: one code for a setting that is wrong, whichever package reads it.
    super(ErrorCodes.config, message);
    this.name = 'SdkConfigError';
  }
}
