/**
 * Functions over a range vector window (promql/functions.go): each reads the points of one series in one
 * window, `ts[lo..hi)` / `vs[lo..hi)` of a reused buffer, and returns the value, or undefined for "no output
 * at this step". No allocation per call except where Prometheus sorts (quantiles).
 */

/** What a window function knows about the window it is computing. */
export interface WindowCtx {
  /** Exclusive lower bound of the window, ms. */
  rangeStart: number;
  /** Inclusive upper bound, ms. */
  rangeEnd: number;
  /** The range of the selector, ms. */
  rangeMs: number;
  /** The evaluation time of the step (before offset and @), ms. */
  evalT: number;
  /** Scalar arguments of the call at this step (e.g. quantile, predict_linear's seconds). */
  p0: number;
  p1: number;
  /** Reports an annotation ('warn' | 'info') with its message; the caller adds the position. */
  annotate: (kind: 'warn' | 'info', message: string) => void;
}

export type WindowFn = (
  ts: Float64Array,
  vs: Float64Array,
  lo: number,
  hi: number,
  w: WindowCtx,
) => number | undefined;

/** Neumaier's improved Kahan summation step, exactly as Prometheus's kahanSumInc. Returns [sum, c] in `out`. */
export function kahanSumInc(inc: number, sum: number, c: number, out: Float64Array): void {
  const t = sum + inc;
  if (t === Number.POSITIVE_INFINITY || t === Number.NEGATIVE_INFINITY) c = 0;
  else if (Math.abs(sum) >= Math.abs(inc)) c += sum - t + inc;
  else c += inc - t + sum;
  out[0] = t;
  out[1] = c;
}

const ks = new Float64Array(2);

function extrapolatedRate(
  ts: Float64Array,
  vs: Float64Array,
  lo: number,
  hi: number,
  w: WindowCtx,
  isCounter: boolean,
  isRate: boolean,
): number | undefined {
  const n = hi - lo;
  if (n < 2) return undefined;
  const firstT = ts[lo]!;
  const lastT = ts[hi - 1]!;
  let result = vs[hi - 1]! - vs[lo]!;
  if (isCounter) {
    let prev = vs[lo]!;
    for (let i = lo + 1; i < hi; i++) {
      const cur = vs[i]!;
      if (cur < prev) result += prev;
      prev = cur;
    }
  }
  let durationToStart = (firstT - w.rangeStart) / 1000;
  let durationToEnd = (w.rangeEnd - lastT) / 1000;
  const sampledInterval = (lastT - firstT) / 1000;
  const averageDurationBetweenSamples = sampledInterval / (n - 1);
  const extrapolationThreshold = averageDurationBetweenSamples * 1.1;
  let extrapolateToInterval = sampledInterval;
  if (durationToStart >= extrapolationThreshold) durationToStart = averageDurationBetweenSamples / 2;
  if (isCounter && result > 0 && vs[lo]! >= 0) {
    const durationToZero = sampledInterval * (vs[lo]! / result);
    if (durationToZero < durationToStart) durationToStart = durationToZero;
  }
  extrapolateToInterval += durationToStart;
  if (durationToEnd >= extrapolationThreshold) durationToEnd = averageDurationBetweenSamples / 2;
  extrapolateToInterval += durationToEnd;
  let factor = extrapolateToInterval / sampledInterval;
  if (isRate) factor /= w.rangeMs / 1000;
  return result * factor;
}

function instantValue(
  ts: Float64Array,
  vs: Float64Array,
  lo: number,
  hi: number,
  isRate: boolean,
): number | undefined {
  if (hi - lo < 2) return undefined;
  const last = vs[hi - 1]!;
  const prev = vs[hi - 2]!;
  let result = isRate && last < prev ? last : last - prev;
  const sampledInterval = ts[hi - 1]! - ts[hi - 2]!;
  if (sampledInterval === 0) return undefined;
  if (isRate) result /= sampledInterval / 1000;
  return result;
}

/** Least-squares fit (Prometheus's linearRegression) with x relative to `interceptTime`; writes [slope, intercept]. */
function linearRegression(
  ts: Float64Array,
  vs: Float64Array,
  lo: number,
  hi: number,
  interceptTime: number,
  out: Float64Array,
): void {
  let n = 0;
  let sumX = 0;
  let cX = 0;
  let sumY = 0;
  let cY = 0;
  let sumXY = 0;
  let cXY = 0;
  let sumX2 = 0;
  let cX2 = 0;
  const initY = vs[lo]!;
  let constY = true;
  for (let i = lo; i < hi; i++) {
    const y = vs[i]!;
    if (constY && i > lo && y !== initY) constY = false;
    n += 1;
    const x = (ts[i]! - interceptTime) / 1e3;
    kahanSumInc(x, sumX, cX, ks);
    sumX = ks[0]!;
    cX = ks[1]!;
    kahanSumInc(y, sumY, cY, ks);
    sumY = ks[0]!;
    cY = ks[1]!;
    kahanSumInc(x * y, sumXY, cXY, ks);
    sumXY = ks[0]!;
    cXY = ks[1]!;
    kahanSumInc(x * x, sumX2, cX2, ks);
    sumX2 = ks[0]!;
    cX2 = ks[1]!;
  }
  if (constY) {
    if (!Number.isFinite(initY) && !Number.isNaN(initY)) {
      out[0] = Number.NaN;
      out[1] = Number.NaN;
      return;
    }
    out[0] = 0;
    out[1] = initY;
    return;
  }
  sumX += cX;
  sumY += cY;
  sumXY += cXY;
  sumX2 += cX2;
  const covXY = sumXY - (sumX * sumY) / n;
  const varX = sumX2 - (sumX * sumX) / n;
  const slope = covXY / varX;
  out[0] = slope;
  out[1] = sumY / n - (slope * sumX) / n;
}

const lr = new Float64Array(2);

/** Prometheus's quantile over a scratch array of values (sorted in place, NaN first). */
export function quantileOf(q: number, values: Float64Array, n: number): number {
  if (n === 0 || Number.isNaN(q)) return Number.NaN;
  if (q < 0) return Number.NEGATIVE_INFINITY;
  if (q > 1) return Number.POSITIVE_INFINITY;
  // Prometheus sorts NaNs first. Only two order statistics are needed, so NaNs are moved to the front and
  // the rest is partially ordered with quickselect (O(n)) instead of sorted.
  let nans = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) {
      values[i] = values[nans]!;
      values[nans++] = v;
    }
  }
  const rank = q * (n - 1);
  const lowerIndex = Math.max(0, Math.floor(rank));
  const upperIndex = Math.min(n - 1, lowerIndex + 1);
  const weight = rank - Math.floor(rank);
  let lower = Number.NaN;
  let upper = Number.NaN;
  if (lowerIndex >= nans) {
    select(values, nans, n - 1, lowerIndex);
    lower = values[lowerIndex]!;
  }
  if (upperIndex >= nans) {
    if (upperIndex === lowerIndex) upper = lower;
    else {
      // After selecting lowerIndex, everything right of it is >= it: the next order statistic is their minimum.
      if (lowerIndex < nans) select(values, nans, n - 1, upperIndex);
      upper = values[upperIndex]!;
      for (let i = upperIndex + 1; i < n; i++) if (values[i]! < upper) upper = values[i]!;
    }
  }
  return lower * (1 - weight) + upper * weight;
}

/** Hoare-style quickselect: reorders values[lo..hi] so that values[k] is the k-th smallest. */
function select(values: Float64Array, lo: number, hi: number, k: number): void {
  while (hi > lo) {
    const mid = (lo + hi) >>> 1;
    // Median of three as the pivot keeps sorted windows (the common case) linear.
    const a = values[lo]!;
    const b = values[mid]!;
    const c = values[hi]!;
    const pivot = Math.max(Math.min(a, b), Math.min(Math.max(a, b), c));
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (values[i]! < pivot) i++;
      while (values[j]! > pivot) j--;
      if (i <= j) {
        const t = values[i]!;
        values[i] = values[j]!;
        values[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return;
  }
}

let scratch = new Float64Array(1024);
function scratchOf(n: number): Float64Array {
  if (scratch.length < n) scratch = new Float64Array(Math.max(n, scratch.length * 2));
  return scratch;
}

// Twin: aggregate.ts evalAggregate 'avg' (as in Prometheus): Kahan, then incremental mean, inline.
function avgOverTime(vs: Float64Array, lo: number, hi: number): number {
  let sum = vs[lo]!;
  let count = 1;
  let mean = 0;
  let kahanC = 0;
  let incremental = false;
  for (let i = lo + 1; i < hi; i++) {
    const f = vs[i]!;
    count = i - lo + 1;
    if (!incremental) {
      kahanSumInc(f, sum, kahanC, ks);
      if (ks[0] !== Number.POSITIVE_INFINITY && ks[0] !== Number.NEGATIVE_INFINITY) {
        sum = ks[0]!;
        kahanC = ks[1]!;
        continue;
      }
      incremental = true;
      mean = sum / (count - 1);
      kahanC /= count - 1;
    }
    const q = (count - 1) / count;
    kahanSumInc(f / count, q * mean, q * kahanC, ks);
    mean = ks[0]!;
    kahanC = ks[1]!;
  }
  if (incremental) return mean + kahanC;
  return sum / count + kahanC / count;
}

function variance(vs: Float64Array, lo: number, hi: number): number {
  let count = 0;
  let mean = 0;
  let cMean = 0;
  let aux = 0;
  let cAux = 0;
  for (let i = lo; i < hi; i++) {
    const f = vs[i]!;
    count++;
    const delta = f - (mean + cMean);
    kahanSumInc(delta / count, mean, cMean, ks);
    mean = ks[0]!;
    cMean = ks[1]!;
    kahanSumInc(delta * (f - (mean + cMean)), aux, cAux, ks);
    aux = ks[0]!;
    cAux = ks[1]!;
  }
  return (aux + cAux) / count;
}

function calcTrendValue(i: number, tf: number, s0: number, s1: number, b: number): number {
  if (i === 0) return b;
  return tf * (s1 - s0) + (1 - tf) * b;
}

/** Window functions by name. Functions needing the whole call context (absent_over_time) live elsewhere. */
export const WINDOW_FUNCTIONS: Readonly<Record<string, WindowFn>> = {
  rate: (ts, vs, lo, hi, w) => extrapolatedRate(ts, vs, lo, hi, w, true, true),
  increase: (ts, vs, lo, hi, w) => extrapolatedRate(ts, vs, lo, hi, w, true, false),
  delta: (ts, vs, lo, hi, w) => extrapolatedRate(ts, vs, lo, hi, w, false, false),
  irate: (ts, vs, lo, hi) => instantValue(ts, vs, lo, hi, true),
  idelta: (ts, vs, lo, hi) => instantValue(ts, vs, lo, hi, false),
  deriv: (ts, vs, lo, hi) => {
    if (hi - lo < 2) return undefined;
    linearRegression(ts, vs, lo, hi, ts[lo]!, lr);
    return lr[0]!;
  },
  predict_linear: (ts, vs, lo, hi, w) => {
    if (hi - lo < 2) return undefined;
    linearRegression(ts, vs, lo, hi, w.evalT, lr);
    return lr[1]! + lr[0]! * w.p0;
  },
  resets: (_ts, vs, lo, hi) => {
    if (hi - lo < 1) return undefined;
    let n = 0;
    let prev = vs[lo]!;
    for (let i = lo + 1; i < hi; i++) {
      const cur = vs[i]!;
      if (cur < prev) n++;
      prev = cur;
    }
    return n;
  },
  // Twin of resets' loop, another test per sample: both inline (sharing costs a call per sample).
  changes: (_ts, vs, lo, hi) => {
    if (hi - lo < 1) return undefined;
    let n = 0;
    let prev = vs[lo]!;
    for (let i = lo + 1; i < hi; i++) {
      const cur = vs[i]!;
      if (!(cur === prev || (Number.isNaN(cur) && Number.isNaN(prev)))) n++;
      prev = cur;
    }
    return n;
  },
  avg_over_time: (_ts, vs, lo, hi) => (hi - lo < 1 ? undefined : avgOverTime(vs, lo, hi)),
  sum_over_time: (_ts, vs, lo, hi) => {
    if (hi - lo < 1) return undefined;
    let sum = 0;
    let c = 0;
    for (let i = lo; i < hi; i++) {
      kahanSumInc(vs[i]!, sum, c, ks);
      sum = ks[0]!;
      c = ks[1]!;
    }
    if (sum === Number.POSITIVE_INFINITY || sum === Number.NEGATIVE_INFINITY) return sum;
    return sum + c;
  },
  count_over_time: (_ts, _vs, lo, hi) => (hi - lo < 1 ? undefined : hi - lo),
  min_over_time: (_ts, vs, lo, hi) => {
    if (hi - lo < 1) return undefined;
    let min = vs[lo]!;
    for (let i = lo + 1; i < hi; i++) {
      const f = vs[i]!;
      if (f < min || Number.isNaN(min)) min = f;
    }
    return min;
  },
  max_over_time: (_ts, vs, lo, hi) => {
    if (hi - lo < 1) return undefined;
    let max = vs[lo]!;
    for (let i = lo + 1; i < hi; i++) {
      const f = vs[i]!;
      if (f > max || Number.isNaN(max)) max = f;
    }
    return max;
  },
  ts_of_min_over_time: (ts, vs, lo, hi) => {
    if (hi - lo < 1) return undefined;
    let min = vs[lo]!;
    let at = ts[lo]!;
    for (let i = lo + 1; i < hi; i++) {
      const f = vs[i]!;
      if (f <= min || Number.isNaN(min)) {
        min = f;
        at = ts[i]!;
      }
    }
    return at / 1000;
  },
  ts_of_max_over_time: (ts, vs, lo, hi) => {
    if (hi - lo < 1) return undefined;
    let max = vs[lo]!;
    let at = ts[lo]!;
    for (let i = lo + 1; i < hi; i++) {
      const f = vs[i]!;
      if (f >= max || Number.isNaN(max)) {
        max = f;
        at = ts[i]!;
      }
    }
    return at / 1000;
  },
  last_over_time: (_ts, vs, lo, hi) => (hi - lo < 1 ? undefined : vs[hi - 1]!),
  first_over_time: (_ts, vs, lo, hi) => (hi - lo < 1 ? undefined : vs[lo]!),
  ts_of_last_over_time: (ts, _vs, lo, hi) => (hi - lo < 1 ? undefined : ts[hi - 1]! / 1000),
  ts_of_first_over_time: (ts, _vs, lo, hi) => (hi - lo < 1 ? undefined : ts[lo]! / 1000),
  present_over_time: (_ts, _vs, lo, hi) => (hi - lo < 1 ? undefined : 1),
  stddev_over_time: (_ts, vs, lo, hi) => (hi - lo < 1 ? undefined : Math.sqrt(variance(vs, lo, hi))),
  stdvar_over_time: (_ts, vs, lo, hi) => (hi - lo < 1 ? undefined : variance(vs, lo, hi)),
  quantile_over_time: (_ts, vs, lo, hi, w) => {
    const n = hi - lo;
    if (n < 1) return undefined;
    const buf = scratchOf(n);
    for (let i = 0; i < n; i++) buf[i] = vs[lo + i]!;
    return quantileOf(w.p0, buf, n);
  },
  mad_over_time: (_ts, vs, lo, hi) => {
    const n = hi - lo;
    if (n < 1) return undefined;
    for (let i = lo; i < hi; i++) if (Number.isNaN(vs[i]!)) return Number.NaN;
    const buf = scratchOf(n);
    for (let i = 0; i < n; i++) buf[i] = vs[lo + i]!;
    const median = quantileOf(0.5, buf, n);
    for (let i = 0; i < n; i++) buf[i] = Math.abs(vs[lo + i]! - median);
    return quantileOf(0.5, buf, n);
  },
  double_exponential_smoothing: (_ts, vs, lo, hi, w) => {
    const n = hi - lo;
    if (n < 2) return undefined;
    const sf = w.p0;
    const tf = w.p1;
    let s0 = 0;
    let s1 = vs[lo]!;
    let b = vs[lo + 1]! - vs[lo]!;
    for (let i = 1; i < n; i++) {
      const x = sf * vs[lo + i]!;
      b = calcTrendValue(i - 1, tf, s0, s1, b);
      const y = (1 - sf) * (s1 + b);
      s0 = s1;
      s1 = x + y;
    }
    return s1;
  },
};
