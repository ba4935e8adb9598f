import { defineConfig } from 'vitest/config';

/** Kubernetes mode against a real kube-apiserver + etcd (scripts/kube-test-env.sh): `pnpm test:kubernetes`. */
export default defineConfig({
  test: {
    include: ['packages/*/test/**/kubernetes.test.ts'],
    testTimeout: 120_000,
    // The first run on a machine builds kube-apiserver from source.
    hookTimeout: 1_800_000,
    maxWorkers: 1,
  },
});
