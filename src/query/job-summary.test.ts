import { describe, expect, it } from 'vitest';
import { SeriesBatchBuilder, STALE_NAN } from '../model/batch.js';
import { LabelMatcher, METRIC_NAME_LABEL } from '../model/labels.js';
import { MemoryStorage } from '../storage/index.js';
import { newestValue, newestValues } from './job-summary.js';

const T0 = Date.UTC(2026, 0, 1);
const SECOND = 1000;

describe('newestValues', () => {
  /**
   * Eight series with every case the bulk path splits: reporting every second to the end, every 20 s (the
   * newest sample may be outside the last 30 s … or not), stopped two minutes before the end (only the whole
   * window has it), ended by a staleness marker (inside and outside the last 30 s), with a sample after the
   * end, with nothing in the window at all, and a NaN that is not a staleness marker.
   */
  function fixture() {
    const storage = new MemoryStorage();
    const b = new SeriesBatchBuilder();
    /** `stale` appends a staleness marker after the points (kept out of the plain arrays: V8 may canonicalise its NaN). */
    const add = (gpu: string, points: [number, number][], staleAt?: number) => {
      const s = b.addSeries({ __name__: 'gpu_utilization_ratio', job_id: 'j', gpu });
      for (const [t, v] of points) s.add(T0 + t, v);
      if (staleAt !== undefined) s.add(T0 + staleAt, STALE_NAN);
    };
    const every = (step: number, to: number, f: (i: number) => number) =>
      Array.from({ length: Math.floor(to / step) + 1 }, (_, i) => [i * step, f(i)] as [number, number]);
    add(
      '0',
      every(SECOND, 600 * SECOND, (i) => i / 1000),
    );
    add(
      '1',
      every(45 * SECOND, 590 * SECOND, (i) => 0.1 * i),
    );
    add(
      '2',
      every(SECOND, 480 * SECOND, (i) => 0.5 + i / 10_000),
    );
    add(
      '3',
      every(SECOND, 300 * SECOND, () => 0.3),
      301 * SECOND,
    );
    add(
      '4',
      every(SECOND, 590 * SECOND, () => 0.4),
      595 * SECOND,
    );
    add(
      '5',
      every(SECOND, 700 * SECOND, (i) => i),
    );
    add('6', [[-30 * 60 * SECOND, 0.6]]);
    add('7', [...every(SECOND, 598 * SECOND, () => 0.7), [599 * SECOND, Number.NaN]]);
    storage.appender.append('t1', b.build());
    return storage;
  }

  it('gives what newestValue gives for each series, in the select order', async () => {
    const storage = fixture();
    const matchers = [
      new LabelMatcher('=', METRIC_NAME_LABEL, 'gpu_utilization_ratio'),
      new LabelMatcher('=', 'job_id', 'j'),
    ];
    for (const [from, end] of [
      [0, 600 * SECOND],
      [0, 650 * SECOND],
      [590 * SECOND, 600 * SECOND],
      [200 * SECOND, 300 * SECOND],
    ] as const) {
      const q = storage.querier('t1', T0 + from, T0 + end);
      const expected = (await q.select(matchers)).series
        .map((s) => ({ labels: s.labels, v: newestValue(s, T0 + from, T0 + end) }))
        .filter((x) => x.v !== undefined);
      const got = await newestValues(q, matchers, T0 + from, T0 + end);
      expect(got).toEqual(expected);
      // NaN compares equal in toEqual: check that the NaN series is there for the window that has it.
      if (end === 600 * SECOND && from === 0)
        expect(got.map((x) => x.labels.gpu)).toEqual(['0', '1', '2', '5', '7']);
    }
  });

  it('reads the whole window only for series with nothing in the last 30 s', async () => {
    const storage = fixture();
    const q = storage.querier('t1', T0, T0 + 600 * SECOND);
    const got = await newestValues(
      q,
      [new LabelMatcher('=', METRIC_NAME_LABEL, 'gpu_utilization_ratio')],
      T0,
      T0 + 600 * SECOND,
    );
    const byGpu = Object.fromEntries(got.map((x) => [x.labels.gpu, x.v]));
    expect(byGpu['0']).toBe(0.6);
    expect(byGpu['1']).toBeCloseTo(1.3); // at 585 s, within the last 30 s
    expect(byGpu['2']).toBeCloseTo(0.548); // stopped at 480 s: only the whole window has it
    expect(byGpu['5']).toBe(600); // the sample at 601 s and later are after the end
    expect(byGpu['7']).toBeNaN();
    expect('3' in byGpu || '4' in byGpu || '6' in byGpu).toBe(false);
  });
});
