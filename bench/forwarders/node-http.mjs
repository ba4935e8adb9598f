// Plain node:http: one keep-alive Agent, bodies piped both ways.
//
// .pipe() rather than stream.pipeline(): on Node 20 pipeline() measured at roughly half the
// small-request throughput in this setup (compare the two undici-request rows in the report), so
// the aborts pipeline would handle are wired by hand below.
import http from 'node:http';
import { clientResponseHeaders, failRequest, upstreamRequestHeaders } from './headers.mjs';

export function createForwarder(upstreamUrl) {
  const { hostname, port } = new URL(upstreamUrl);
  // maxSockets stays unbounded (the default) to match undici's Pool default.
  const agent = new http.Agent({ keepAlive: true });

  return function forward(req, res) {
    const upstreamReq = http.request(
      {
        agent,
        hostname,
        port,
        method: req.method,
        path: req.url,
        headers: upstreamRequestHeaders(req),
      },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode, clientResponseHeaders(upstreamRes.headers));
        // Upstream dying mid-body: reset the client rather than leave it waiting.
        upstreamRes.on('error', (err) => res.destroy(err));
        upstreamRes.pipe(res);
      },
    );
    upstreamReq.on('error', (err) => failRequest(res, err));
    // Client gone before its response finished: stop the upstream exchange too.
    res.on('close', () => res.writableFinished || upstreamReq.destroy());
    req.pipe(upstreamReq);
  };
}
