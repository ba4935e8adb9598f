import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

/**
 * The incoming request body, read only when an upstream attempt actually pulls it. undici destroys a
 * body stream whose request fails; this wrapper takes that without destroying the client's request,
 * and `pulled` tells whether any of the body went out, so a failed connect can retry with a new
 * wrapper over the same, untouched request.
 */
export class RequestBody extends Readable {
  pulled = false;
  private attached = false;
  private readonly onData = (chunk: Buffer) => {
    if (!this.push(chunk)) this.source.pause();
  };
  private readonly onEnd = () => this.push(null);
  private readonly onError = (error: Error) => this.destroy(error);

  constructor(private readonly source: IncomingMessage) {
    super();
  }

  override _read(): void {
    this.pulled = true;
    if (this.attached) {
      this.source.resume();
      return;
    }
    this.attached = true;
    this.source.on('data', this.onData);
    this.source.once('end', this.onEnd);
    this.source.once('error', this.onError);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.source.off('data', this.onData);
    this.source.off('end', this.onEnd);
    this.source.off('error', this.onError);
    if (this.attached) this.source.pause();
    callback(error);
  }
}
