/**
 * Small robust statistics for the detectors: median and MAD over a scratch buffer (no allocation per call),
 * a fixed-size ring of recent values, and an exponentially weighted mean and variance.
 */

/** Sorts `values[0..n)` ascending in place: insertion sort for the small n of the detectors, no allocation. */
export function sortPrefix(values: Float64Array, n: number): void {
  if (n > 48) {
    values.subarray(0, n).sort();
    return;
  }
  for (let i = 1; i < n; i++) {
    const x = values[i]!;
    let j = i - 1;
    while (j >= 0 && values[j]! > x) {
      values[j + 1] = values[j]!;
      j--;
    }
    values[j + 1] = x;
  }
}

/** Median of `values[0..n)`; reorders the array. */
export function medianInPlace(values: Float64Array, n: number): number {
  if (n === 0) return Number.NaN;
  sortPrefix(values, n);
  const mid = n >> 1;
  return n % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
}

/** 1.4826 × MAD: a consistent estimator of the standard deviation for normal data. */
export const MAD_TO_SIGMA = 1.4826;

/**
 * Median and median absolute deviation of `src[0..n)`, using `scratch` (length ≥ n) as working space.
 * `src` is left untouched.
 */
export function medianMad(
  src: ArrayLike<number>,
  n: number,
  scratch: Float64Array,
): { median: number; mad: number } {
  for (let i = 0; i < n; i++) scratch[i] = src[i]!;
  const median = medianInPlace(scratch, n);
  for (let i = 0; i < n; i++) scratch[i] = Math.abs(src[i]! - median);
  const mad = medianInPlace(scratch, n);
  return { median, mad };
}

/** The last `capacity` values pushed, oldest overwritten first. */
export class Ring {
  readonly values: Float64Array;
  private next = 0;
  size = 0;

  constructor(readonly capacity: number) {
    this.values = new Float64Array(capacity);
  }

  push(v: number): void {
    this.values[this.next] = v;
    this.next = (this.next + 1) % this.capacity;
    if (this.size < this.capacity) this.size++;
  }

  /** Oldest first, for snapshots. */
  toArray(): number[] {
    const out: number[] = [];
    const start = this.size < this.capacity ? 0 : this.next;
    for (let i = 0; i < this.size; i++) out.push(this.values[(start + i) % this.capacity]!);
    return out;
  }

  static from(capacity: number, values: readonly number[] | undefined): Ring {
    const r = new Ring(capacity);
    for (const v of values ?? []) r.push(v);
    return r;
  }
}

/** Shared scratch space for medians: detectors run on one thread and never re-enter each other. */
let scratch = new Float64Array(1024);
export function scratchOf(n: number): Float64Array {
  if (scratch.length < n) scratch = new Float64Array(Math.max(n, scratch.length * 2));
  return scratch;
}

/** Exponentially weighted mean and variance (West's incremental form). */
export class Ewm {
  mean = 0;
  variance = 0;
  count = 0;

  constructor(readonly alpha: number) {}

  /** Updates with `x`; returns the deviation of `x` from the mean *before* the update. */
  update(x: number): number {
    if (this.count === 0) {
      this.mean = x;
      this.variance = 0;
      this.count = 1;
      return 0;
    }
    const diff = x - this.mean;
    const incr = this.alpha * diff;
    this.mean += incr;
    this.variance = (1 - this.alpha) * (this.variance + diff * incr);
    this.count++;
    return diff;
  }

  save(): [number, number, number] {
    return [this.mean, this.variance, this.count];
  }

  load(s: unknown): void {
    if (Array.isArray(s) && s.length === 3)
      [this.mean, this.variance, this.count] = s as [number, number, number];
  }
}

/** Upper tail of the standard normal, P(Z > z) (Abramowitz–Stegun 7.1.26 on erfc; absolute error < 1.5e-7). */
export function normalUpperTail(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erfc =
    t *
    (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) *
    Math.exp(-x * x);
  return z >= 0 ? erfc / 2 : 1 - erfc / 2;
}

/** The z with P(Z > z) = q, for 0 < q < 0.5 (Acklam's rational approximation of the tail; relative error < 1.2e-9). */
export function normalUpperQuantile(q: number): number {
  const r = Math.sqrt(-2 * Math.log(q));
  return -(
    (((((-7.784894002430293e-3 * r - 3.223964580411365e-1) * r - 2.400758277161838) * r - 2.549732539343734) *
      r +
      4.374664141464968) *
      r +
      2.938163982698783) /
    ((((7.784695709041462e-3 * r + 3.224671290700398e-1) * r + 2.445134137142996) * r + 3.754408661907416) *
      r +
      1)
  );
}

/**
 * The robust-z threshold for comparing each of `n` members against their peers so that the chance of flagging
 * *some* member by noise alone stays what threshold `z` gives among `reference` members (Bonferroni): a job of
 * 512 ranks makes 64 times the comparisons of one of 8, and its most extreme rank lies further out by chance.
 * Never below `z`.
 */
export function multipleComparisonZ(z: number, n: number, reference: number): number {
  if (n <= reference) return z;
  const q = (normalUpperTail(z) * reference) / n;
  return q > 0 && q < 0.5 ? Math.max(z, normalUpperQuantile(q)) : z;
}
