import { defineConfig } from 'vitest/config';
import { KUBERNETES_SUITE } from './vitest.kubernetes.config.js';

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
    // Kubernetes mode needs a real API server (built from source once): `pnpm test:kubernetes`.
    // kubernetes-objects.test.ts is pure (the canary Deployment's shape) and stays here.
    exclude: ['**/node_modules/**', ...KUBERNETES_SUITE],
    testTimeout: 30_000,
    // Hooks start controllers, proxies and apps; on a loaded machine that alone can take tens of seconds.
    hookTimeout: 60_000,
    // Integration tests start real processes on ephemeral ports; two cores do not like many at once.
    maxWorkers: 2,
  },
});
