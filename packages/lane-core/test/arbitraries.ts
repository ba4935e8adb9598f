import fc from 'fast-check';

const laneChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'.split(''));
const innerChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-'.split(''));

/** Any valid DNS label: 1..63 characters, alphanumeric at both ends. */
export const laneName = fc
  .tuple(laneChar, fc.array(innerChar, { maxLength: 61 }), laneChar, fc.boolean())
  .map(([first, inner, last, single]) => (single ? first : first + inner.join('') + last));

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
