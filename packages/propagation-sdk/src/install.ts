import { configure, type SdkOptionsInput } from './config.js';
import { installServerHooks } from './inbound/http.js';
import { installLibraryHooks } from './libraries/hooks.js';
import { internalError } from './log.js';
import { installFetch } from './outbound/fetch.js';
import { installGlobalDispatcher } from './outbound/global-dispatcher.js';
import { installHttpClient } from './outbound/http.js';

/** The fetch Node started with, before anything (this SDK, a test, an app) replaced it. */
const nativeFetch = globalThis.fetch;

export interface InstallOptions extends SdkOptionsInput {
  /** Every `http`/`https` server's requests run in their lane. Default true. */
  inbound?: boolean;
  /** `http.request/get`, `https.request/get`. Default true. */
  http?: boolean;
  /** `globalThis.fetch`. Default true. */
  fetch?: boolean;
  /** undici's global dispatcher (undici.request/fetch/stream…, and Node's fetch). Default true. */
  undici?: boolean;
  /** Module hooks for libraries that pool work from many requests (p-queue, DataLoader). Default true. */
  libraries?: boolean;
}

/** This module's URL, where the ESM loader hook resolves from; a CommonJS bundle has none. */
function ownUrl(): string | undefined {
  const url: unknown = import.meta.url;
  return typeof url === 'string' && url !== '' ? url : undefined;
}

/**
 * Installs the hooks the zero-code setup uses. Each hook is installed at most once per process;
 * a hook that fails to install is logged and skipped, never thrown. Returns an uninstall function.
 */
export function install(options: InstallOptions = {}): () => void {
  const {
    inbound = true,
    http = true,
    fetch = true,
    undici = true,
    libraries = true,
    ...config
  } = options;
  configure(config);
  const undo: Array<() => void> = [];
  // Node's own fetch sends through undici's global dispatcher: with that hooked, wrapping fetch too
  // would tag every call twice (the wrapper's Headers copy alone cost 1.4 µs a call).
  const fetchViaDispatcher = undici && globalThis.fetch === nativeFetch;
  const hooks: Array<[boolean, string, () => () => void]> = [
    [inbound, 'inbound', installServerHooks],
    [http, 'http', installHttpClient],
    [fetch && !fetchViaDispatcher, 'fetch', installFetch],
    [undici, 'undici', installGlobalDispatcher],
    [libraries, 'libraries', () => installLibraryHooks(ownUrl())],
  ];
  for (const [enabled, name, installHook] of hooks) {
    if (!enabled) continue;
    try {
      undo.push(installHook());
    } catch (err) {
      internalError(`install:${name}`, err);
    }
  }
  return () => {
    for (const fn of undo.reverse()) fn();
  };
}
