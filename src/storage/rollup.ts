/**
 * Rollup tiers: per series and per window of 10 s, 1 min and 1 h, the minimum, maximum, sum, count and last
 * value of the raw samples in the window, so that min/max/avg/sum/count over weeks are exact and read few
 * points. Staleness markers are not data: they are left out of every aggregate.
 *
 * A window [start, start + res) is stored at timestamp `start + res - 1`, the last millisecond it covers, so
 * that a range selector `(t - range, t]` aligned on the resolution contains exactly the windows whose raw
 * samples it would contain (up to samples exactly on a boundary, which raw data counts in the later range).
 * NaN follows Prometheus's *_over_time: min and max skip NaN unless every value is NaN; sum propagates it.
 */
import { isStaleNaN } from '../model/batch.js';
import { lowerBound } from '../model/sorted.js';
import type { TierName } from './block.js';
import type { AggregateArrays, AggregateIterator, SampleIterator } from './storage.js';

export interface Tier {
  readonly name: TierName;
  readonly resolutionMs: number;
}

export const ROLLUP_TIERS: readonly Tier[] = [
  { name: '10s', resolutionMs: 10_000 },
  { name: '1m', resolutionMs: 60_000 },
  { name: '1h', resolutionMs: 3_600_000 },
];

export const AGG_MIN = 0;
export const AGG_MAX = 1;
export const AGG_SUM = 2;
export const AGG_COUNT = 3;
export const AGG_LAST = 4;
export const AGG_COLUMNS = 5;

/** Range functions a rollup tier answers exactly, and the column that carries each. */
export const ROLLUP_FUNCS: Readonly<Record<string, number>> = {
  min_over_time: AGG_MIN,
  max_over_time: AGG_MAX,
  sum_over_time: AGG_SUM,
  count_over_time: AGG_COUNT,
  avg_over_time: -1, // sum / count, from aggregates()
  last_over_time: AGG_LAST,
};

/** Per-window aggregates of one series, as growable columns. */
export class RollupColumns implements AggregateArrays {
  n = 0;
  t: Float64Array;
  readonly cols: Float64Array[];

  constructor(capacity = 16) {
    this.t = new Float64Array(Math.max(1, capacity));
    this.cols = Array.from({ length: AGG_COLUMNS }, () => new Float64Array(Math.max(1, capacity)));
  }

  reset(): void {
    this.n = 0;
  }

  /** Room for `n` windows (contents kept up to `this.n`), in one allocation per column. */
  reserve(n: number): void {
    if (this.t.length >= n) return;
    const g = (a: Float64Array) => {
      const next = new Float64Array(n);
      next.set(a.subarray(0, this.n));
      return next;
    };
    this.t = g(this.t);
    for (let c = 0; c < AGG_COLUMNS; c++) this.cols[c] = g(this.cols[c]!);
  }

  private grow(): void {
    const cap = this.t.length * 2;
    const g = (a: Float64Array) => {
      const next = new Float64Array(cap);
      next.set(a);
      return next;
    };
    this.t = g(this.t);
    for (let c = 0; c < AGG_COLUMNS; c++) this.cols[c] = g(this.cols[c]!);
  }

  push(t: number, min: number, max: number, sum: number, count: number, last: number): void {
    if (this.n === this.t.length) this.grow();
    const i = this.n++;
    this.t[i] = t;
    this.cols[AGG_MIN]![i] = min;
    this.cols[AGG_MAX]![i] = max;
    this.cols[AGG_SUM]![i] = sum;
    this.cols[AGG_COUNT]![i] = count;
    this.cols[AGG_LAST]![i] = last;
  }

  /** Appends the windows of another set (must come after this one's). */
  pushFrom(o: RollupColumns, i: number): void {
    this.push(o.t[i]!, o.cols[0]![i]!, o.cols[1]![i]!, o.cols[2]![i]!, o.cols[3]![i]!, o.cols[4]![i]!);
  }
}

/**
 * Aggregates raw samples `t[0..n)`, `v[0..n)` (in time order) within [minT, maxT] into windows of `res`
 * appended to `out` — windows ending before `keepFrom` are left out. Windows without data (or with only
 * staleness markers) are absent. The window's aggregates are locals, as in coarsen (twin), which folds
 * windows instead of samples: a shared accumulator object would cost a property write per sample.
 */
export function aggregateSamples(
  T: Float64Array,
  V: Float64Array,
  n: number,
  res: number,
  minT: number,
  maxT: number,
  out: AggregateArrays,
  keepFrom = Number.NEGATIVE_INFINITY,
): void {
  let i = 0;
  while (i < n && T[i]! < minT) i++;
  let win = Number.NaN;
  let winEnd = Number.NEGATIVE_INFINITY;
  let min = 0;
  let max = 0;
  let sum = 0;
  let count = 0;
  let last = 0;
  for (; i < n; i++) {
    const t = T[i]!;
    if (t > maxT) break;
    const v = V[i]!;
    if (isStaleNaN(v)) continue;
    if (t >= winEnd || t < win) {
      if (count > 0 && win + res - 1 >= keepFrom) out.push(win + res - 1, min, max, sum, count, last);
      win = Math.floor(t / res) * res;
      winEnd = win + res;
      min = v;
      max = v;
      sum = v;
      count = 1;
      last = v;
      continue;
    }
    if (v < min || Number.isNaN(min)) min = v;
    if (v > max || Number.isNaN(max)) max = v;
    sum += v;
    count++;
    last = v;
  }
  if (count > 0 && win + res - 1 >= keepFrom) out.push(win + res - 1, min, max, sum, count, last);
}

/** Combines finer windows (sorted) into windows of `res` (a multiple of theirs); twin: aggregateSamples. */
export function coarsen(src: RollupColumns, res: number, out: RollupColumns): void {
  let win = Number.NaN;
  let min = 0;
  let max = 0;
  let sum = 0;
  let count = 0;
  let last = 0;
  const flush = () => {
    if (count > 0) out.push(win + res - 1, min, max, sum, count, last);
  };
  const [mins, maxs, sums, counts, lasts] = src.cols as [
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
  ];
  for (let i = 0; i < src.n; i++) {
    const w = Math.floor(src.t[i]! / res) * res;
    if (w !== win) {
      flush();
      win = w;
      min = mins[i]!;
      max = maxs[i]!;
      sum = sums[i]!;
      count = counts[i]!;
      last = lasts[i]!;
      continue;
    }
    const mn = mins[i]!;
    const mx = maxs[i]!;
    if (mn < min || Number.isNaN(min)) min = mn;
    if (mx > max || Number.isNaN(max)) max = mx;
    sum += sums[i]!;
    count += counts[i]!;
    last = lasts[i]!;
  }
  flush();
}

/** Iterates materialized rollup columns; `v` is the column chosen for the (t, v) view. */
export class RollupIterator implements AggregateIterator, SampleIterator {
  t = 0;
  v = 0;
  min = 0;
  max = 0;
  sum = 0;
  count = 0;
  last = 0;
  private i = -1;

  constructor(
    private readonly data: Readonly<Pick<AggregateArrays, 't' | 'cols' | 'n'>>,
    private readonly column: number,
  ) {}

  private at(): boolean {
    const i = this.i;
    const c = this.data.cols;
    this.t = this.data.t[i]!;
    this.min = c[AGG_MIN]![i]!;
    this.max = c[AGG_MAX]![i]!;
    this.sum = c[AGG_SUM]![i]!;
    this.count = c[AGG_COUNT]![i]!;
    this.last = c[AGG_LAST]![i]!;
    this.v = this.column < 0 ? this.sum / this.count : c[this.column]![i]!;
    return true;
  }

  next(): boolean {
    if (this.i + 1 >= this.data.n) {
      this.i = this.data.n;
      return false;
    }
    this.i++;
    return this.at();
  }

  seek(t: number): boolean {
    if (this.i >= 0 && this.i < this.data.n && this.t >= t) return true;
    const lo = lowerBound(this.data.t, this.data.n, t, Math.max(this.i, 0));
    this.i = lo;
    if (lo >= this.data.n) return false;
    return this.at();
  }
}
