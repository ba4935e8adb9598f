import { request } from 'undici';
import { ControllerErrors } from '../errors.js';

/** A failed API call: the server's error code and message, or why the server was not reached. */
export class ApiCallError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface ClientOptions {
  server: string;
  token?: string | undefined;
}

/** The controller's API as the CLI uses it. */
export class ApiClient {
  constructor(private readonly options: ClientOptions) {}

  async call<T = unknown>(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    body?: { json?: unknown; text?: string },
  ): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    let payload: string | undefined;
    if (body?.text !== undefined) {
      headers['content-type'] = 'application/yaml';
      payload = body.text;
    } else if (body?.json !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body.json);
    }
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(new URL(path, this.options.server), {
        method,
        headers,
        body: payload,
        headersTimeout: 30_000,
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreachable';
      throw new ApiCallError(
        ControllerErrors.unreachable.code,
        `cannot reach the controller at ${this.options.server} (${code}); is \`graylane controller\` running?`,
      );
    }
    const text = await res.body.text();
    const value: unknown = text ? safeJson(text) : undefined;
    if (res.statusCode >= 400) {
      const error = (
        value as { error?: { code?: string; message?: string; path?: string } } | undefined
      )?.error;
      const where = error?.path ? ` (at ${error.path})` : '';
      throw new ApiCallError(
        error?.code ?? `HTTP_${res.statusCode}`,
        `${error?.message ?? text}${where}`,
        res.statusCode,
      );
    }
    return value as T;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
