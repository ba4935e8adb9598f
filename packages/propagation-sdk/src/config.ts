import {
  DEFAULT_BAGGAGE_KEY,
  DEFAULT_LANE_HEADER,
  LANE_SERVED_HEADER,
  type TagOptions,
} from '@graylane/lane-core';
import { SdkConfigError } from './errors.js';
import { type SdkLogger, setLogger, warnOnce } from './log.js';
import { shared } from './state.js';

/** The provenance header the proxies write (`service=lane[;fallback=reason]` hops) and the SDK relays. */
export { LANE_SERVED_HEADER };

export interface SdkOptions extends TagOptions {
  /** Throw `LaneLeakError` on a detected lane leak instead of counting and warning. For tests. */
  strict: boolean;
  /** Count and warn about outbound calls that lost the request context. On by default. */
  leakDetection: boolean;
  /** The provenance header relayed from outbound responses to the inbound one. `x-lane-served`. */
  servedHeader: string;
}

export type SdkOptionsInput = Partial<SdkOptions> & { logger?: SdkLogger };

const HEADER_TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const BAGGAGE_KEY = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

const defaults: SdkOptions = {
  laneHeader: DEFAULT_LANE_HEADER,
  baggageKey: DEFAULT_BAGGAGE_KEY,
  strict: false,
  leakDetection: true,
  servedHeader: LANE_SERVED_HEADER,
};

/** The options every hook reads on each call, so `configure()` applies to hooks already installed. */
export function getConfig(): SdkOptions {
  // biome-ignore lint/suspicious/noAssignInExpressions: the first read in the process sets the defaults
  return (shared.options ??= { ...defaults });
}

/** Sets options; an explicit call with a bad header name or key throws `SdkConfigError`. */
export function configure(input: SdkOptionsInput = {}): SdkOptions {
  const { logger, ...options } = input;
  const next: SdkOptions = { ...getConfig() };
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined) Object.assign(next, { [key]: value });
  }
  next.laneHeader = next.laneHeader.toLowerCase();
  if (!HEADER_TOKEN.test(next.laneHeader)) {
    throw new SdkConfigError(`laneHeader ${JSON.stringify(next.laneHeader)} is not a header name`);
  }
  if (next.laneHeader === 'baggage') throw new SdkConfigError('laneHeader cannot be "baggage"');
  next.servedHeader = next.servedHeader.toLowerCase();
  if (!HEADER_TOKEN.test(next.servedHeader)) {
    throw new SdkConfigError(
      `servedHeader ${JSON.stringify(next.servedHeader)} is not a header name`,
    );
  }
  if (next.servedHeader === 'baggage' || next.servedHeader === next.laneHeader) {
    throw new SdkConfigError('servedHeader cannot be "baggage" or the lane header');
  }
  if (!BAGGAGE_KEY.test(next.baggageKey)) {
    throw new SdkConfigError(`baggageKey ${JSON.stringify(next.baggageKey)} is not a baggage key`);
  }
  if (logger) setLogger(logger);
  shared.options = next;
  return next;
}

/** For tests: back to the defaults. */
export function resetConfig(): void {
  shared.options = { ...defaults };
}

function flag(value: string | undefined): boolean | undefined {
  if (value === undefined || value === '') return undefined;
  return !['0', 'false', 'no', 'off'].includes(value.toLowerCase());
}

/** Which environment variable sets which option. */
export const ENV_VARIABLES = {
  laneHeader: 'GRAYLANE_LANE_HEADER',
  baggageKey: 'GRAYLANE_BAGGAGE_KEY',
  servedHeader: 'GRAYLANE_SERVED_HEADER',
  strict: 'GRAYLANE_STRICT',
  leakDetection: 'GRAYLANE_LEAK_DETECTION',
} as const satisfies Record<keyof SdkOptions, string>;

/**
 * Options from the environment (`GRAYLANE_LANE_HEADER`, `GRAYLANE_BAGGAGE_KEY`, `GRAYLANE_STRICT`,
 * `GRAYLANE_LEAK_DETECTION`, `GRAYLANE_SERVED_HEADER`); unset variables keep the defaults.
 */
export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): SdkOptionsInput {
  const options: SdkOptionsInput = {};
  if (env.GRAYLANE_LANE_HEADER) options.laneHeader = env.GRAYLANE_LANE_HEADER;
  if (env.GRAYLANE_BAGGAGE_KEY) options.baggageKey = env.GRAYLANE_BAGGAGE_KEY;
  if (env.GRAYLANE_SERVED_HEADER) options.servedHeader = env.GRAYLANE_SERVED_HEADER;
  const strict = flag(env.GRAYLANE_STRICT);
  if (strict !== undefined) options.strict = strict;
  const leakDetection = flag(env.GRAYLANE_LEAK_DETECTION);
  if (leakDetection !== undefined) options.leakDetection = leakDetection;
  return options;
}

/**
 * Applies the environment one variable at a time, so that a bad value keeps the default for that
 * variable only (a typo in `GRAYLANE_SERVED_HEADER` must not also drop a valid lane header). Each
 * refused variable is logged by name. Returns the names refused.
 */
export function configureFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  const refused: string[] = [];
  const options = optionsFromEnv(env);
  // The lane header first: the served header is checked against it.
  for (const key of Object.keys(ENV_VARIABLES) as Array<keyof SdkOptions>) {
    if (options[key] === undefined) continue;
    try {
      configure({ [key]: options[key] });
    } catch (err) {
      const variable = ENV_VARIABLES[key];
      refused.push(variable);
      warnOnce(
        `config:${variable}`,
        { variable, value: env[variable], error: err instanceof Error ? err.message : String(err) },
        `graylane sdk: ${variable} refused, its default is kept`,
      );
    }
  }
  return refused;
}
