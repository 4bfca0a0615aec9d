/**
 * A heatmap row as `GET /api/tw/v1/heatmap` sends it, written once: the query stage
 * (src/query/dashboard-heatmap.ts) produces it and the dashboard (src/ui/lib/matrix.ts) can read the same type.
 * Types only, free of Node imports, so that both the server's and the dashboard's tsconfig compile this file.
 */

export interface HeatmapRow {
  /** The `by` labels, plus each `keep` label whose value is the same in every series of the row. */
  readonly labels: Record<string, string>;
  readonly series: number;
  readonly mean: number | null;
  readonly recentMean: number | null;
  readonly last: number | null;
  readonly lastT: number | null;
  /** Robust z-score of recentMean among the rows. */
  readonly z: number | null;
  /** GPU-seconds below the idle threshold, when the request gave one (`idle_below`). */
  readonly idleSeconds?: number;
}
