// The frontend of the example shop. It has no lane code at all: it is started with
// `node --import @graylane/sdk/register`, which runs each request in its lane, tags the call to the
// backend with it, and relays the backend's `x-lane-served` onto this response.
//
// It calls the backend by service name (`http://backend/`) through its sidecar: the controller
// gives every process it runs `HTTP_PROXY`, which undici's EnvHttpProxyAgent honours.
//
// Environment: PORT, VERSION, BACKEND_URL (default http://backend/).
import express from 'express';
import { EnvHttpProxyAgent, fetch, setGlobalDispatcher } from 'undici';

const { PORT = '8001', VERSION = 'v1', BACKEND_URL = 'http://backend/' } = process.env;
setGlobalDispatcher(new EnvHttpProxyAgent());

const app = express();
app.get('/healthz', (_req, res) => {
  res.send('ok');
});
app.get('/', async (_req, res) => {
  try {
    const answer = await fetch(BACKEND_URL);
    const body = await answer.text();
    res
      .status(answer.ok ? 200 : 502)
      .type('text/plain')
      .send(`frontend ${VERSION} -> ${body}`);
  } catch (error) {
    res
      .status(502)
      .type('text/plain')
      .send(`frontend ${VERSION} -> backend unreachable (${error.cause?.code ?? error.message})`);
  }
});

const server = app.listen(Number(PORT), '127.0.0.1', () => {
  console.log(`frontend ${VERSION} listening on ${PORT}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
