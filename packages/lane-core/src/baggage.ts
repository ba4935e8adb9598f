/**
 * W3C Baggage (https://www.w3.org/TR/baggage/) codec: enough of the spec to read one entry and to
 * rewrite one entry while keeping every other member byte for byte.
 */

/** The spec's limits; a header over either is dropped whole rather than parsed. */
export const BAGGAGE_MAX_BYTES = 8192;
export const BAGGAGE_MAX_MEMBERS = 180;

export interface BaggageMember {
  key: string;
  value: string;
  /** Raw `;`-separated properties after the value, without the leading `;`, if any. */
  properties?: string;
}

export type BaggageParse =
  | { ok: true; members: BaggageMember[] }
  | { ok: false; reason: 'too-large' | 'too-many-members' };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Joins repeated `baggage` headers the way HTTP joins repeated list headers. */
export function joinHeaderValues(
  value: string | readonly string[] | undefined,
): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return value;
  return value.length === 0 ? undefined : value.join(',');
}

function splitMembers(header: string): string[] {
  return header
    .split(',')
    .map((m) => m.trim())
    .filter((m) => m !== '');
}

function decodeValue(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

function parseMember(raw: string): BaggageMember | undefined {
  const semicolon = raw.indexOf(';');
  const pair = semicolon === -1 ? raw : raw.slice(0, semicolon);
  const eq = pair.indexOf('=');
  if (eq === -1) return undefined;
  const key = pair.slice(0, eq).trim();
  if (!TOKEN.test(key)) return undefined;
  const value = decodeValue(pair.slice(eq + 1).trim());
  if (value === undefined) return undefined;
  const member: BaggageMember = { key, value };
  if (semicolon !== -1) {
    const properties = raw.slice(semicolon + 1).trim();
    if (properties !== '') member.properties = properties;
  }
  return member;
}

/** Parses a baggage header. Malformed members are skipped, as the spec allows; limits drop the whole header. */
export function parseBaggage(header: string): BaggageParse {
  if (Buffer.byteLength(header) > BAGGAGE_MAX_BYTES) return { ok: false, reason: 'too-large' };
  const raw = splitMembers(header);
  if (raw.length > BAGGAGE_MAX_MEMBERS) return { ok: false, reason: 'too-many-members' };
  const members: BaggageMember[] = [];
  for (const m of raw) {
    const member = parseMember(m);
    if (member) members.push(member);
  }
  return { ok: true, members };
}

export function serializeBaggageMember(member: BaggageMember): string {
  const text = `${member.key}=${encodeURIComponent(member.value)}`;
  return member.properties ? `${text};${member.properties}` : text;
}

export function serializeBaggage(members: readonly BaggageMember[]): string {
  return members.map(serializeBaggageMember).join(',');
}

/** The value of `key` in a baggage header, or undefined when absent, malformed or over the limits. */
export function getBaggageValue(header: string | undefined, key: string): string | undefined {
  if (header === undefined) return undefined;
  const parsed = parseBaggage(header);
  if (!parsed.ok) return undefined;
  let found: string | undefined;
  for (const member of parsed.members) if (member.key === key) found = member.value;
  return found;
}

function memberKey(raw: string): string {
  const eq = raw.indexOf('=');
  return (eq === -1 ? raw : raw.slice(0, eq)).trim();
}

/**
 * Sets (or with `value` undefined, removes) one entry and keeps every other member as it was written.
 * A header over the spec's limits is dropped: the result holds only the entry being set.
 */
export function setBaggageValue(
  header: string | undefined,
  key: string,
  value: string | undefined,
): string | undefined {
  const others =
    header === undefined || Buffer.byteLength(header) > BAGGAGE_MAX_BYTES
      ? []
      : splitMembers(header).filter((m) => memberKey(m) !== key);
  if (others.length > BAGGAGE_MAX_MEMBERS) others.length = 0;
  const own = value === undefined ? [] : [serializeBaggageMember({ key, value })];
  dropOldestToFit(others, own);
  const members = [...others, ...own];
  return members.length === 0 ? undefined : members.join(',');
}

/**
 * Adding our entry to a header just under the limits would push it over them, and the next hop would
 * then drop the whole header, our entry included. The oldest members give way instead.
 */
function dropOldestToFit(others: string[], own: readonly string[]): void {
  const bytesOf = (list: readonly string[]) =>
    list.reduce((sum, m) => sum + Buffer.byteLength(m) + 1, 0);
  let bytes = bytesOf(others) + bytesOf(own) - 1;
  while (
    others.length > 0 &&
    (others.length + own.length > BAGGAGE_MAX_MEMBERS || bytes > BAGGAGE_MAX_BYTES)
  ) {
    bytes -= Buffer.byteLength(others.shift()!) + 1;
  }
}
