import { describe, expect, it } from 'vitest';
import { RouteTableParseError } from '../src/errors.js';
import { parseDocumentText } from '../src/route-table/load.js';
import { validateRouteTable } from '../src/route-table/validate.js';

/** Issue 15 items 11 and 12: tables a proxy must not accept. */
describe('route table: regexes that backtrack, duplicate JSON keys', () => {
  const withRegex = (regex: string) => ({
    apiVersion: 'graylane/v1',
    revision: 1,
    services: { web: { stable: { endpoints: ['http://127.0.0.1:1'] }, lanes: { gray: {} } } },
    entrypoints: [
      {
        name: 'web',
        service: 'web',
        assign: [{ lane: 'gray', when: { headers: { 'user-agent': { regex } } } }],
      },
    ],
  });

  it('refuses a regex with nested quantifiers, naming its path', () => {
    for (const regex of ['^(a+)+$', '(x*)*y', '(a|aa)+$'.replace('|aa', '+')]) {
      const result = validateRouteTable(withRegex(regex));
      expect(result.ok, regex).toBe(false);
      if (!result.ok) {
        expect(result.problems[0]!.path).toBe(
          'entrypoints[0].assign[0].when.headers.user-agent.regex',
        );
        expect(result.problems[0]!.message).toMatch(/backtrack/);
      }
    }
  });

  it('accepts ordinary regexes', () => {
    for (const regex of ['^gray-tester', 'Mobile|Android', '^v\\d+\\.\\d+$', '(ab)+c']) {
      expect(validateRouteTable(withRegex(regex)).ok, regex).toBe(true);
    }
  });

  it('refuses duplicate keys in a JSON table, as it does in YAML', () => {
    const json = '{"apiVersion":"graylane/v1","revision":1,"revision":2}';
    expect(() => parseDocumentText(json, 'table.json')).toThrow(RouteTableParseError);
    expect(() => parseDocumentText(json, 'table.json')).toThrow(/table\.json: .*unique/);
    const nested = '{"apiVersion":"graylane/v1","revision":1,"services":{"a":{},"a":{}}}';
    expect(() => parseDocumentText(nested)).toThrow(RouteTableParseError);
    expect(parseDocumentText('{"revision": 1}')).toEqual({ revision: 1 });
  });
});
