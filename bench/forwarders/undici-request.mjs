// undici Pool.request(): the promise API most code reaches for first. The incoming request is
// passed as the upstream body stream; the response body is sent back in one of two ways, because
// the choice matters more than the library (see bench/results/forwarding.md):
//   - `pipeline`: `await pipeline(body, res)` from node:stream/promises, the tidy idiom (and what
//     packages/router-proxy/src/upstream/forward.ts does today);
//   - `pipe`: `body.pipe(res)` with the error/abort wiring done by hand.
import { pipeline } from 'node:stream/promises';
import { Pool } from 'undici';
import { clientResponseHeaders, failRequest, hasBody, upstreamRequestHeaders } from './headers.mjs';

const SEND_BODY = {
  pipeline: (body, res) => pipeline(body, res).catch((err) => res.destroy(err)),
  pipe: (body, res) => {
    // Upstream dying mid-body resets the client; destroying the undici body when the client
    // leaves early aborts the upstream request.
    body.on('error', (err) => res.destroy(err));
    res.on('close', () => res.writableFinished || body.destroy());
    body.pipe(res);
  },
};

export function createForwarder(upstreamUrl, { responseBody = 'pipe' } = {}) {
  // One Pool per upstream origin, as the proxy would keep; connections unbounded by default.
  const pool = new Pool(upstreamUrl);
  const sendBody = SEND_BODY[responseBody];

  return async function forward(req, res) {
    let upstream;
    try {
      upstream = await pool.request({
        method: req.method,
        path: req.url,
        headers: upstreamRequestHeaders(req),
        body: hasBody(req) ? req : null,
      });
    } catch (err) {
      failRequest(res, err);
      return;
    }
    res.writeHead(upstream.statusCode, clientResponseHeaders(upstream.headers));
    await sendBody(upstream.body, res);
  };
}
