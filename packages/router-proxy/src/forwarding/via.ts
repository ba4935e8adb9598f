import type { IncomingMessage } from 'node:http';
import { ProxyErrorCodes, type Refusal, refusal } from '../http/respond.js';
import type { ProxyRuntime } from '../runtime.js';

function viaEntries(req: IncomingMessage): string[] {
  const via = req.headers.via;
  if (!via) return [];
  return via.split(',').map((entry) => entry.trim());
}

/**
 * Loop protection in the manner of `Via` (RFC 9110 §7.6.3): each pass adds this proxy's token, and a
 * request that already carries it `loopLimit` times is a loop, refused 508. Otherwise, the `Via`
 * value to forward.
 */
export function nextVia(runtime: ProxyRuntime, req: IncomingMessage): string | Refusal {
  // Most requests come with no Via: this hop's entry alone, made once.
  if (!req.headers.via) return runtime.viaEntry;
  const entries = viaEntries(req);
  const token = runtime.viaToken;
  const passes = entries.filter((entry) => entry.endsWith(` ${token}`)).length;
  if (passes >= runtime.options.loopLimit) {
    return refusal(508, ProxyErrorCodes.loop, `request passed this proxy ${passes} times`);
  }
  return [...entries, runtime.viaEntry].join(', ');
}
