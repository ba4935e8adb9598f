import { EventEmitter } from 'node:events';

/**
 * A request's abort switch for undici, which takes an EventEmitter as its `signal`. An
 * AbortController is an EventTarget and cost over 1 % of the proxy's CPU in a profile, one per
 * request; this costs a fraction of that.
 */
export class AbortSwitch extends EventEmitter {
  aborted = false;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.emit('abort');
  }
}
