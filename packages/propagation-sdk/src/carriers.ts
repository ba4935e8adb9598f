import type { ClientRequest } from 'node:http';
import type { HeaderCarrier } from '@graylane/lane-core';

/**
 * Adapters from the header shapes Node code meets to lane-core's `HeaderCarrier`. Names are looked up
 * case-insensitively, because app code writes `X-Lane` as often as `x-lane`.
 */

type HeaderValue = string | readonly string[] | undefined;
export type HeaderRecord = Record<string, string | string[] | number | undefined>;

function asHeaderValue(value: unknown): HeaderValue {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(String);
  return String(value);
}

function keysFor(record: HeaderRecord, name: string): string[] {
  return Object.keys(record).filter((k) => k === name || k.toLowerCase() === name);
}

/** A carrier over a plain object (node:http options, undici headers, message headers). */
export function objectCarrier(record: HeaderRecord): HeaderCarrier {
  return {
    get(name) {
      const keys = keysFor(record, name);
      if (keys.length === 0) return undefined;
      if (keys.length === 1) return asHeaderValue(record[keys[0]!]);
      return keys.flatMap((k) => asHeaderValue(record[k]) ?? []);
    },
    set(name, value) {
      for (const k of keysFor(record, name)) delete record[k];
      record[name] = value;
    },
    delete(name) {
      for (const k of keysFor(record, name)) delete record[k];
    },
  };
}

/** The `get`/`set`/`delete` shape shared by WHATWG `Headers` and `Map`. */
export interface HeadersLike {
  get(name: string): unknown;
  set(name: string, value: string): unknown;
  delete(name: string): unknown;
}

export function isHeadersLike(value: unknown): value is HeadersLike {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<Record<keyof HeadersLike, unknown>>;
  return (
    typeof v.get === 'function' && typeof v.set === 'function' && typeof v.delete === 'function'
  );
}

export function headersCarrier(headers: HeadersLike): HeaderCarrier {
  return {
    get: (name) => asHeaderValue(headers.get(name)),
    set: (name, value) => {
      headers.set(name, value);
    },
    delete: (name) => {
      headers.delete(name);
    },
  };
}

/** A carrier over a `ClientRequest` whose headers are not yet sent. */
export function clientRequestCarrier(req: ClientRequest): HeaderCarrier {
  return {
    get: (name) => asHeaderValue(req.getHeader(name)),
    set: (name, value) => {
      req.setHeader(name, value);
    },
    delete: (name) => {
      req.removeHeader(name);
    },
  };
}

/** Any carrier value the SDK accepts without a getter/setter: `Headers`, `Map`, or a plain object. */
export function carrierFor(value: object): HeaderCarrier {
  return isHeadersLike(value) ? headersCarrier(value) : objectCarrier(value as HeaderRecord);
}

/**
 * undici accepts headers as an object, a flat `[name, value, …]` array, or an iterable of pairs; this
 * returns a fresh object so the caller's headers are never mutated.
 */
export function headersToRecord(headers: unknown): HeaderRecord {
  const record: HeaderRecord = {};
  const add = (name: unknown, value: unknown) => {
    const key = String(name);
    const v = asHeaderValue(value);
    if (v === undefined) return;
    const prev = record[key];
    if (prev === undefined) record[key] = typeof v === 'string' ? v : [...v];
    else record[key] = [...(asHeaderValue(prev) ?? []), ...(typeof v === 'string' ? [v] : v)];
  };
  if (headers === undefined || headers === null) return record;
  if (Array.isArray(headers) && (headers.length === 0 || !Array.isArray(headers[0]))) {
    for (let i = 0; i + 1 < headers.length; i += 2) add(headers[i], headers[i + 1]);
  } else if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const pair of headers as Iterable<[unknown, unknown]>) add(pair[0], pair[1]);
  } else if (typeof headers === 'object') {
    for (const [k, v] of Object.entries(headers)) add(k, v);
  }
  return record;
}
