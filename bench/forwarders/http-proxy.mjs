// http-proxy with a keep-alive Agent, used the way its docs suggest: proxy.web() per request and
// a 'proxyRes' hook to rewrite response headers.
import http from 'node:http';
import httpProxy from 'http-proxy';
import { clientResponseHeaders, failRequest, upstreamRequestHeaders } from './headers.mjs';

export function createForwarder(upstreamUrl) {
  const proxy = httpProxy.createProxyServer({
    target: upstreamUrl,
    agent: new http.Agent({ keepAlive: true }),
  });
  // 'proxyRes' fires before http-proxy copies proxyRes.headers onto the client response, so
  // swapping the object here is the cheapest way to filter them and add the lane header.
  proxy.on('proxyRes', (proxyRes) => {
    proxyRes.headers = clientResponseHeaders(proxyRes.headers);
  });
  proxy.on('error', (err, _req, res) => failRequest(res, err));

  return function forward(req, res) {
    // http-proxy builds the outgoing headers by copying req.headers, so handing it the filtered
    // set costs one copy instead of a removeHeader() per hop-by-hop name in a 'proxyReq' hook.
    req.headers = upstreamRequestHeaders(req);
    proxy.web(req, res);
  };
}
