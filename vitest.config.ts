import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
    // Kubernetes mode needs a real API server (built from source once): `pnpm test:kubernetes`.
    exclude: ['**/node_modules/**', '**/kubernetes.test.ts'],
    testTimeout: 30_000,
    // Hooks start controllers, proxies and apps; on a loaded machine that alone can take tens of seconds.
    hookTimeout: 60_000,
    // Integration tests start real processes on ephemeral ports; two cores do not like many at once.
    maxWorkers: 2,
  },
});
