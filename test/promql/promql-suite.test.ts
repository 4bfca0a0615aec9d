/**
 * Prometheus's own PromQL test files (testdata/promql, vendored from upstream) against trainwatch's engine
 * over trainwatch's TSDB (in memory). Every case must pass except those the runner classifies as needing what trainwatch
 * does not store (native histograms, per-sample start timestamps); experimental functions run like the rest.
 * The floors below are today's pass counts: a regression that turns passes into skips fails here too.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type FileResult,
  memoryTsdb,
  runTestFile,
  shardedMemoryTsdb,
} from '../../src/query/promql/test-script.js';

const DIR = path.resolve(import.meta.dirname, '..', '..', 'testdata', 'promql');
const FILES = readdirSync(DIR)
  .filter((f) => f.endsWith('.test'))
  .sort();

const MIN_PASSED: Record<string, number> = {
  'aggregators.test': 125,
  'collision.test': 2,
  'duration_expression.test': 59,
  'fill-modifier.test': 46,
  'functions.test': 323,
  'info.test': 52,
  'limit.test': 1,
  'name_label_dropping.test': 30,
  'native_histograms.test': 3,
  'range_queries.test': 16,
  'selectors.test': 31,
  'start_timestamps.test': 0,
  'subquery.test': 32,
  'type_and_unit.test': 58,
};

const totals = { passed: 0, failed: 0, skipped: 0 };

describe('Prometheus PromQL test files', () => {
  it('has every upstream file we count on', () => {
    expect(FILES).toEqual(Object.keys(MIN_PASSED).sort());
  });

  for (const file of FILES) {
    it(file, async () => {
      const r: FileResult = await runTestFile(path.join(DIR, file), {
        createStorage: memoryTsdb,
      });
      const by = Object.entries(r.skippedBy)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${n} ${k}`)
        .join(', ');
      process.stdout.write(
        `promql ${file}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped${by ? ` (${by})` : ''}\n`,
      );
      totals.passed += r.passed;
      totals.failed += r.failed;
      totals.skipped += r.skipped;
      const failures = r.cases
        .filter((c) => c.status === 'failed')
        .map((c) => `${file}:${c.line} ${c.query}: ${c.message}`);
      expect(failures).toEqual([]);
      expect(r.passed).toBeGreaterThanOrEqual(MIN_PASSED[file] ?? 0);
      for (const c of r.cases) {
        if (c.status !== 'skipped') continue;
        expect(['native-histogram', 'start-timestamps']).toContain(c.skipReason);
      }
      if (file === FILES[FILES.length - 1]) {
        process.stdout.write(
          `promql total: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped\n`,
        );
      }
    });
  }
});

/**
 * The same files over three storage shards read through storage ports, as the processor workers keep them
 * (`processor.workers: 3`): queries across shards must answer what one shard answers, case for case.
 */
describe('Prometheus PromQL test files over three storage shards', () => {
  for (const file of FILES) {
    it(file, async () => {
      const r = await runTestFile(path.join(DIR, file), { createStorage: () => shardedMemoryTsdb(3) });
      const failures = r.cases
        .filter((c) => c.status === 'failed')
        .map((c) => `${file}:${c.line} ${c.query}: ${c.message}`);
      expect(failures).toEqual([]);
      expect(r.passed).toBeGreaterThanOrEqual(MIN_PASSED[file] ?? 0);
    });
  }
});
