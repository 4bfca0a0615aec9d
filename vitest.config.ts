import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'bench/**/*.test.ts'],
    // The cluster test runs alone: `npm run test:cluster` (vitest.cluster.config.ts).
    exclude: ['**/node_modules/**', 'dist/**', 'test/cluster/cluster.test.ts'],
    testTimeout: 30_000,
    // expect.poll waits for a page or a server to reach a state: on a loaded two-core machine 1 s (vitest's
    // default) is too short for a browser page to settle, and a poll that gives up early is a flaky test.
    expect: { poll: { timeout: 15_000 } },
    hookTimeout: 60_000,
    // Two cores: run test files two at a time so that end-to-end tests with child processes get CPU.
    maxWorkers: 2,
  },
});
