/**
 * The heatmap's answer (`GET /api/tw/v1/heatmap`, the fleet's node heatmap) and its byte encoding, written once
 * for the query stage that quantizes it (src/query/dashboard-heatmap.ts, dashboard-matrix.ts) and the
 * dashboard that decodes it (src/ui/lib/matrix.ts). Pure and free of Node imports, so that both tsconfigs
 * compile it.
 */

/** The byte of a cell without data; data is 0..254, linear between the answer's `lo` and `hi`. */
export const NO_DATA_BYTE = 255;

/** A cell's value from its byte; null for no data. */
export function dequantize(byte: number, lo: number, hi: number): number | null {
  return byte === NO_DATA_BYTE ? null : lo + (byte / 254) * (hi - lo);
}

export interface HeatmapRow {
  /** The `by` labels, plus each `keep` label whose value is the same in every series of the row. */
  readonly labels: Readonly<Record<string, string>>;
  readonly series: number;
  readonly mean: number | null;
  readonly recentMean: number | null;
  readonly last: number | null;
  readonly lastT: number | null;
  /** Robust z-score of recentMean among the rows. */
  readonly z: number | null;
  readonly idleSeconds?: number;
}

/** The matrix's grid and scale: rows × cols cells from `start`, a column every `step` ms. */
export interface HeatmapGrid {
  readonly metric: string;
  readonly by: readonly string[];
  readonly start: number;
  readonly step: number;
  readonly cols: number;
  readonly rows: readonly HeatmapRow[];
  readonly lo: number;
  readonly hi: number;
}

export interface HeatmapResponse extends HeatmapGrid {
  readonly encoding: 'u8-base64';
  /** Row-major, one byte per cell (see {@link NO_DATA_BYTE}), base64. */
  readonly values: string;
  /** With job filters or grouping: what rows were grouped by (null: by job), the jobs with data, per row. */
  readonly grouped?: 'project' | 'owner' | null;
  readonly jobs?: number;
  readonly row_jobs?: number[] | null;
}
