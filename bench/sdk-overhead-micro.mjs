// Per-call cost of the SDK's own code, in-process and without the network: what the SDK adds to a
// request on top of the AsyncLocalStorage machinery. Prints JSON; bench/sdk-overhead.mjs runs it.
import { EventEmitter } from 'node:events';

const sdk = await import('../packages/propagation-sdk/dist/index.js');
const N = 200_000;
const results = {};

function time(name, fn) {
  for (let i = 0; i < 5_000; i++) fn();
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) fn();
  results[name] = Number(process.hrtime.bigint() - start) / N;
}

const fakeFetch = sdk.wrapFetch(async () => undefined);
const dispatch = sdk.laneInterceptor()(() => true);
const incoming = (headers) => {
  const req = new EventEmitter();
  req.headers = headers;
  const res = new EventEmitter();
  sdk.runWithIncoming(req, () => undefined, res);
  res.emit('close');
};
const bareRequest = (headers) => {
  const req = new EventEmitter();
  req.headers = headers;
  const res = new EventEmitter();
  res.once('close', () => undefined);
  res.emit('close');
};

time('baseline: request-shaped objects only', () => bareRequest({ 'x-lane': 'gray' }));
time('inbound, tagged (runWithIncoming)', () => incoming({ 'x-lane': 'gray' }));
time('inbound, untagged', () => incoming({}));
sdk.withLane('gray', () => {
  time('fetch wrapper, tagged context', () =>
    fakeFetch('http://127.0.0.1/', { headers: { accept: '*/*' } }),
  );
  time('undici interceptor, tagged context', () =>
    dispatch({ path: '/', method: 'GET', headers: ['accept', '*/*'] }, {}),
  );
  time('getLane()', () => sdk.getLane());
});
time('fetch wrapper, no context', () => fakeFetch('http://127.0.0.1/'));
process.stdout.write(`${JSON.stringify(results)}\n`);
