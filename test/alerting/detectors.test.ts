/**
 * Detector semantics as data: every `testdata/detectors/*.test` file is run through the detector engine and
 * its `expect` lines checked (src/processor/detectors/test-file.ts describes the format).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { DetectorSettings } from '../../src/processor/detectors/config.js';
import { DetectorEngine } from '../../src/processor/detectors/engine.js';
import {
  expandPoints,
  parseDetectorTest,
  runDetectorTest,
  TestFileError,
} from '../../src/processor/detectors/test-file.js';
import { REPO_ROOT } from '../support/helpers.js';

const DIR = path.join(REPO_ROOT, 'testdata', 'detectors');
const files = readdirSync(DIR).filter((f) => f.endsWith('.test'));

describe('detector test files', () => {
  it('exist', () => {
    expect(files.length).toBeGreaterThanOrEqual(15);
  });
  for (const file of files) {
    it(file, () => {
      const parsed = parseDetectorTest(readFileSync(path.join(DIR, file), 'utf8'));
      expect(parsed.expectations.length, 'a test file states at least one expectation').toBeGreaterThan(0);
      const result = runDetectorTest(parsed);
      expect(result.failures, `timeline:\n${result.timeline.join('\n')}`).toEqual([]);
    });
  }
});

describe('the test-file language', () => {
  it('expands the points notation like promtool', () => {
    expect(expandPoints('1 2+3x2 _ 4x1 _x2 5-1x1', 1)).toEqual([
      1,
      2,
      5,
      8,
      undefined,
      4,
      4,
      undefined,
      undefined,
      5,
      4,
    ]);
    const [nan, inf, ninf] = expandPoints('NaN Inf -Inf', 1);
    expect(Number.isNaN(nan)).toBe(true);
    expect([inf, ninf]).toEqual([Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]);
  });

  it('reports a broken file with its line number', () => {
    expect(() => parseDetectorTest('load 10s\n  x{a="b"} 1 2\nexpect alert X burning at 1m\n')).toThrow(
      /line 3: cannot parse expectation/,
    );
    expect(() => parseDetectorTest('frobnicate\n')).toThrow(TestFileError);
  });

  it('fails an expectation the detectors do not meet (the runner can fail)', () => {
    const parsed = parseDetectorTest(
      'load 10s\n  train_step{job_id="j",rank="0"} 0+1x20\nexpect alert TrainingStalled{job_id="j"} firing at 3m\n',
    );
    const result = runDetectorTest(parsed);
    expect(result.failures).toHaveLength(1);
    expect(result.failures[0]).toMatch(/line 3: expected alert TrainingStalled firing at 3m/);
  });
});

describe('whole-job absence', () => {
  it('follows arrival (the wall clock), not sample times: a backfill is not absence, silence is', () => {
    const changes: { name: string; change: string }[] = [];
    const engine = new DetectorEngine(DetectorSettings.defaults(), {
      transition: (a, change) => changes.push({ name: a.name, change }),
    });
    const wall = Date.UTC(2025, 5, 1);
    // 30 minutes of history delivered in 30 seconds of wall time.
    for (let i = 0; i < 300; i++) {
      engine.tick(wall + i * 100, true);
      const b = new SeriesBatchBuilder();
      b.addSeries({ __name__: 'train_step', job_id: 'backfilled', rank: '0' });
      for (let k = 0; k < 6; k++) b.add(wall - 30 * 60_000 + (i * 6 + k) * 1000, i * 6 + k);
      engine.observe('default', b.build());
    }
    expect(changes.filter((c) => c.name === 'JobMetricsAbsent')).toEqual([]);
    engine.tick(wall + 30_000 + 2 * 60_000, true);
    expect(changes).toContainEqual({ name: 'JobMetricsAbsent', change: 'firing' });
  });
});
