// The backend of the example shop. The SDK comes in as Express middleware (the explicit way; the
// frontend shows the zero-code way): mounted first, it runs every request in its lane, which is all
// a service needs when it calls nothing itself. Nothing else here knows about lanes.
//
// Environment: PORT, VERSION (what it answers), DELAY_MS (added to every answer) and ERROR_RATE
// (0..1, the share of requests answered 500), so a canary can be made slow or failing on purpose.
import { laneMiddleware } from '@graylane/sdk';
import express from 'express';

const { PORT = '9001', VERSION = 'v1', DELAY_MS = '0', ERROR_RATE = '0' } = process.env;
const delayMs = Number(DELAY_MS);
const errorRate = Number(ERROR_RATE);
if (!(delayMs >= 0) || !(errorRate >= 0 && errorRate <= 1)) {
  console.error(
    `backend: DELAY_MS must be >= 0 and ERROR_RATE within 0..1 (got ${DELAY_MS}, ${ERROR_RATE})`,
  );
  process.exit(2);
}

const app = express();
app.use(laneMiddleware());
app.get('/healthz', (_req, res) => {
  res.send('ok');
});
app.get('/', async (_req, res) => {
  if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
  if (Math.random() < errorRate) res.status(500).send(`backend ${VERSION} failed`);
  else res.type('text/plain').send(`backend ${VERSION}`);
});

const server = app.listen(Number(PORT), '127.0.0.1', () => {
  console.log(`backend ${VERSION} listening on ${PORT}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
