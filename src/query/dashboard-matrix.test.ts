import { describe, expect, it } from 'vitest';
import { RollupColumns } from '../storage/index.js';
import { RollupIterator } from '../storage/rollup.js';
import { MatrixAccumulator, SpreadAccumulator } from './dashboard-matrix.js';

const RES = 10_000;

/**
 * Windows of one series at 10 s: some before the grid, empty ones (count 0), a NaN sum, an infinite one, a NaN
 * last value, idle ones, and some after the end.
 */
function windows(seed: number): RollupColumns {
  const c = new RollupColumns(4);
  let rng = seed * 7919;
  const random = () => {
    rng = (rng * 1103515245 + 12345) % 2147483648;
    return rng / 2147483648;
  };
  for (let w = -5; w < 400; w++) {
    if (random() < 0.1) continue; // no window
    const r = random();
    const count = r < 0.05 ? 0 : 1 + Math.floor(random() * 10);
    let sum = random() * count;
    if (r > 0.97) sum = Number.NaN;
    else if (r > 0.95) sum = Number.POSITIVE_INFINITY;
    // Series 1's newest windows have no last value: its row's newest value comes from before them.
    const last = (seed === 1 && w >= 290) || (r > 0.5 && r < 0.53) ? Number.NaN : random();
    c.push(1_000_000 + w * RES + RES - 1, 0, 1, sum, count, last);
  }
  return c;
}

describe('folding rollup windows read in bulk', () => {
  it('gives the matrix and the spread that folding them through the aggregate iterator gives', () => {
    for (const grid of [
      { start: 1_000_000, step: 10_000, cols: 361 },
      { start: 1_000_000 + 20_000, step: 30_000, cols: 100 },
    ]) {
      const end = grid.start + 3_000_000;
      const viaIterator = new MatrixAccumulator(3, grid, 0.2);
      const viaArrays = new MatrixAccumulator(3, grid, 0.2);
      const spreadIterator = new SpreadAccumulator(grid);
      const spreadArrays = new SpreadAccumulator(grid);
      const recentIterator: (number | null)[] = [];
      const recentArrays: (number | null)[] = [];
      const reused = new RollupColumns(1);
      for (let s = 0; s < 7; s++) {
        const c = windows(s + 1);
        viaIterator.addAggregates(s % 3, new RollupIterator(c, -1), RES, end);
        recentIterator.push(spreadIterator.addAggregates(new RollupIterator(c, -1), RES, end, end - 600_000));
        reused.reset();
        reused.reserve(c.n);
        for (let i = 0; i < c.n; i++) reused.pushFrom(c, i);
        viaArrays.addAggregateArrays(s % 3, reused, RES, end);
        recentArrays.push(spreadArrays.addAggregateArrays(reused, RES, end, end - 600_000));
      }
      expect(viaArrays.sum).toEqual(viaIterator.sum);
      expect(viaArrays.count).toEqual(viaIterator.count);
      for (let r = 0; r < 3; r++) expect(viaArrays.rowStats(r)).toEqual(viaIterator.rowStats(r));
      expect(viaIterator.rowStats(0).idleSeconds).toBeGreaterThan(0);
      for (const k of ['min', 'max', 'sum', 'present'] as const)
        expect(spreadArrays[k]).toEqual(spreadIterator[k]);
      expect(recentArrays).toEqual(recentIterator);
      expect(recentArrays.some((r) => r !== null)).toBe(true);
    }
  });
});
