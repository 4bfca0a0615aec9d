/**
 * Latency statistics shared by the scenarios and the load generator (which summarizes its per-request
 * acknowledgement latencies itself, so that only a few numbers cross the IPC channel).
 */

/** Nearest-rank percentile `p` (0–100) of ascending `sorted`; NaN when it is empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)]!;
}

/** Median, p99 and maximum of some latencies (ms); with `count` 0 the others are NaN (null once sent as JSON). */
export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** Summarizes latencies in any order (the array is sorted in place). */
export function summarizeLatencies(ms: number[]): LatencySummary {
  ms.sort((a, b) => a - b);
  return {
    count: ms.length,
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    max: ms.length ? ms[ms.length - 1]! : Number.NaN,
  };
}
