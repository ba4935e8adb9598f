// undici Pool.dispatch() with a raw handler of its own: the response head and body are written into
// the client response as undici hands them over, with no stream, promise or AsyncResource of
// undici's in between. The least a node:http + undici forwarder can do per request: the floor.
import { Pool } from 'undici';
import { clientResponseHeaders, failRequest, hasBody, upstreamRequestHeaders } from './headers.mjs';

class Relay {
  constructor(res) {
    this.res = res;
    this.controller = null;
    // The client's socket full: the upstream waits until it drains.
    this.resume = () => this.controller.resume();
  }

  onRequestStart(controller) {
    this.controller = controller;
  }

  onResponseStart(_controller, statusCode, headers) {
    if (statusCode < 200) return;
    this.res.writeHead(statusCode, clientResponseHeaders(headers));
  }

  onResponseData(controller, chunk) {
    if (this.res.write(chunk)) return;
    controller.pause();
    this.res.once('drain', this.resume);
  }

  onResponseEnd() {
    this.res.end();
  }

  onResponseError(_controller, err) {
    failRequest(this.res, err);
  }
}

export function createForwarder(upstreamUrl) {
  const pool = new Pool(upstreamUrl);

  return function forward(req, res) {
    const relay = new Relay(res);
    // The client gone: the upstream request goes too.
    res.once('close', () => {
      if (!res.writableFinished && relay.controller && !relay.controller.aborted) {
        relay.controller.abort(new Error('client closed'));
      }
    });
    pool.dispatch(
      {
        method: req.method,
        path: req.url,
        headers: upstreamRequestHeaders(req),
        body: hasBody(req) ? req : null,
      },
      relay,
    );
  };
}
