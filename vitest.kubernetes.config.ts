import { defineConfig } from 'vitest/config';

/** The test files that need the API server; every other file runs in `pnpm test`. */
export const KUBERNETES_SUITE = ['**/kubernetes.test.ts', '**/kubernetes-!(objects).test.ts'];

/** Kubernetes mode against a real kube-apiserver + etcd (scripts/kube-test-env.sh): `pnpm test:kubernetes`. */
export default defineConfig({
  test: {
    include: KUBERNETES_SUITE.map((glob) => `packages/*/test/${glob}`),
    testTimeout: 120_000,
    // The first run on a machine builds kube-apiserver from source.
    hookTimeout: 1_800_000,
    maxWorkers: 1,
  },
});
