/**
 * trainwatch's own PromQL test files (testdata/promql-trainwatch), written from Prometheus's documented
 * semantics for what the vendored upstream files leave uncovered: staleness markers loaded with `stale`,
 * histogram_fraction and histogram_quantiles over classic histograms, the order of the series a
 * duplicate-series error names. Each file runs over one TSDB and over three shards read through storage ports;
 * every case must pass and none may be skipped.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { memoryTsdb, runTestFile, shardedMemoryTsdb } from '../../src/query/promql/test-script.js';

const DIR = path.resolve(import.meta.dirname, '..', '..', 'testdata', 'promql-trainwatch');
const FILES = readdirSync(DIR)
  .filter((f) => f.endsWith('.test'))
  .sort();

const STORAGES = [
  ['one TSDB', memoryTsdb],
  ['three shards', () => shardedMemoryTsdb(3)],
] as const;

describe('trainwatch PromQL test files', () => {
  it('finds the files', () => {
    expect(FILES).toEqual(
      expect.arrayContaining(['binary_duplicates.test', 'histogram_classic.test', 'staleness.test']),
    );
  });

  for (const [where, createStorage] of STORAGES) {
    for (const file of FILES) {
      it(`${file} over ${where}`, async () => {
        const r = await runTestFile(path.join(DIR, file), { createStorage });
        const problems = r.cases
          .filter((c) => c.status !== 'passed')
          .map((c) => `${file}:${c.line} ${c.query}: ${c.status} ${c.message ?? c.skipReason ?? ''}`);
        expect(problems).toEqual([]);
        expect(r.passed).toBeGreaterThan(0);
      });
    }
  }
});
