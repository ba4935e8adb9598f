import { describe, expect, it } from 'vitest';
import { ManagedProxy } from '../src/platform/managed-proxy.js';
import { tempDir } from './graylane.js';

const proxy = (gateway?: string, outbound?: string) =>
  new ManagedProxy({
    listeners: { ...(gateway ? { gateway } : {}), ...(outbound ? { outbound } : {}) },
    stateDir: tempDir(),
    url: () => 'http://127.0.0.1:7070',
  });

describe('the proxy local mode runs for --gateway/--outbound', () => {
  it.each([
    ['127.0.0.1:8080', 'http://127.0.0.1:8080'],
    ['0.0.0.0:8080', 'http://127.0.0.1:8080'],
    [':8080', 'http://127.0.0.1:8080'],
    // The flags take a bare port too (host 127.0.0.1).
    ['8080', 'http://127.0.0.1:8080'],
    ['[::1]:8080', 'http://[::1]:8080'],
  ])('--gateway %s: the analysis load is sent to %s', (gateway, url) => {
    expect(proxy(gateway).gatewayUrl()).toBe(url);
  });

  it.each(['127.0.0.1:15001', ':15001', '15001'])(
    '--outbound %s: apps get HTTP_PROXY on its port, and the port is kept from them',
    (outbound) => {
      const managed = proxy('8080', outbound);
      expect(managed.appEnv().HTTP_PROXY).toBe('http://127.0.0.1:15001');
      expect([...managed.reservedPorts()]).toEqual(expect.arrayContaining([8080, 15001]));
    },
  );
});
