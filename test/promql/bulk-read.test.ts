/**
 * Selectors read a series in bulk (storage `readSamples`) when consecutive windows overlap, and through its
 * iterator otherwise. Both must give the same answer: the same queries over data with staleness markers,
 * NaN values, gaps longer than the lookback and irregular spacing are run once as is and once through a
 * querier that offers no bulk reads, and must agree bit for bit (NaN payloads aside, values compare with
 * Object.is), along with the samples-read count. The steps and ranges cover both paths.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { SeriesBatchBuilder, STALE_NAN } from '../../src/model/batch.js';
import {
  PromqlEngine,
  type Queryable,
  type QueryResult,
  tenantQueryable,
} from '../../src/query/promql/index.js';
import { memoryTsdb } from '../../src/query/promql/test-script.js';
import type { Querier, SelectedSeries } from '../../src/storage/index.js';

const T0 = 1_700_000_000_000;

/** The same querier without bulk reads: the engine falls back to iterators. */
function withoutBulkReads(source: Queryable): Queryable {
  return {
    querier(minT: number, maxT: number): Querier {
      const q = source.querier(minT, maxT);
      return {
        select: async (matchers, hints) => {
          const set = await q.select(matchers, hints);
          return {
            ...set,
            series: set.series.map((s): SelectedSeries => {
              expect(s.readSamples).toBeDefined();
              return { labels: s.labels, iterator: () => s.iterator() };
            }),
          };
        },
        labelNames: (m) => q.labelNames(m),
        labelValues: (n, m) => q.labelValues(n, m),
      };
    },
  };
}

function flatten(r: QueryResult): unknown {
  const v = r.value;
  if (v.resultType === 'matrix') {
    return v.series.map((s) => ({
      labels: s.labels,
      t: [...s.timestamps],
      v: [...s.values].map((x) => (Object.is(x, -0) ? '-0' : Number.isNaN(x) ? 'NaN' : x)),
    }));
  }
  if (v.resultType === 'vector') {
    return v.samples.map((s) => ({ labels: s.labels, t: s.t, v: Number.isNaN(s.v) ? 'NaN' : s.v }));
  }
  return v;
}

describe('bulk series reads answer as the iterators do', () => {
  let bulk: Queryable;
  let iterated: Queryable;
  beforeAll(async () => {
    const storage = await memoryTsdb();
    const b = new SeriesBatchBuilder(1000);
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    for (let s = 0; s < 6; s++) {
      b.addSeries({ __name__: 'm', s: String(s) });
      let t = T0 + s * 700;
      let c = 0;
      for (let i = 0; i < 80; i++) {
        // Irregular spacing, a gap longer than the lookback now and then, markers and NaN.
        t += rnd() < 0.05 ? 400_000 : 1000 + Math.floor(rnd() * 9000);
        const r = rnd();
        c += Math.floor(rnd() * 100);
        b.add(t, r < 0.08 ? STALE_NAN : r < 0.12 ? Number.NaN : c);
      }
    }
    storage.appender.append('t', b.build());
    bulk = tenantQueryable(storage, 't');
    iterated = withoutBulkReads(bulk);
  });

  const queries = [
    'm',
    'timestamp(m)',
    'm offset 20s',
    'rate(m[30s])',
    'count_over_time(m[25s])',
    'last_over_time(m[1m])',
    'sum_over_time(m[15s] offset 10s)',
    'max_over_time(m[5s])',
  ];
  const ranges: [string, number, number, number][] = [
    ['5 s steps (windows overlap: bulk)', T0, T0 + 1_200_000, 5_000],
    ['17 s steps', T0 + 333, T0 + 1_200_000, 17_000],
    ['10 min steps (no overlap: iterator)', T0, T0 + 3_000_000, 600_000],
  ];
  const engine = new PromqlEngine();

  for (const q of queries) {
    for (const [name, start, end, step] of ranges) {
      it(`${q}, ${name}`, async () => {
        const a = await engine.rangeQuery(bulk, q, start, end, step);
        const b = await engine.rangeQuery(iterated, q, start, end, step);
        expect(flatten(a)).toEqual(flatten(b));
        expect(a.stats.samplesRead).toBe(b.stats.samplesRead);
        expect(a.stats.peakSamples).toBe(b.stats.peakSamples);
      });
    }
    it(`${q}, instant queries`, async () => {
      for (let t = T0; t < T0 + 1_200_000; t += 61_000) {
        const a = await engine.instantQuery(bulk, q, t);
        const b = await engine.instantQuery(iterated, q, t);
        expect(flatten(a)).toEqual(flatten(b));
        expect(a.stats.samplesRead).toBe(b.stats.samplesRead);
      }
    });
  }

  it('answers something at most steps (the data is not empty)', async () => {
    const r = await engine.rangeQuery(bulk, 'count_over_time(m[25s])', T0, T0 + 1_200_000, 5_000);
    expect(r.value.resultType === 'matrix' && r.value.series.length).toBe(6);
  });
});
