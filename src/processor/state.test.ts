/**
 * The detector state file: version 2 (binary) round-trips the engine's state with its bus positions and
 * replaces a version-1 file; a version-1 file written by the earlier build (testdata/processor/state-v1.json,
 * see make-state-v1.ts there) is still restored, whole; a damaged file is reported, not silently ignored.
 */
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/helpers.js';
import { SeriesBatchBuilder } from '../model/batch.js';
import { DetectorSettings } from './detectors/config.js';
import { DetectorEngine, type EngineSnapshot } from './detectors/engine.js';
import { readState, STATE_FILE, STATE_FILE_V1, StateFormatError, writeState } from './state.js';

const FIXTURE = path.resolve(import.meta.dirname, '../../testdata/processor/state-v1.json');
const T0 = Date.UTC(2025, 0, 1);

function engine(): DetectorEngine {
  return new DetectorEngine(DetectorSettings.defaults(), { transition() {} }, { derived: true });
}

function plain(e: DetectorEngine): EngineSnapshot {
  return JSON.parse(JSON.stringify(e.snapshot())) as EngineSnapshot;
}

describe('detector state file', () => {
  it('restores a version-1 file written by the earlier build, every series, alert and job', () => {
    const dir = tempDir('tw-state-v1-');
    copyFileSync(FIXTURE, path.join(dir, STATE_FILE_V1));
    const file = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { engine: EngineSnapshot; savedAtMs: number };
    const saved = readState(dir)!;
    expect(saved.version).toBe(1);
    expect(saved.positions).toEqual([[0, 1234]]);
    expect(saved.savedAtMs).toBe(file.savedAtMs);
    const e = engine();
    expect(saved.restoreInto(e)).toEqual({ series: 316, alerts: 8 });
    const got = plain(e);
    // The memory-leak detector's state changed form (Sen's slope over buckets instead of a linear fit): a
    // version-1 file's is not continued, that detector learns again. Everything else is restored as it was.
    const withoutLeak = (series: EngineSnapshot['series']) =>
      series.map((x) => ({
        ...x,
        d: Object.fromEntries(Object.entries(x.d).filter(([k]) => !k.endsWith(':memory_leak'))),
      }));
    // State added since (kept now, absent from this file, learned again): a straggler member's noise, a loss
    // spike's residual scale, a job's phase and its last straggler comparison's rank count. Compared in the
    // file's form: the restored entries cut to the file's length, the jobs without the new keys.
    const inFileForm = (series: EngineSnapshot['series']) =>
      series.map((x, i) => ({
        ...x,
        d: Object.fromEntries(
          Object.entries(x.d).map(([k, v]) => {
            const before = file.engine.series[i]?.d[k];
            return [k, Array.isArray(v) && Array.isArray(before) ? v.slice(0, before.length) : v];
          }),
        ),
      }));
    expect(withoutLeak(inFileForm(got.series))).toEqual(withoutLeak(file.engine.series));
    expect(got.jobs.map(({ phase: _p, lastCompared: _c, ...rest }) => rest)).toEqual(file.engine.jobs);
    expect(got.alerts).toEqual(file.engine.alerts);
    expect(got.members).toEqual(file.engine.members);
    // Derived buckets: the same open partial sums (member numbers may be renumbered densely).
    const sums = (s: EngineSnapshot) =>
      (s.derived ?? [])
        .flatMap(([, job, d]) => d.open.map(([b, m, , sum, n]) => `${job} ${b} ${m} ${sum} ${n}`))
        .sort();
    expect(sums(got)).toEqual(sums(file.engine));
  });

  it('writes version 2 atomically in slices, reads it back whole, and supersedes a version-1 file', async () => {
    const dir = tempDir('tw-state-v2-');
    copyFileSync(FIXTURE, path.join(dir, STATE_FILE_V1));
    const e = engine();
    readState(dir)!.restoreInto(e);
    // Some more state of its own: a series with an open threshold alert.
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 'gpu_temperature_celsius', job_id: 'hot', node_id: 'n', gpu: '0' });
    for (let i = 0; i < 90; i++) b.add(T0 + i * 1000, 95);
    e.observe('default', b.build());
    let pauses = 0;
    const size = await writeState(
      dir,
      42,
      [
        [0, 7],
        [3, 9],
      ],
      e,
      async () => {
        pauses++;
      },
      64,
    );
    expect(size).toBe(readFileSync(path.join(dir, STATE_FILE)).length);
    expect(existsSync(path.join(dir, STATE_FILE_V1))).toBe(false);
    expect(existsSync(path.join(dir, `${STATE_FILE}.tmp`))).toBe(false);
    expect(pauses).toBeGreaterThan(0);

    const saved = readState(dir)!;
    expect(saved.version).toBe(2);
    expect(saved.savedAtMs).toBe(42);
    expect(saved.positions).toEqual([
      [0, 7],
      [3, 9],
    ]);
    const again = engine();
    expect(saved.restoreInto(again)).toEqual({ series: 317, alerts: 9 });
    const want = plain(e);
    const got = plain(again);
    expect(got.series).toEqual(want.series);
    expect(got.jobs).toEqual(want.jobs);
    expect(got.alerts).toEqual(want.alerts);
    expect(got.members).toEqual(want.members);
    expect(got.derived).toEqual(want.derived);
  });

  it('reports a damaged or foreign file instead of starting from nothing', async () => {
    const dir = tempDir('tw-state-bad-');
    await writeState(dir, 1, [[0, 1]], engine(), async () => {});
    const file = path.join(dir, STATE_FILE);
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, bytes.length - 3));
    expect(() => readState(dir)!.restoreInto(engine())).toThrow(StateFormatError);
    writeFileSync(file, Buffer.from('{"version":1}'));
    expect(() => readState(dir)).toThrow(/not a processor state file/);
  });
});
