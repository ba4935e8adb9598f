/**
 * Errors carry a stable `code` so that callers and tests branch on the code, never on message text
 * (the undici convention: `UND_ERR_CONNECT_TIMEOUT`).
 */
export const ErrorCodes = {
  invalidLane: 'GRAYLANE_ERR_INVALID_LANE',
  routeTable: 'GRAYLANE_ERR_ROUTE_TABLE',
  routeTableParse: 'GRAYLANE_ERR_ROUTE_TABLE_PARSE',
  config: 'GRAYLANE_ERR_CONFIG',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class GraylaneError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'GraylaneError';
    this.code = code;
  }
}

export class InvalidLaneError extends GraylaneError {
  readonly value: string;

  constructor(value: string, reason: string) {
    super(ErrorCodes.invalidLane, `invalid lane ${JSON.stringify(value)}: ${reason}`);
    this.name = 'InvalidLaneError';
    this.value = value;
  }
}

/** One problem in a document, located by a path such as `services.backend.lanes.Gray`. */
export interface Problem {
  path: string;
  message: string;
}

export function formatProblems(problems: readonly Problem[]): string {
  return problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join('\n');
}

/** A route table (or other config) refused as a whole; `problems` lists every reason with its path. */
export class RouteTableError extends GraylaneError {
  readonly problems: readonly Problem[];
  /** The file or other origin of the document, when known. */
  readonly source: string | undefined;

  constructor(problems: readonly Problem[], options?: ErrorOptions & { source?: string }) {
    const where = options?.source ? `${options.source}: ` : '';
    const first = problems[0] ? formatProblems([problems[0]]) : 'invalid route table';
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
    super(ErrorCodes.routeTable, `${where}${first}${more}`, options);
    this.name = 'RouteTableError';
    this.problems = problems;
    this.source = options?.source;
  }
}

/** Text that is neither JSON nor YAML, or an unreadable file. */
export class RouteTableParseError extends GraylaneError {
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCodes.routeTableParse, message, options);
    this.name = 'RouteTableParseError';
  }
}
