import { type Dispatcher, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { type HeaderRecord, headersToRecord, objectCarrier } from '../carriers.js';
import { tagOutbound } from './tag.js';

/**
 * An undici interceptor that tags every request with the current lane, to stack with the others:
 * `new Agent().compose(laneInterceptor(), interceptors.retry())`. An explicit tag on the request
 * wins. The caller's headers are copied, never mutated.
 *
 * In strict mode a detected lane leak throws `LaneLeakError` from `dispatch`, which undici turns
 * into a rejected request.
 */
export function laneInterceptor(): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) =>
    function graylaneDispatch(opts, handler) {
      let headers: HeaderRecord | undefined;
      const carrierOf = () => {
        headers = headersToRecord(opts.headers);
        return objectCarrier(headers);
      };
      const outcome = tagOutbound(carrierOf, 'undici');
      if (outcome !== 'tagged' || headers === undefined) return dispatch(opts, handler);
      return dispatch({ ...opts, headers: headers as Record<string, string | string[]> }, handler);
    };
}

const composedMark = Symbol.for('graylane.sdk.dispatcher');

/**
 * Makes undici's global dispatcher (used by `undici.request`/`fetch`, and by Node's own `fetch`,
 * which shares it) tag every request. Returns a function that restores the previous dispatcher.
 */
export function installGlobalDispatcher(): () => void {
  const previous = getGlobalDispatcher();
  if ((previous as Dispatcher & { [composedMark]?: true })[composedMark]) return () => {};
  const composed = previous.compose(laneInterceptor()) as Dispatcher & { [composedMark]?: true };
  composed[composedMark] = true;
  setGlobalDispatcher(composed);
  return () => {
    if (getGlobalDispatcher() === composed) setGlobalDispatcher(previous);
  };
}
