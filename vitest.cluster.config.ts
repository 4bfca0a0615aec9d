import { defineConfig } from 'vitest/config';

/**
 * `npm run test:cluster`: the scaled-out deployment as separate processes on Kafka, PostgreSQL and
 * VictoriaMetrics (test/cluster/cluster.test.ts). Kept out of `npm test`'s run: it owns the machine's two cores
 * for a few minutes, and CI runs it once on its own (.ci/run).
 */
export default defineConfig({
  test: {
    include: ['test/cluster/cluster.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 300_000,
    maxWorkers: 1,
  },
});
