import { GraylaneError, type Problem } from '@graylane/lane-core';
import { ProxyErrorCodes } from '@graylane/router-proxy';

/**
 * Every error the controller answers with: a stable code and the HTTP status it maps to. The API
 * writes `{ "error": { "code", "message", "path"? } }`; the CLI prints the code and message.
 */
export const ControllerErrors = {
  // The same meaning as the proxy's: one code, declared once (in router-proxy).
  badRequest: { code: ProxyErrorCodes.badRequest, status: 400 },
  invalidDocument: { code: 'GRAYLANE_ERR_INVALID_DOCUMENT', status: 422 },
  unauthorized: { code: 'GRAYLANE_ERR_UNAUTHORIZED', status: 401 },
  notFound: { code: 'GRAYLANE_ERR_NOT_FOUND', status: 404 },
  conflict: { code: 'GRAYLANE_ERR_CONFLICT', status: 409 },
  invalidAction: { code: 'GRAYLANE_ERR_INVALID_ACTION', status: 409 },
  noRouteTable: { code: 'GRAYLANE_ERR_NO_ROUTE_TABLE', status: 503 },
  shuttingDown: { code: 'GRAYLANE_ERR_SHUTTING_DOWN', status: 503 },
  state: { code: 'GRAYLANE_ERR_STATE', status: 500 },
  locked: { code: 'GRAYLANE_ERR_LOCKED', status: 500 },
  internal: { code: ProxyErrorCodes.internal, status: 500 },
  /** The CLI's own: the API did not answer. */
  unreachable: { code: 'GRAYLANE_ERR_UNREACHABLE', status: 0 },
} as const;

export type ControllerErrorKind = keyof typeof ControllerErrors;

export class ControllerError extends GraylaneError {
  readonly status: number;
  readonly path: string | undefined;
  readonly problems: readonly Problem[];

  constructor(
    kind: ControllerErrorKind,
    message: string,
    options: ErrorOptions & { path?: string; problems?: readonly Problem[] } = {},
  ) {
    super(ControllerErrors[kind].code, message, options);
    this.name = 'ControllerError';
    this.status = ControllerErrors[kind].status;
    this.path = options.path ?? options.problems?.[0]?.path;
    this.problems = options.problems ?? [];
  }

  /** The JSON body the API answers with. */
  toJSON() {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.path ? { path: this.path } : {}),
        ...(this.problems.length > 1 ? { problems: this.problems } : {}),
      },
    };
  }
}

export function invalid(problems: readonly Problem[]): ControllerError {
  const first = problems[0];
  const text = first ? (first.path ? `${first.path}: ${first.message}` : first.message) : 'invalid';
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
  return new ControllerError('invalidDocument', `${text}${more}`, { problems });
}
