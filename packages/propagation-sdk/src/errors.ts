import { GraylaneError } from '@graylane/lane-core';

/** Stable codes for what the SDK throws; tests and callers branch on these, never on message text. */
export const SdkErrorCodes = {
  /** Strict mode only: an outbound call left with no lane while tagged requests were in flight. */
  laneLeak: 'GRAYLANE_ERR_LANE_LEAK',
  /** `configure()` was given a header name or baggage key that cannot be written on the wire. */
  config: 'GRAYLANE_ERR_CONFIG',
} as const;

export class LaneLeakError extends GraylaneError {
  /** `file:line:column` of the first frame outside the SDK and Node's internals. */
  readonly callSite: string;
  readonly client: string;

  constructor(client: string, callSite: string) {
    super(
      SdkErrorCodes.laneLeak,
      `${client} call with no lane context while tagged requests are in flight (at ${callSite}); ` +
        'the async context was lost, or wrap intentional background calls in withLane("stable", fn)',
    );
    this.name = 'LaneLeakError';
    this.client = client;
    this.callSite = callSite;
  }
}

export class SdkConfigError extends GraylaneError {
  constructor(message: string) {
    super(SdkErrorCodes.config, message);
    this.name = 'SdkConfigError';
  }
}
