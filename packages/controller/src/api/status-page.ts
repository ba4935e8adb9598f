import { readFile } from 'node:fs/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Controller } from '../controller.js';
import { TrafficView } from './traffic-view.js';

/** The page is a plain file beside the package: no build step, nothing to bundle. */
const PAGE = new URL('../../page/status.html', import.meta.url);
const WATCH_INTERVAL_MS = 1_000;

/**
 * The live status page (`GET /`) and what it reads: `GET /v1/overview` (releases, proxies, and the
 * proxies' fallbacks and ejections per service), with `?watch=true` a server-sent event stream of
 * it, one event per second. Reads need no token, like the rest of the API; the page's buttons call
 * the release actions with the token the user types in.
 */
export function registerStatusPage(app: FastifyInstance, controller: Controller): void {
  const traffic = new TrafficView(() => controller.metricsTargets());
  let page: string | undefined;

  const overview = async () => ({
    time: new Date().toISOString(),
    ...controller.info(),
    releases: Object.values(controller.view('Release')),
    traffic: await traffic.look(),
  });

  app.get('/', async (_request, reply) => {
    page ??= await readFile(PAGE, 'utf8');
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(page);
  });

  app.get('/v1/overview', async (request: FastifyRequest, reply: FastifyReply) => {
    if ((request.query as { watch?: string }).watch !== 'true') return await overview();
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    let open = true;
    const send = async () => {
      try {
        const data = JSON.stringify(await overview());
        if (open) res.write(`data: ${data}\n\n`);
      } catch (error) {
        if (open) res.write(`event: failure\ndata: ${JSON.stringify(String(error))}\n\n`);
      }
    };
    const timer = setInterval(send, WATCH_INTERVAL_MS);
    res.on('close', () => {
      open = false;
      clearInterval(timer);
    });
    await send();
  });
}
