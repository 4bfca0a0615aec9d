/**
 * topk / bottomk pick their winners with a bounded selection (k ≤ 64) instead of sorting every candidate at
 * every step. The answer must be exactly what the stable sort gives: value order (descending for topk,
 * ascending for bottomk), NaN last, and on equal values (±Inf against itself, NaN against NaN, 0 against -0)
 * the series that comes first in the input order. Checked here against that sort, written out in the test,
 * over random data full of ties, NaNs and infinities, for range queries (which steps each series wins) and
 * instant queries (the order of the answer).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { PromqlEngine, tenantQueryable } from '../../src/query/promql/index.js';
import { memoryTsdb } from '../../src/query/promql/test-script.js';

const T0 = 1_700_000_000_000;
const STEPS = 4;
const VALUES = [0, -0, 1, 1, 2, 5, -3, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];

/** The reference: the first k of a stable sort of the present series, in input order. */
function reference(column: (number | undefined)[], k: number, top: boolean): number[] {
  const cand: number[] = [];
  for (let s = 0; s < column.length; s++) if (column[s] !== undefined) cand.push(s);
  const sorted = [...cand].sort((a, b) => {
    const x = column[a]!;
    const y = column[b]!;
    if (Number.isNaN(x)) return Number.isNaN(y) ? 0 : 1;
    if (Number.isNaN(y)) return -1;
    if (x === y) return 0;
    return top ? (y > x ? 1 : -1) : x > y ? 1 : -1;
  });
  return sorted.slice(0, Math.max(0, k));
}

describe('topk / bottomk selection', () => {
  it('wins exactly the steps and the order that a stable sort of every candidate gives', async () => {
    const engine = new PromqlEngine();
    await fc.assert(
      fc.asyncProperty(
        // Per series, per step: an index into VALUES, or -1 for no sample.
        fc.array(
          fc.array(fc.integer({ min: -1, max: VALUES.length - 1 }), { minLength: STEPS, maxLength: STEPS }),
          {
            minLength: 1,
            maxLength: 90,
          },
        ),
        fc.integer({ min: 1, max: 80 }),
        fc.boolean(),
        async (grid, k, top) => {
          const storage = await memoryTsdb();
          const b = new SeriesBatchBuilder(grid.length * STEPS);
          // Zero-padded names: the engine's input order (storage's sorted order) is the index order.
          const name = (s: number) => String(s).padStart(3, '0');
          for (let s = 0; s < grid.length; s++) {
            b.addSeries({ __name__: 'm', s: name(s) });
            for (let i = 0; i < STEPS; i++)
              if (grid[s]![i]! >= 0) b.add(T0 + i * 60_000, VALUES[grid[s]![i]!]!);
          }
          storage.appender.append('t', b.build());
          const source = tenantQueryable(storage, 't');
          const op = top ? 'topk' : 'bottomk';
          // Lookback 1 ms shorter than a step: each step sees only its own sample.
          const opts = { lookbackDeltaMs: 59_999 };
          const columns = Array.from({ length: STEPS }, (_, i) =>
            grid.map((row) => (row[i]! >= 0 ? VALUES[row[i]!]! : undefined)),
          );

          const range = await engine.rangeQuery(
            source,
            `${op}(${k}, m)`,
            T0,
            T0 + (STEPS - 1) * 60_000,
            60_000,
            opts,
          );
          expect(range.value.resultType).toBe('matrix');
          const got = new Map<string, Map<number, number>>();
          if (range.value.resultType === 'matrix') {
            for (const s of range.value.series) {
              const points = new Map<number, number>();
              for (let j = 0; j < s.timestamps.length; j++) points.set(s.timestamps[j]!, s.values[j]!);
              got.set(s.labels.s!, points);
            }
          }
          const want = new Map<string, Map<number, number>>();
          for (let i = 0; i < STEPS; i++) {
            for (const s of reference(columns[i]!, k, top)) {
              const points = want.get(name(s)) ?? new Map<number, number>();
              points.set(T0 + i * 60_000, columns[i]![s]!);
              want.set(name(s), points);
            }
          }
          expect(got).toEqual(want);

          for (let i = 0; i < STEPS; i++) {
            const inst = await engine.instantQuery(source, `${op}(${k}, m)`, T0 + i * 60_000, opts);
            expect(inst.value.resultType).toBe('vector');
            if (inst.value.resultType !== 'vector') continue;
            expect(inst.value.samples.map((x) => x.labels.s)).toEqual(
              reference(columns[i]!, k, top).map(name),
            );
          }
          await storage.close();
        },
      ),
      { numRuns: 60 },
    );
  });
});
