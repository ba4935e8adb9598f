import fc from 'fast-check';

const laneChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'.split(''));
const innerChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-'.split(''));

/**
 * Any valid DNS label: 1..63 characters, alphanumeric at both ends. `size: 'max'` spreads the
 * lengths over the whole range, so the 63-character edge is generated, not only short names.
 */
export const laneName = fc
  .tuple(laneChar, fc.array(innerChar, { maxLength: 61, size: 'max' }), laneChar, fc.boolean())
  .map(([first, inner, last, single]) => (single ? first : first + inner.join('') + last));

/** Characters one edit away from a valid label: the ones a loosened pattern would let in. */
const strayChar = fc.constantFrom(...'_.A Z:/,;=àé\t\u0000'.split(''));

/**
 * A valid label broken by one edit: a stray character inside (or at an end), a hyphen at an end, or
 * a length of 64 to 66. Every value is invalid by construction, whatever the validator says.
 */
export const nearMissLaneName = fc.oneof(
  fc
    .tuple(laneName, strayChar, fc.nat())
    .map(([lane, c, at]) => {
      const i = at % (lane.length + 1);
      return lane.slice(0, i) + c + lane.slice(i);
    })
    // Whitespace at an end is trimmed away by the parser; keep the stray character inside.
    .filter((value) => value.trim() === value),
  laneName.map((lane) => `-${lane}`),
  laneName.map((lane) => `${lane}-`),
  fc
    .tuple(fc.integer({ min: 64, max: 66 }), laneChar, innerChar)
    .map(([length, edge, inner]) => edge + inner.repeat(length - 2) + edge),
);

/** An RFC 7230 token: what a W3C baggage key is. */
export const token = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}$/);

/** Characters a baggage value may hold unencoded, less `%` so that decoding is the identity. */
export const octets = fc.stringMatching(/^[!#-$&-+\--:<-[\]-~]{0,12}$/);

/** `;`-separated properties, each `key` or `key=value`. */
export const properties = fc
  .array(fc.tuple(token, fc.option(octets, { nil: undefined })), { minLength: 1, maxLength: 3 })
  .map((props) => props.map(([k, v]) => (v === undefined ? k : `${k}=${v}`)).join(';'));

/** The error code a call throws, or undefined when it does not throw. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}
