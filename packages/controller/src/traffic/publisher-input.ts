import type { ServerResponse } from 'node:http';
import { formatPath } from '@graylane/lane-core';
import { z } from 'zod';
import { ControllerErrors } from '../errors.js';

/** What names a proxy: its `proxyId`, as graylane-proxy's config allows it. */
const ProxyId = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,128}$/, 'a proxy id: letters, digits, ".", "_" or "-", at most 128');

/** `GET /v1/routetable[?watch=true][&sinceRevision=N][&proxy=ID]` */
export const WatchQuerySchema = z.object({
  watch: z
    .enum(['true', 'false', '1', '0', ''])
    .optional()
    .transform((value) => value === 'true' || value === '1' || value === ''),
  sinceRevision: z
    .string()
    .regex(/^\d{1,15}$/, 'a revision: a whole number, 0 or more')
    .transform(Number)
    .optional(),
  proxy: ProxyId.optional(),
});

/** `POST /v1/routetable/acks`: a proxy applied this revision. */
export const AckSchema = z
  .object({
    proxy: ProxyId,
    revision: z.number().int().min(0),
  })
  .strict();

export function respondError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  path?: string,
): void {
  const body = `${JSON.stringify({ error: { code, message, ...(path === undefined ? {} : { path }) } })}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** 400 with the first problem and where it is (`body.revision`, `query.sinceRevision`). */
export function badRequest(res: ServerResponse, error: z.ZodError, where: 'body' | 'query'): void {
  const issue = error.issues[0];
  const path = formatPath([where, ...(issue?.path ?? [])]);
  respondError(
    res,
    ControllerErrors.badRequest.status,
    ControllerErrors.badRequest.code,
    issue?.message ?? 'bad request',
    path,
  );
}
