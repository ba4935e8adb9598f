import type { IncomingMessage, ServerResponse } from 'node:http';
import { runWithIncoming } from './incoming.js';

/**
 * Express middleware (Express 4 and 5, and Connect-style stacks): the rest of the chain, the route
 * handler and everything it awaits run in the request's lane. Mount it first, before body parsers,
 * so that their callbacks run in the lane too.
 *
 * Typed with Node's request and response so the SDK does not depend on Express's types.
 */
export type LaneMiddleware = (
  req: IncomingMessage,
  res: ServerResponse,
  next: (err?: unknown) => void,
) => void;

export function laneMiddleware(): LaneMiddleware {
  return function graylaneLane(req, res, next) {
    runWithIncoming(req, next, res);
  };
}
