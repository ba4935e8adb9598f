import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ErrorCodes,
  loadRouteTableFile,
  parseDocumentText,
  parseRouteTableText,
  RouteTableError,
  RouteTableParseError,
} from '../src/index.js';

const yamlTable = `
apiVersion: graylane/v1
revision: 7
services:
  backend:
    stable: { version: v1, endpoints: ["http://127.0.0.1:9001"] }
    lanes:
      gray: { version: v2, endpoints: ["http://127.0.0.1:9002"], fallback: stable }
  frontend:
    stable: { version: v1, endpoints: ["http://127.0.0.1:8001"] }
    lanes:
      gray: { version: v2, endpoints: ["http://127.0.0.1:8002"] }
entrypoints:
  - name: shop
    match: { pathPrefix: / }
    service: frontend
    clientLanes: known
    assign:
      - lane: gray
        when: { headers: { user-agent: { exact: foo } } }
      - lane: gray
        weight: 10
        sticky: cookie:graylane
`;

const jsonTable = JSON.stringify({
  apiVersion: 'graylane/v1',
  revision: 2,
  services: { backend: { stable: { endpoints: ['http://127.0.0.1:9001'] } } },
  entrypoints: [{ name: 'api', service: 'backend' }],
});

async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected a throw');
}

describe('parseRouteTableText', () => {
  it('reads the YAML reference example', () => {
    const table = parseRouteTableText(yamlTable);
    expect(table.revision).toBe(7);
    expect(table.services.backend?.lanes.gray?.endpoints).toEqual(['http://127.0.0.1:9002']);
    expect(table.entrypoints[0]?.assign[1]).toEqual({
      lane: 'gray',
      weight: 10,
      sticky: 'cookie:graylane',
    });
  });

  it('reads JSON, with leading whitespace', () => {
    const table = parseRouteTableText(`\n  ${jsonTable}`);
    expect(table.revision).toBe(2);
    expect(table.laneHeader).toBe('x-lane');
  });

  it('refuses text that is neither JSON nor YAML with GRAYLANE_ERR_ROUTE_TABLE_PARSE', () => {
    for (const text of ['{ "apiVersion": ', 'services: [unclosed', 'a: b: c']) {
      const error = thrown(() => parseRouteTableText(text, 'routes.yaml'));
      expect(error).toBeInstanceOf(RouteTableParseError);
      expect(error.code).toBe(ErrorCodes.routeTableParse);
      expect(error.message.startsWith('routes.yaml: ')).toBe(true);
    }
  });

  it('refuses YAML duplicate keys', () => {
    const text = 'apiVersion: graylane/v1\nrevision: 1\nrevision: 2\n';
    expect(thrown(() => parseRouteTableText(text)).code).toBe(ErrorCodes.routeTableParse);
    const nested = `${yamlTable}\n`.replace('  frontend:', '  backend:');
    expect(thrown(() => parseRouteTableText(nested)).code).toBe(ErrorCodes.routeTableParse);
  });

  it('refuses a well-formed but invalid table with GRAYLANE_ERR_ROUTE_TABLE and its source', () => {
    const text = yamlTable.replace('service: frontend', 'service: fronted');
    const error = thrown(() => parseRouteTableText(text, 'routes.yaml'));
    expect(error).toBeInstanceOf(RouteTableError);
    expect(error.code).toBe(ErrorCodes.routeTable);
    expect((error as RouteTableError).problems).toEqual([
      { path: 'entrypoints[0].service', message: 'unknown service "fronted"' },
    ]);
    expect(error.message).toBe('routes.yaml: entrypoints[0].service: unknown service "fronted"');
  });

  it('refuses an empty document as a table, not as a parse error', () => {
    expect(thrown(() => parseRouteTableText('')).code).toBe(ErrorCodes.routeTable);
  });

  it('reads YAML 1.2 scalars as YAML 1.2 does', () => {
    expect(parseDocumentText('a: yes\nb: 0x10\nc: "7"')).toEqual({ a: 'yes', b: 16, c: '7' });
  });
});

describe('loadRouteTableFile', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'graylane-routes-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads a YAML file', async () => {
    const path = join(dir, 'routes.yaml');
    await writeFile(path, yamlTable);
    expect((await loadRouteTableFile(path)).revision).toBe(7);
  });

  it('loads a JSON file', async () => {
    const path = join(dir, 'routes.json');
    await writeFile(path, jsonTable);
    expect((await loadRouteTableFile(path)).entrypoints[0]?.name).toBe('api');
  });

  it('names the file in a validation error', async () => {
    const path = join(dir, 'bad.yaml');
    await writeFile(path, yamlTable.replace('revision: 7', 'revision: 7.5'));
    const error = await rejection(loadRouteTableFile(path));
    expect(error.code).toBe(ErrorCodes.routeTable);
    expect(error.message).toBe(`${path}: revision: revision must be an integer`);
  });

  it('refuses a missing file with GRAYLANE_ERR_ROUTE_TABLE_PARSE', async () => {
    const path = join(dir, 'absent.yaml');
    const error = await rejection(loadRouteTableFile(path));
    expect(error).toBeInstanceOf(RouteTableParseError);
    expect(error.code).toBe(ErrorCodes.routeTableParse);
    expect(error.message).toBe(`${path}: ENOENT`);
  });

  it('refuses a directory with GRAYLANE_ERR_ROUTE_TABLE_PARSE', async () => {
    expect((await rejection(loadRouteTableFile(dir))).code).toBe(ErrorCodes.routeTableParse);
  });

  it('refuses a path it cannot open (a file used as a folder) with GRAYLANE_ERR_ROUTE_TABLE_PARSE', async () => {
    // Unreadable by permissions cannot be tested as root, which CI is; ENOTDIR fails for everyone.
    const file = join(dir, 'plain.yaml');
    await writeFile(file, yamlTable);
    const error = await rejection(loadRouteTableFile(join(file, 'routes.yaml')));
    expect(error.code).toBe(ErrorCodes.routeTableParse);
    expect(error.message).toBe(`${join(file, 'routes.yaml')}: ENOTDIR`);
  });
});
