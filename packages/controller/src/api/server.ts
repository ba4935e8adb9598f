import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Controller } from '../controller.js';
import { parseDocument, parseDocumentsText } from '../documents/parse.js';
import type { Kind } from '../documents/schema.js';
import { ControllerError, ControllerErrors } from '../errors.js';
import { RELEASE_ACTIONS, type ReleaseAction } from '../release/actions.js';
import type { Release } from '../release/status.js';
import type { RouteTablePublisher } from '../traffic/publisher.js';
import { registerStatusPage } from './status-page.js';

export interface ApiOptions {
  controller: Controller;
  /** Bearer token for writes. */
  token: () => string;
  /** When set, route-table reads need this bearer token (or the write token). */
  readToken?: string;
  logger: Logger;
}

const RESOURCES: Record<string, Kind> = {
  services: 'Service',
  entrypoints: 'Entrypoint',
  releases: 'Release',
};

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  const match = typeof header === 'string' ? /^Bearer\s+(.+)$/i.exec(header) : null;
  return match?.[1]?.trim();
}

function requireToken(request: FastifyRequest, ...accepted: Array<string | undefined>): void {
  const given = bearer(request);
  if (given === undefined)
    throw new ControllerError('unauthorized', 'this request needs Authorization: Bearer <token>');
  if (!accepted.some((token) => token !== undefined && sameSecret(given, token))) {
    throw new ControllerError('unauthorized', 'the bearer token is not valid');
  }
}

function kindOf(resource: string): Kind {
  const kind = RESOURCES[resource];
  if (!kind) throw new ControllerError('notFound', `no resource /v1/${resource}`);
  return kind;
}

/**
 * How long a client may take to send its request. Fastify turns Node's request deadline off and
 * Node checks its deadlines only every 30 s, so a stalled or trickling client (a slowloris, a
 * half-dead proxy) would hold a connection for as long as it liked. Responses have no deadline:
 * a route-table watch is a response that lasts for hours, kept alive by heartbeats.
 */
export interface ApiLimits {
  /** The whole request head, from the connection's first byte or the previous response. */
  headersTimeoutMs: number;
  /** The whole request, head and body. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection between requests. */
  keepAliveTimeoutMs: number;
}

export const API_LIMITS: ApiLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 65_000,
};

/** Fastify with graylane's error shape: every error is `{ error: { code, message, path? } }`. */
export function createApp(logger: Logger, limits: ApiLimits = API_LIMITS): FastifyInstance {
  const app: FastifyInstance = Fastify({
    loggerInstance: logger.child({ component: 'api' }, { level: 'warn' }) as FastifyInstance['log'],
    bodyLimit: 1024 * 1024,
    // Watch streams and the proxies' keep-alive connections would hold a close open forever.
    forceCloseConnections: true,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: {
      headersTimeout: limits.headersTimeoutMs,
      // Node enforces both deadlines on this tick; a quarter of the shorter keeps them honest.
      connectionsCheckingInterval: Math.max(
        50,
        Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4),
      ),
    },
  });

  app.addContentTypeParser(
    ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/plain'],
    { parseAs: 'string' },
    (_req, body, done) => done(null, body),
  );

  app.setErrorHandler((error: Error, _request, reply) => {
    if (error instanceof ControllerError) {
      void reply.code(error.status).send(error.toJSON());
      return;
    }
    const status = (error as { statusCode?: number }).statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      void reply
        .code(status)
        .send({ error: { code: ControllerErrors.badRequest.code, message: error.message } });
      return;
    }
    logger.error({ err: error }, 'API request failed');
    void reply.code(500).send({
      error: {
        code: ControllerErrors.internal.code,
        message: 'internal error; see the controller log',
      },
    });
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({
      error: {
        code: ControllerErrors.notFound.code,
        message: `no route ${request.method} ${request.url.split('?')[0]}`,
      },
    });
  });

  return app;
}

/** The route table and its watch (the contract with every proxy), behind the read check. */
export function registerRouteTableRoutes(
  app: FastifyInstance,
  publisher: RouteTablePublisher,
  read: (request: FastifyRequest) => void,
): void {
  app.get('/v1/routetable', (request: FastifyRequest, reply: FastifyReply) => {
    read(request);
    reply.hijack();
    const query = new URL(request.url, 'http://controller').searchParams;
    publisher.handleGet(request.raw, reply.raw, query);
  });
  app.post('/v1/routetable/acks', (request: FastifyRequest, reply: FastifyReply) => {
    read(request);
    reply.hijack();
    publisher.handleAck(request.raw, reply.raw, request.body);
  });
}

/**
 * The local-mode HTTP API. Built apart from listening (the fastify way): tests build it in-process,
 * `graylane controller` listens. JSON in and out; every error is `{ error: { code, message, path? } }`.
 */
export function buildApi(options: ApiOptions): FastifyInstance {
  const { controller } = options;
  const app = createApp(options.logger);

  const write = (request: FastifyRequest) => requireToken(request, options.token());
  const read = (request: FastifyRequest) => {
    if (options.readToken !== undefined) requireToken(request, options.readToken, options.token());
  };

  // Healthy once the state is loaded and the token exists, not merely once the port is bound.
  app.get('/healthz', async (_request, reply) =>
    controller.started ? { status: 'ok' } : reply.code(503).send({ status: 'starting' }),
  );
  registerStatusPage(app, controller);

  registerRouteTableRoutes(app, controller.publisher, read);

  app.get('/v1/status', async () => controller.info());

  app.post('/v1/apply', async (request, reply) => {
    write(request);
    const body = request.body;
    const documents =
      typeof body === 'string'
        ? parseDocumentsText(body)
        : parseDocumentsText(JSON.stringify(body ?? null));
    const results = await controller.apply(documents);
    return reply.code(200).send({ results });
  });

  app.get('/v1/:resource', async (request) => {
    const { resource } = request.params as { resource: string };
    const items = Object.values(controller.view(kindOf(resource)));
    return { items };
  });

  app.post('/v1/:resource', async (request, reply) => {
    write(request);
    const { resource } = request.params as { resource: string };
    const document = parseDocument(request.body, kindOf(resource));
    const [result] = await controller.apply([document]);
    return reply
      .code(result?.result === 'created' ? 201 : 200)
      .send(controller.view(document.kind)[document.metadata.name]);
  });

  app.get('/v1/:resource/:name', async (request) => {
    const { resource, name } = request.params as { resource: string; name: string };
    const kind = kindOf(resource);
    const doc = controller.view(kind)[name];
    if (!doc) throw new ControllerError('notFound', `${kind.toLowerCase()} ${name} not found`);
    return kind === 'Release' ? controller.describe(doc as Release) : doc;
  });

  app.put('/v1/:resource/:name', async (request) => {
    write(request);
    const { resource, name } = request.params as { resource: string; name: string };
    const document = parseDocument(request.body, kindOf(resource));
    if (document.metadata.name !== name) {
      throw new ControllerError(
        'badRequest',
        `metadata.name ${document.metadata.name} is not ${name}`,
        { path: 'metadata.name' },
      );
    }
    await controller.apply([document]);
    return controller.view(document.kind)[name];
  });

  app.delete('/v1/:resource/:name', async (request, reply) => {
    write(request);
    const { resource, name } = request.params as { resource: string; name: string };
    await controller.remove(kindOf(resource), name);
    return reply.code(204).send();
  });

  app.get('/v1/releases/:name/events', async (request) => {
    const { name } = request.params as { name: string };
    const release = controller.view('Release')[name] as Release | undefined;
    if (!release) throw new ControllerError('notFound', `release ${name} not found`);
    return { items: release.status.events };
  });

  app.post('/v1/releases/:name/:action', async (request) => {
    write(request);
    const { name, action } = request.params as { name: string; action: string };
    if (!RELEASE_ACTIONS.includes(action as ReleaseAction)) {
      throw new ControllerError(
        'notFound',
        `no action ${action}; one of ${RELEASE_ACTIONS.join(', ')}`,
      );
    }
    return controller.describe(await controller.act(name, action as ReleaseAction));
  });

  return app;
}
