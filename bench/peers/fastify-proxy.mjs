// `node bench/peers/fastify-proxy.mjs <upstream-url>`: @fastify/http-proxy as its README sets it up
// (it forwards with undici, keep-alive). Prints {port} as one JSON line; SIGTERM stops it.
import proxy from '@fastify/http-proxy';
import Fastify from 'fastify';

const app = Fastify({ logger: false });
await app.register(proxy, { upstream: process.argv[2] });
await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`${JSON.stringify({ port: app.server.address().port })}\n`);
process.on('SIGTERM', () => process.exit(0));
