// undici Pool.stream(): undici writes the response body straight into the client response
// returned by the factory, skipping the intermediate Readable that request() creates.
import { Pool } from 'undici';
import { clientResponseHeaders, failRequest, hasBody, upstreamRequestHeaders } from './headers.mjs';

/** Factory called once upstream headers arrive; `opaque` is the client response. */
function startResponse({ statusCode, headers, opaque: res }) {
  res.writeHead(statusCode, clientResponseHeaders(headers));
  return res;
}

export function createForwarder(upstreamUrl) {
  const pool = new Pool(upstreamUrl);

  return function forward(req, res) {
    pool.stream(
      {
        method: req.method,
        path: req.url,
        headers: upstreamRequestHeaders(req),
        body: hasBody(req) ? req : null,
        // Passing res as opaque keeps the factory a shared function instead of a per-request
        // closure.
        opaque: res,
      },
      startResponse,
      (err) => err && failRequest(res, err),
    );
  };
}
