import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'bench/**/*.test.ts'],
    // The cluster test runs alone: `npm run test:cluster` (vitest.cluster.config.ts).
    exclude: ['**/node_modules/**', 'dist/**', 'test/cluster/cluster.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: run test files two at a time so that end-to-end tests with child processes get CPU.
    maxWorkers: 2,
  },
});
