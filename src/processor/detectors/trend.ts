/**
 * Robust trends for slow incidents (a memory leak hours from out-of-memory, a loss drifting upwards before it
 * turns NaN): the samples of a series are averaged into fixed-width time buckets, a ring of the newest
 * buckets is kept per slot, and the trend over the last k buckets is Sen's slope with a sign-test confidence
 * bound, so a few outliers (an allocator burst, a loss spike) neither make nor break a trend.
 *
 * Sen's slope here pairs each bucket with the one k/2 later (k/2 pair slopes, O(k) instead of the k² pairs of
 * the full Theil–Sen estimator, still robust to just under a quarter of the buckets being outliers). The
 * pair slopes are independent under "no trend" (each bucket is in one pair), so the number of positive ones
 * is Binomial(k/2, ½) then: the lower confidence bound at `z` is the pair slope of rank
 * ⌊m/2 − z·√m/2⌋ (normal approximation of the sign test's quantile).
 *
 * Per slot: `capacity` bucket times and means in one typed array each (slot × capacity), the open bucket's
 * sums; no allocation per sample, a few array writes; a bucket closes when a sample falls into a later one.
 */
import type { StateReader, StateWriter } from '../state.js';
import { medianInPlace, scratchOf, sortPrefix } from './stats.js';

function growF64(a: Float64Array, n: number): Float64Array<ArrayBuffer> {
  const b = new Float64Array(n);
  b.set(a);
  return b;
}

export class BucketRing {
  /** Per slot × capacity: mean time and mean value of each closed bucket, oldest overwritten first. */
  private ts = new Float64Array(0);
  private vs = new Float64Array(0);
  /** Per slot: closed buckets held, the ring's next write position, the open bucket (index, sums, count). */
  private size = new Float64Array(0);
  private next = new Float64Array(0);
  private openIndex = new Float64Array(0);
  private openT = new Float64Array(0);
  private openV = new Float64Array(0);
  private openN = new Float64Array(0);

  constructor(readonly capacity: number) {}

  grow(n: number): void {
    this.ts = growF64(this.ts, n * this.capacity);
    this.vs = growF64(this.vs, n * this.capacity);
    this.size = growF64(this.size, n);
    this.next = growF64(this.next, n);
    this.openIndex = growF64(this.openIndex, n);
    this.openT = growF64(this.openT, n);
    this.openV = growF64(this.openV, n);
    this.openN = growF64(this.openN, n);
  }

  reset(slot: number): void {
    this.size[slot] = 0;
    this.next[slot] = 0;
    this.openIndex[slot] = Number.NaN;
    this.openT[slot] = 0;
    this.openV[slot] = 0;
    this.openN[slot] = 0;
  }

  /** Nothing held: no closed bucket, no sample in the open one. */
  isEmpty(slot: number): boolean {
    return this.size[slot] === 0 && !(this.openN[slot]! > 0);
  }

  /** Closed buckets held for `slot`. */
  count(slot: number): number {
    return this.size[slot]!;
  }

  /** Adds a sample to the slot's bucket of width `width`; true when it closed the previous bucket. */
  add(slot: number, t: number, v: number, width: number): boolean {
    const index = Math.floor(t / width);
    const open = this.openIndex[slot]!;
    let closed = false;
    if (index !== open) {
      if (!Number.isNaN(open) && this.openN[slot]! > 0) {
        const n = this.openN[slot]!;
        const at = slot * this.capacity + this.next[slot]!;
        this.ts[at] = open * width + this.openT[slot]! / n;
        this.vs[at] = this.openV[slot]! / n;
        this.next[slot] = (this.next[slot]! + 1) % this.capacity;
        if (this.size[slot]! < this.capacity) this.size[slot]!++;
        closed = true;
      }
      this.openIndex[slot] = index;
      this.openT[slot] = 0;
      this.openV[slot] = 0;
      this.openN[slot] = 0;
    }
    // Times relative to the bucket start keep the sums exact with epoch-millisecond timestamps.
    this.openT[slot]! += t - index * width;
    this.openV[slot]! += v;
    this.openN[slot]!++;
    return closed;
  }

  /**
   * Forgets what came before `t0`: closed buckets of width `width` that began before it, and the open bucket if
   * it began before it (its later samples are not separable; the next sample opens that bucket afresh).
   */
  keepSince(slot: number, t0: number, width: number): void {
    let kept = 0;
    const size = this.size[slot]!;
    while (kept < size && Math.floor(this.timeAt(slot, kept) / width) * width >= t0) kept++;
    this.size[slot] = kept;
    if (this.openIndex[slot]! * width < t0) {
      this.openIndex[slot] = Number.NaN;
      this.openT[slot] = 0;
      this.openV[slot] = 0;
      this.openN[slot] = 0;
    }
  }

  /** Time and mean of the i-th newest closed bucket (0 = newest). */
  timeAt(slot: number, i: number): number {
    return this.ts[this.at(slot, i)]!;
  }

  valueAt(slot: number, i: number): number {
    return this.vs[this.at(slot, i)]!;
  }

  private at(slot: number, i: number): number {
    return slot * this.capacity + ((this.next[slot]! - 1 - i + 2 * this.capacity) % this.capacity);
  }

  /**
   * A cheap look before a fit: the mean of the newest three of `k` buckets minus the mean of the oldest
   * three (NaN when fewer than `k`). A window whose ends do not differ by much has no trend worth fitting.
   */
  endsRise(slot: number, k: number): number {
    if (this.size[slot]! < k || k < 6) return Number.NaN;
    const newest = this.valueAt(slot, 0) + this.valueAt(slot, 1) + this.valueAt(slot, 2);
    const oldest = this.valueAt(slot, k - 1) + this.valueAt(slot, k - 2) + this.valueAt(slot, k - 3);
    return (newest - oldest) / 3;
  }

  /** Sen's slope over the newest `k` buckets (per ms) and its bounds; see {@link SenFit}. */
  fit(slot: number, k: number, z: number, out: SenFit): boolean {
    const n = Math.min(k, this.size[slot]!);
    const h = n >> 1;
    if (h < 2) return false;
    const scratch = scratchOf(n);
    let m = 0;
    // Oldest bucket of the window is i = n-1; pair it with the one h later (i - h).
    for (let j = 0; j < h; j++) {
      const a = n - 1 - j;
      const b = a - h;
      const dt = this.timeAt(slot, b) - this.timeAt(slot, a);
      if (dt > 0) scratch[m++] = (this.valueAt(slot, b) - this.valueAt(slot, a)) / dt;
    }
    if (m < 2) return false;
    sortPrefix(scratch, m);
    const pairs = scratch;
    out.slope = m % 2 === 1 ? pairs[m >> 1]! : (pairs[(m >> 1) - 1]! + pairs[m >> 1]!) / 2;
    const r = Math.floor(m / 2 - (z * Math.sqrt(m)) / 2);
    out.lower = r >= 0 ? pairs[r]! : Number.NEGATIVE_INFINITY;
    out.upper = r >= 0 ? pairs[m - 1 - r]! : Number.POSITIVE_INFINITY;
    let positive = 0;
    for (let i = 0; i < m; i++) if (pairs[i]! > 0) positive++;
    out.positive = positive / m;
    const tEnd = this.timeAt(slot, 0);
    out.span = tEnd - this.timeAt(slot, n - 1);
    // The line's value at the newest bucket: the median of each bucket carried along the slope (Theil–Sen).
    // (They overwrite the pair slopes, which are not needed any more.)
    for (let i = 0; i < n; i++)
      scratch[i] = this.valueAt(slot, i) + out.slope * (tEnd - this.timeAt(slot, i));
    out.level = medianInPlace(scratch, n);
    out.buckets = n;
    return true;
  }

  save(slot: number): number[] {
    const out = [
      this.size[slot]!,
      this.openIndex[slot]!,
      this.openT[slot]!,
      this.openV[slot]!,
      this.openN[slot]!,
    ];
    for (let i = this.size[slot]! - 1; i >= 0; i--) out.push(this.timeAt(slot, i), this.valueAt(slot, i));
    return out;
  }

  load(slot: number, d: readonly number[]): void {
    this.reset(slot);
    const size = Math.min(this.capacity, Math.max(0, Math.floor(d[0] ?? 0)));
    this.openIndex[slot] = d[1] ?? Number.NaN;
    this.openT[slot] = d[2] ?? 0;
    this.openV[slot] = d[3] ?? 0;
    this.openN[slot] = d[4] ?? 0;
    for (let i = 0; i < size; i++) {
      const at = slot * this.capacity + i;
      this.ts[at] = d[5 + 2 * i] ?? Number.NaN;
      this.vs[at] = d[6 + 2 * i] ?? Number.NaN;
    }
    this.size[slot] = size;
    this.next[slot] = size % this.capacity;
  }

  write(slot: number, w: StateWriter): void {
    const d = this.save(slot);
    w.uvarint(d.length);
    for (const x of d) w.float(x);
  }

  read(slot: number, r: StateReader, what: string): void {
    const n = r.uvarint(what);
    const d: number[] = [];
    for (let i = 0; i < n; i++) d.push(r.float(what));
    this.load(slot, d);
  }
}

/** What {@link BucketRing.fit} found; one reused object per family (no allocation per fit). */
export class SenFit {
  /** Sen's slope (value per ms) and its sign-test confidence bounds. */
  slope = 0;
  lower = 0;
  upper = 0;
  /** Fraction of pair slopes above zero. */
  positive = 0;
  /** The line's value at the newest bucket, and the time the buckets span (ms). */
  level = 0;
  span = 0;
  buckets = 0;
}
