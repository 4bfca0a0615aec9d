/**
 * Server-side aggregation for the dashboard's heatmaps and band charts: many series folded into a compact
 * rows × columns matrix (or per-column statistics across series) while iterating, so that a heatmap of a
 * thousand jobs or a 512-GPU job costs one pass over the samples and a few typed arrays — never an object
 * per sample.
 *
 * Columns are aligned to multiples of the step (`start = floor(from / step) * step`), so that a live client
 * that fetches only the newest columns with the same step gets cells identical to those it already has.
 */
import { isStaleNaN } from '../model/batch.js';
import { NO_DATA_BYTE } from '../model/heatmap-api.js';
import {
  AGG_COUNT,
  AGG_LAST,
  AGG_SUM,
  type AggregateArrays,
  type AggregateIterator,
  RollupColumns,
  type SampleArrays,
  SampleBuffer,
  type SampleIterator,
} from '../storage/index.js';

/**
 * The samples of `it` in [from, to], copied into `out` (replacing its contents): series that cannot be read in
 * bulk are folded by the same array code as those that can. NaN payloads (staleness markers) are kept: a
 * Float64Array stores a number's bits as they are.
 */
function drainSamples(it: SampleIterator, from: number, to: number, out: SampleBuffer): SampleBuffer {
  out.n = 0;
  if (!it.seek(from)) return out;
  do {
    const t = it.t;
    if (t > to) break;
    if (out.n === out.t.length) out.ensure(out.n + 1);
    out.t[out.n] = t;
    out.v[out.n] = it.v;
    out.n++;
  } while (it.next());
  return out;
}

/** The windows of `it` stored in [from, to], copied into `out` (replacing its contents). */
function drainAggregates(it: AggregateIterator, from: number, to: number, out: RollupColumns): RollupColumns {
  out.reset();
  if (!it.seek(from)) return out;
  do {
    if (it.t > to) break;
    out.push(it.t, it.min, it.max, it.sum, it.count, it.last);
  } while (it.next());
  return out;
}

/**
 * The windows of `it` that can fall in `grid`'s columns (each stored at its last millisecond, so the
 * first ends `resolutionMs - 1` after the grid's start), copied into `out`: both accumulators use it.
 */
function drainGridAggregates(
  grid: ColumnGrid,
  it: AggregateIterator,
  resolutionMs: number,
  out: RollupColumns,
): RollupColumns {
  const stopT = grid.start + grid.cols * grid.step - 1 + resolutionMs - 1;
  return drainAggregates(it, grid.start + resolutionMs - 1, stopT, out);
}

/** The first window of `a` stored at or after `t` (windows are in time order). */
function firstWindowAtOrAfter(a: AggregateArrays, t: number): number {
  const T = a.t;
  let lo = 0;
  let hi = a.n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (T[mid]! < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Steps the dashboard uses, so that columns line up with round times and stay stable as a window slides. */
export const NICE_STEPS_MS: readonly number[] = [
  1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
  3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
];

/** The smallest nice step that fits [start, end] into at most `cols` columns. */
export function niceStep(start: number, end: number, cols: number): number {
  const raw = Math.max(1, (end - start) / Math.max(1, cols));
  for (const s of NICE_STEPS_MS) if (s >= raw) return s;
  return Math.ceil(raw / 86_400_000) * 86_400_000;
}

export interface ColumnGrid {
  /** Start of the first column (a multiple of `step`). */
  readonly start: number;
  readonly step: number;
  readonly cols: number;
}

/** Columns of `step` covering [from, end], the first aligned to a multiple of `step`. */
export function columnGrid(from: number, end: number, step: number): ColumnGrid {
  const start = Math.floor(from / step) * step;
  return { start, step, cols: Math.max(1, Math.floor((end - start) / step) + 1) };
}

/** Per-row statistics gathered while filling the matrix. */
export interface RowStats {
  /** Mean of every sample of the row's series in the range. */
  mean: number | null;
  /**
   * Mean over the most recent quarter of the columns that hold data (what is happening now, for outlier
   * scores): the quarter ends at the newest column with data in any row, so a finished job is scored on
   * its last minutes rather than on the empty end of the range.
   */
  recentMean: number | null;
  /** Newest value and its time. */
  last: number | null;
  lastT: number | null;
  /** Series folded into the row. */
  series: number;
  /** GPU-seconds (series-seconds) spent below the idle threshold, when one was given. */
  idleSeconds: number;
}

/** Gaps longer than this between two samples are not counted as idle time: the series was not reporting. */
export const MAX_IDLE_GAP_MS = 60_000;

/**
 * A rows × cols matrix of per-cell means. Each cell is the mean of every sample of every series of its row
 * whose timestamp falls in the cell's column. Not safe for concurrent use.
 */
export class MatrixAccumulator {
  readonly sum: Float64Array;
  readonly count: Uint32Array;
  private readonly rowSum: Float64Array;
  private readonly rowCount: Float64Array;
  private readonly rowLast: Float64Array;
  private readonly rowLastT: Float64Array;
  /** Series whose newest sample is at rowLastT (their values are summed in rowLast until read). */
  private readonly rowLastN: Uint32Array;
  private readonly rowSeries: Uint32Array;
  private readonly rowIdleMs: Float64Array;
  /** Reused by the one-at-a-time forms ({@link add}, {@link addAggregates}). */
  private readonly drained = new SampleBuffer(256);
  private readonly drainedWindows = new RollupColumns(64);
  /** Columns [from, to] of the recent window; computed once all series are in. */
  private recent: { from: number; to: number } | undefined;

  constructor(
    readonly rows: number,
    readonly grid: ColumnGrid,
    /** Samples strictly below this count as idle (e.g. 0.05 for GPU utilization); undefined: no idle time. */
    private readonly idleBelow?: number,
  ) {
    const cells = rows * grid.cols;
    this.sum = new Float64Array(cells);
    this.count = new Uint32Array(cells);
    this.rowSum = new Float64Array(rows);
    this.rowCount = new Float64Array(rows);
    this.rowLast = new Float64Array(rows);
    this.rowLastN = new Uint32Array(rows);
    this.rowLastT = new Float64Array(rows).fill(Number.NEGATIVE_INFINITY);
    this.rowSeries = new Uint32Array(rows);
    this.rowIdleMs = new Float64Array(rows);
  }

  /**
   * Folds one series into `row`, reading samples in [grid.start, grid end) and (for `last`) up to `end`.
   * Staleness markers and non-finite values are not data for a mean and are skipped. For a series that cannot
   * be read in bulk: its samples are copied into reused arrays once, and folded by {@link addSamples}.
   */
  add(row: number, it: SampleIterator, end: number): void {
    this.addSamples(row, drainSamples(it, this.grid.start, end, this.drained), end);
  }

  /**
   * Folds one series read in bulk (storage `readSamples`) into `row`: one pass over arrays, with no call per
   * sample — the dashboard's hot path over a 512-GPU hour.
   */
  addSamples(row: number, s: SampleArrays, end: number): void {
    // Twin: SpreadAccumulator.addSamples. Two inline hot loops: sharing costs a call per sample.
    const { start, step, cols } = this.grid;
    const stop = Math.min(end, start + cols * step - 1);
    this.rowSeries[row]!++;
    const T = s.t;
    const V = s.v;
    const n = s.n;
    let i = 0;
    while (i < n && T[i]! < start) i++;
    const base = row * cols;
    const idleBelow = this.idleBelow;
    let prevT = Number.NaN;
    let prevIdle = false;
    let rowSum = 0;
    let rowCount = 0;
    let lastT = Number.NEGATIVE_INFINITY;
    let last = Number.NaN;
    let idleMs = 0;
    const sums = this.sum;
    const counts = this.count;
    let col = -1;
    let colEnd = Number.NEGATIVE_INFINITY;
    let colSum = 0;
    let colCount = 0;
    for (; i < n; i++) {
      const t = T[i]!;
      if (t > stop) break;
      const v = V[i]!;
      if (!Number.isFinite(v)) {
        if (isStaleNaN(v)) prevT = Number.NaN;
        continue;
      }
      if (prevIdle && t - prevT <= MAX_IDLE_GAP_MS) idleMs += t - prevT;
      if (t >= colEnd) {
        if (colCount > 0) {
          sums[base + col]! += colSum;
          counts[base + col]! += colCount;
          rowSum += colSum;
          rowCount += colCount;
        }
        col = Math.floor((t - start) / step);
        colEnd = start + (col + 1) * step;
        colSum = 0;
        colCount = 0;
      }
      colSum += v;
      colCount++;
      last = v;
      lastT = t;
      prevT = t;
      prevIdle = idleBelow !== undefined && v < idleBelow;
    }
    if (colCount > 0) {
      sums[base + col]! += colSum;
      counts[base + col]! += colCount;
      rowSum += colSum;
      rowCount += colCount;
    }
    this.closeRow(row, rowSum, rowCount, idleMs, lastT, last);
  }

  /** As {@link addAggregateArrays}, for windows read one at a time: copied into reused columns once. */
  addAggregates(row: number, it: AggregateIterator, resolutionMs: number, end: number): void {
    const windows = drainGridAggregates(this.grid, it, resolutionMs, this.drainedWindows);
    this.addAggregateArrays(row, windows, resolutionMs, end);
  }

  /**
   * Folds one series read from a rollup tier (windows of `resolutionMs`, each stored at its last
   * millisecond; the resolution divides the step, so every window lies in one column). Cells get the
   * windows' sums and counts, so their means are exact. Idle time is counted per window, at the tier's
   * resolution: a window whose mean is below the threshold counts whole. One pass over the columns (storage
   * `readAggregates`), with no call per window and no allocation per series.
   */
  addAggregateArrays(row: number, a: AggregateArrays, resolutionMs: number, end: number): void {
    // Twin: SpreadAccumulator.addAggregateArrays. Two inline loops: sharing costs a call per window.
    const { start, step, cols } = this.grid;
    const stop = Math.min(end, start + cols * step - 1);
    this.rowSeries[row]!++;
    const T = a.t;
    const SUM = a.cols[AGG_SUM]!;
    const COUNT = a.cols[AGG_COUNT]!;
    const LAST = a.cols[AGG_LAST]!;
    const n = a.n;
    const base = row * cols;
    const idleBelow = this.idleBelow;
    const sums = this.sum;
    const counts = this.count;
    let rowSum = 0;
    let rowCount = 0;
    let lastT = Number.NEGATIVE_INFINITY;
    let last = Number.NaN;
    let idleMs = 0;
    for (let i = firstWindowAtOrAfter(a, start + resolutionMs - 1); i < n; i++) {
      const t = T[i]!;
      const windowStart = t - resolutionMs + 1;
      if (windowStart > stop) break;
      const c = COUNT[i]!;
      const sum = SUM[i]!;
      if (!(c > 0) || !Number.isFinite(sum)) continue;
      const col = Math.floor((windowStart - start) / step);
      if (col < 0) continue;
      sums[base + col]! += sum;
      counts[base + col]! += c;
      rowSum += sum;
      rowCount += c;
      const l = LAST[i]!;
      if (Number.isFinite(l)) {
        last = l;
        lastT = t;
      }
      if (idleBelow !== undefined && sum / c < idleBelow) idleMs += resolutionMs;
    }
    this.closeRow(row, rowSum, rowCount, idleMs, lastT, last);
  }

  /** Adds one series' totals to `row`; several series with the same newest time report their mean. */
  private closeRow(
    row: number,
    sum: number,
    count: number,
    idleMs: number,
    lastT: number,
    last: number,
  ): void {
    this.rowSum[row]! += sum;
    this.rowCount[row]! += count;
    this.rowIdleMs[row]! += idleMs;
    if (lastT > this.rowLastT[row]!) {
      this.rowLastT[row] = lastT;
      this.rowLast[row] = last;
      this.rowLastN[row] = 1;
    } else if (lastT === this.rowLastT[row]! && Number.isFinite(lastT)) {
      this.rowLast[row]! += last;
      this.rowLastN[row]!++;
    }
  }

  /** Per-cell means; NaN where a cell has no sample. */
  means(): Float64Array {
    const out = new Float64Array(this.sum.length);
    for (let i = 0; i < out.length; i++)
      out[i] = this.count[i]! > 0 ? this.sum[i]! / this.count[i]! : Number.NaN;
    return out;
  }

  private recentWindow(): { from: number; to: number } {
    if (!this.recent) {
      const cols = this.grid.cols;
      let first = cols;
      let last = -1;
      for (let i = 0; i < this.count.length; i++) {
        if (this.count[i] === 0) continue;
        const c = i % cols;
        if (c < first) first = c;
        if (c > last) last = c;
      }
      this.recent =
        last < 0 ? { from: 0, to: -1 } : { from: last - Math.floor((last - first + 1) / 4), to: last };
    }
    return this.recent;
  }

  rowStats(row: number): RowStats {
    const n = this.rowCount[row]!;
    const lastT = this.rowLastT[row]!;
    const { from, to } = this.recentWindow();
    let recentSum = 0;
    let recentCount = 0;
    for (let c = from, i = row * this.grid.cols + from; c <= to; c++, i++) {
      recentSum += this.sum[i]!;
      recentCount += this.count[i]!;
    }
    return {
      mean: n > 0 ? this.rowSum[row]! / n : null,
      recentMean: recentCount > 0 ? recentSum / recentCount : null,
      last: Number.isFinite(lastT) ? this.rowLast[row]! / this.rowLastN[row]! : null,
      lastT: Number.isFinite(lastT) ? lastT : null,
      series: this.rowSeries[row]!,
      idleSeconds: this.rowIdleMs[row]! / 1000,
    };
  }
}

// The byte encoding is shared with the dashboard, which decodes it (model/heatmap-api.ts).
export { dequantize, NO_DATA_BYTE } from '../model/heatmap-api.js';

export interface Quantized {
  readonly lo: number;
  readonly hi: number;
  readonly bytes: Uint8Array;
}

/**
 * Maps cell values linearly onto bytes 0..254 between `lo` and `hi` (clamped), 255 for no data: a heatmap
 * needs no more than 255 colours, and a byte per cell keeps a 512 × 600 matrix at 300 kB.
 * Without a given scale, the finite minimum and maximum of the cells are used.
 */
export function quantize(values: Float64Array, scale?: { lo: number; hi: number }): Quantized {
  let lo = scale?.lo ?? Number.POSITIVE_INFINITY;
  let hi = scale?.hi ?? Number.NEGATIVE_INFINITY;
  if (!scale) {
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (!Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!Number.isFinite(lo)) {
      lo = 0;
      hi = 1;
    }
  }
  if (!(hi > lo)) hi = lo + (lo === 0 ? 1 : Math.abs(lo));
  const bytes = new Uint8Array(values.length);
  const k = 254 / (hi - lo);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) {
      bytes[i] = NO_DATA_BYTE;
      continue;
    }
    const q = Math.round((v - lo) * k);
    bytes[i] = Math.min(254, Math.max(0, q));
  }
  return { lo, hi, bytes };
}

/**
 * Modified z-scores (Iglewicz and Hoaglin): 0.6745 · (x − median) / MAD. Robust to the outliers it is
 * meant to find — one straggler among 512 ranks does not move the median. When more than half the values
 * are equal (MAD = 0), the mean absolute deviation stands in (× 1.2533, its ratio to σ for normal data);
 * when every value is equal, every score is 0. Null inputs give null scores.
 */
export function robustZ(xs: readonly (number | null)[]): (number | null)[] {
  const finite = xs.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (finite.length < 3) return xs.map((x) => (x === null || !Number.isFinite(x) ? null : 0));
  const med = median(finite);
  const dev = finite.map((x) => Math.abs(x - med)).sort((a, b) => a - b);
  const mad = median(dev);
  let scale: number;
  if (mad > 0) scale = mad / 0.6745;
  else {
    const meanAd = dev.reduce((a, b) => a + b, 0) / dev.length;
    scale = meanAd * 1.2533;
  }
  return xs.map((x) => {
    if (x === null || !Number.isFinite(x)) return null;
    if (scale === 0) return 0;
    return (x - med) / scale;
  });
}

/** Median of ascending-sorted values. */
export function median(sorted: readonly number[]): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const mid = n >> 1;
  return n % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A modified z-score at or above this marks an outlier (Iglewicz and Hoaglin's recommendation). */
export const OUTLIER_Z = 3.5;

/**
 * Per-column statistics across series: for every column, each series' mean within the column, then the
 * minimum, maximum, sum and mean of those across the series present. For band charts (min/mean/max of 512
 * GPUs' temperatures) and job totals (the sum of every rank's throughput).
 */
export class SpreadAccumulator {
  readonly min: Float64Array;
  readonly max: Float64Array;
  readonly sum: Float64Array;
  readonly present: Uint32Array;
  private readonly colSum: Float64Array;
  private readonly colCount: Uint32Array;
  /** Reused by the one-at-a-time forms ({@link add}, {@link addAggregates}). */
  private readonly drained = new SampleBuffer(256);
  private readonly drainedWindows = new RollupColumns(64);

  constructor(readonly grid: ColumnGrid) {
    const n = grid.cols;
    this.min = new Float64Array(n).fill(Number.POSITIVE_INFINITY);
    this.max = new Float64Array(n).fill(Number.NEGATIVE_INFINITY);
    this.sum = new Float64Array(n);
    this.present = new Uint32Array(n);
    this.colSum = new Float64Array(n);
    this.colCount = new Uint32Array(n);
  }

  /** As {@link addSamples}, for a series read one sample at a time: copied into reused arrays once. */
  add(it: SampleIterator, end: number, recentFrom = Number.POSITIVE_INFINITY): number | null {
    return this.addSamples(drainSamples(it, this.grid.start, end, this.drained), end, recentFrom);
  }

  /**
   * Folds one series read in bulk (storage `readSamples`) in. With `recentFrom`, also returns the series' mean
   * over [recentFrom, end] (its recent level, for outlier scores), computed in the same pass.
   */
  addSamples(s: SampleArrays, end: number, recentFrom = Number.POSITIVE_INFINITY): number | null {
    // Twin: MatrixAccumulator.addSamples. Two inline hot loops: sharing costs a call per sample.
    const { start, step, cols } = this.grid;
    const stop = Math.min(end, start + cols * step - 1);
    this.colSum.fill(0);
    this.colCount.fill(0);
    let recentSum = 0;
    let recentCount = 0;
    const T = s.t;
    const V = s.v;
    const n = s.n;
    let i = 0;
    while (i < n && T[i]! < start) i++;
    const colSums = this.colSum;
    const colCounts = this.colCount;
    let col = -1;
    let colEnd = Number.NEGATIVE_INFINITY;
    let sum = 0;
    let count = 0;
    for (; i < n; i++) {
      const t = T[i]!;
      if (t > stop) break;
      const v = V[i]!;
      if (!Number.isFinite(v)) continue;
      if (t >= colEnd) {
        if (count > 0) {
          colSums[col] = sum;
          colCounts[col] = count;
        }
        col = Math.floor((t - start) / step);
        colEnd = start + (col + 1) * step;
        sum = 0;
        count = 0;
      }
      sum += v;
      count++;
      if (t >= recentFrom) {
        recentSum += v;
        recentCount++;
      }
    }
    if (count > 0) {
      colSums[col] = sum;
      colCounts[col] = count;
    }
    this.fold();
    return recentCount > 0 ? recentSum / recentCount : null;
  }

  /** As {@link addAggregateArrays}, for windows read one at a time: copied into reused columns once. */
  addAggregates(
    it: AggregateIterator,
    resolutionMs: number,
    end: number,
    recentFrom = Number.POSITIVE_INFINITY,
  ): number | null {
    const windows = drainGridAggregates(this.grid, it, resolutionMs, this.drainedWindows);
    return this.addAggregateArrays(windows, resolutionMs, end, recentFrom);
  }

  /** As {@link addSamples}, for a series read from a rollup tier whose resolution divides the step. */
  addAggregateArrays(
    a: AggregateArrays,
    resolutionMs: number,
    end: number,
    recentFrom = Number.POSITIVE_INFINITY,
  ): number | null {
    // Twin: MatrixAccumulator.addAggregateArrays. Two inline loops: sharing costs a call per window.
    const { start, step, cols } = this.grid;
    const stop = Math.min(end, start + cols * step - 1);
    this.colSum.fill(0);
    this.colCount.fill(0);
    let recentSum = 0;
    let recentCount = 0;
    const T = a.t;
    const SUM = a.cols[AGG_SUM]!;
    const COUNT = a.cols[AGG_COUNT]!;
    const colSums = this.colSum;
    const colCounts = this.colCount;
    for (let i = firstWindowAtOrAfter(a, start + resolutionMs - 1); i < a.n; i++) {
      const windowStart = T[i]! - resolutionMs + 1;
      if (windowStart > stop) break;
      const n = COUNT[i]!;
      const sum = SUM[i]!;
      if (!(n > 0) || !Number.isFinite(sum)) continue;
      const col = Math.floor((windowStart - start) / step);
      if (col < 0) continue;
      colSums[col]! += sum;
      colCounts[col]! += n;
      if (windowStart >= recentFrom) {
        recentSum += sum;
        recentCount += n;
      }
    }
    this.fold();
    return recentCount > 0 ? recentSum / recentCount : null;
  }

  private fold(): void {
    for (let c = 0; c < this.grid.cols; c++) {
      const n = this.colCount[c]!;
      if (n === 0) continue;
      const m = this.colSum[c]! / n;
      if (m < this.min[c]!) this.min[c] = m;
      if (m > this.max[c]!) this.max[c] = m;
      this.sum[c]! += m;
      this.present[c]!++;
    }
  }
}
