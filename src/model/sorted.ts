/**
 * Binary search over sorted timestamps, written once: the head's sample buffers, the storage iterators and
 * the rollup iterators all seek with it.
 */

/** The first index in `[lo, n)` whose timestamp is `>= t` (`n` when there is none); `ts[lo..n)` is sorted. */
export function lowerBound(ts: Float64Array, n: number, t: number, lo = 0): number {
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ts[mid]! < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
