/**
 * The heatmap: selected series grouped into rows by labels and folded into a quantized rows × columns matrix
 * (`GET /api/tw/v1/heatmap`), and the rollup-aware select both the heatmap and the band chart (`/spread`)
 * read their column grid with. Separate from dashboard.ts, which only parses requests and shapes answers.
 */
import type { HeatmapRow } from '../model/heatmap-api.js';
import type { LabelSet } from '../model/labels.js';
import { RollupColumns, SampleBuffer, type SelectedSeries, type SelectHints } from '../storage/index.js';
import { MatrixAccumulator, quantize, robustZ } from './dashboard-matrix.js';
import { gridParams, naturalCompare, type Query } from './dashboard-params.js';

export type { HeatmapRow } from '../model/heatmap-api.js';

export interface HeatmapParams {
  readonly start: number;
  readonly end: number;
  readonly by: readonly string[];
  readonly keep: readonly string[];
  readonly lo: number | undefined;
  readonly hi: number | undefined;
  readonly idleBelow: number | undefined;
  readonly metric: string;
  readonly q: Query;
  /**
   * Row labels per selected series (undefined: leave the series out) and the labels rows are grouped by,
   * instead of the series' own `by` labels (heatmap-groups.ts: jobs filtered and grouped by project).
   */
  readonly regroup?: (labels: readonly LabelSet[]) => Promise<{
    readonly by: readonly string[];
    readonly rows: readonly (LabelSet | undefined)[];
  }>;
}

/**
 * Rollup hints for a column grid: with a step of 10 s or more, a storage that keeps rollup tiers may answer
 * with windows that divide the step (sums and counts, so the cell means stay exact) instead of raw samples.
 */
function rollupHints(
  grid: { start: number; step: number },
  end: number,
  aggregates: RollupAggregates,
): SelectHints {
  const range = { minT: grid.start, maxT: end };
  return grid.step >= 10_000
    ? { ...range, stepMs: grid.step, func: 'avg_over_time', rangeMs: grid.step, aggregates }
    : range;
}

/**
 * The window aggregates an accumulator reads, so that the storage decodes no other column: cell means need
 * sums and counts; a heatmap's rows also report their newest value (`last`), a band chart does not.
 */
type RollupAggregates = NonNullable<SelectHints['aggregates']>;
const HEATMAP_AGGREGATES: RollupAggregates = ['sum', 'count', 'last'];
export const SPREAD_AGGREGATES: RollupAggregates = ['sum', 'count'];

/** Selects with rollup hints, and again without them if a tier's windows do not fit the grid's columns. */
export async function selectForGrid(
  select: (hints: SelectHints) => Promise<readonly SelectedSeries[]>,
  grid: { start: number; step: number },
  end: number,
  aggregates: RollupAggregates,
): Promise<readonly SelectedSeries[]> {
  const selected = await select(rollupHints(grid, end, aggregates));
  const misfit = selected.some(
    (s) => s.resolutionMs !== undefined && (grid.step % s.resolutionMs !== 0 || !s.aggregates),
  );
  return misfit ? select({ minT: grid.start, maxT: end }) : selected;
}

/** Groups the selected series into rows by the `by` labels and folds them into a quantized matrix. */
export async function buildHeatmap(
  select: (hints: SelectHints) => Promise<readonly SelectedSeries[]>,
  p: HeatmapParams,
) {
  // The column step depends on the number of rows (cells are capped), known only after a first select.
  const firstGrid = gridParams(p.q, p.start, p.end);
  let selected: readonly SelectedSeries[] = await selectForGrid(select, firstGrid, p.end, HEATMAP_AGGREGATES);
  const rowOf = new Map<string, number>();
  const rowLabels: Record<string, string>[] = [];
  const seriesRow = new Int32Array(selected.length);
  // Rows may be regrouped (a fleet's jobs by project) and series left out (jobs outside the page's filters).
  const regrouped = await p.regroup?.(selected.map((s) => s.labels));
  const by = regrouped?.by ?? p.by;
  for (let i = 0; i < selected.length; i++) {
    const labels = regrouped ? regrouped.rows[i] : selected[i]!.labels;
    if (labels === undefined) {
      seriesRow[i] = -1;
      continue;
    }
    let key = '';
    for (const l of by) key += `${labels[l] ?? ''}\u0000`;
    let row = rowOf.get(key);
    if (row === undefined) {
      row = rowLabels.length;
      rowOf.set(key, row);
      const rl: Record<string, string> = {};
      for (const l of by) rl[l] = labels[l] ?? '';
      for (const l of p.keep) if (labels[l] !== undefined) rl[l] = labels[l]!;
      rowLabels.push(rl);
    } else {
      // A `keep` label stays only while every series of the row agrees on it.
      const rl = rowLabels[row]!;
      for (const l of p.keep) if (rl[l] !== undefined && rl[l] !== labels[l]) delete rl[l];
    }
    seriesRow[i] = row;
  }
  // Rows in natural order of their labels (rank 2 before rank 10), then series re-pointed.
  const order = rowLabels.map((_, i) => i);
  order.sort((a, b) => {
    for (const l of by) {
      const c = naturalCompare(rowLabels[a]![l]!, rowLabels[b]![l]!);
      if (c !== 0) return c;
    }
    return 0;
  });
  const position = new Int32Array(order.length);
  order.forEach((r, i) => {
    position[r] = i;
  });
  const grid = gridParams(p.q, p.start, p.end, rowLabels.length);
  if (grid.step !== firstGrid.step) selected = await selectForGrid(select, grid, p.end, HEATMAP_AGGREGATES); // same series, same order
  const acc = new MatrixAccumulator(rowLabels.length, grid, p.idleBelow);
  const buf = new SampleBuffer(4096);
  const windows = new RollupColumns(512);
  for (let i = 0; i < selected.length; i++) {
    const s = selected[i]!;
    if (seriesRow[i]! < 0) continue;
    const row = position[seriesRow[i]!]!;
    if (s.resolutionMs !== undefined && s.readAggregates) {
      s.readAggregates(windows);
      acc.addAggregateArrays(row, windows, s.resolutionMs, p.end);
    } else if (s.resolutionMs !== undefined && s.aggregates)
      acc.addAggregates(row, s.aggregates(), s.resolutionMs, p.end);
    else if (s.readSamples) {
      s.readSamples(buf);
      acc.addSamples(row, buf, p.end);
    } else acc.add(row, s.iterator(), p.end);
  }
  const means = acc.means();
  // Ratios span 0..1; bytes start at 0, so that 73.8 GB and 73.9 GB of 80 look alike and a leak stands out
  // (a scale fitted to the data would paint allocator noise as the whole colour range).
  let scale: { lo: number; hi: number } | undefined;
  if (p.lo !== undefined && p.hi !== undefined) scale = { lo: p.lo, hi: p.hi };
  else if (p.metric.endsWith('_ratio')) scale = { lo: 0, hi: 1 };
  else if (p.metric.endsWith('_bytes')) {
    let max = 0;
    for (const v of means) if (v > max) max = v;
    scale = { lo: 0, hi: max > 0 ? max : 1 };
  }
  const q = quantize(means, scale);
  const stats = order.map((_, i) => acc.rowStats(i));
  const z = robustZ(stats.map((s) => s.recentMean));
  const rows: HeatmapRow[] = order.map((r, i) => {
    const s = stats[i]!;
    return {
      labels: rowLabels[r]!,
      series: s.series,
      mean: s.mean,
      recentMean: s.recentMean,
      last: s.last,
      lastT: s.lastT,
      z: z[i] ?? null,
      ...(p.idleBelow !== undefined ? { idleSeconds: s.idleSeconds } : {}),
    };
  });
  return {
    metric: p.metric,
    by,
    start: grid.start,
    step: grid.step,
    cols: grid.cols,
    rows,
    lo: q.lo,
    hi: q.hi,
    /** Row-major, one byte per cell: 0..254 linear between lo and hi, 255 = no data. */
    encoding: 'u8-base64',
    values: Buffer.from(q.bytes.buffer, q.bytes.byteOffset, q.bytes.byteLength).toString('base64'),
  };
}
