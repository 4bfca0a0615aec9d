/**
 * Heatmap matrices as the server sends them (GET /api/tw/v1/heatmap): row-major, one byte per cell, 0..254
 * linear between lo and hi, 255 = no data. Live updates fetch only the newest columns with the same step;
 * {@link mergeMatrix} splices them in and drops columns that slid out of the window.
 */

import {
  dequantize,
  type HeatmapGrid,
  type HeatmapResponse,
  type HeatmapRow,
  NO_DATA_BYTE,
} from '../../model/heatmap-api.js';

export type { HeatmapResponse } from '../../model/heatmap-api.js';
export type HeatmapRowInfo = HeatmapRow;
export const NO_DATA = NO_DATA_BYTE;

export interface Matrix extends HeatmapGrid {
  /** rows × cols bytes, row-major. */
  readonly cells: Uint8Array;
}

export function decodeBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function decodeMatrix(r: HeatmapResponse): Matrix {
  const cells = decodeBase64(r.values);
  if (cells.length !== r.rows.length * r.cols)
    throw new Error(`heatmap of ${r.rows.length} × ${r.cols} cells came with ${cells.length} bytes`);
  const { metric, by, start, step, cols, rows, lo, hi } = r;
  return { metric, by, start, step, cols, rows, lo, hi, cells };
}

/** The identity of a row: its `by` label values. */
export function rowKey(m: { by: readonly string[] }, row: HeatmapRowInfo): string {
  return m.by.map((l) => row.labels[l] ?? '').join('\u0000');
}

export function cellValue(m: Matrix, row: number, col: number): number | null {
  return dequantize(m.cells[row * m.cols + col]!, m.lo, m.hi);
}

/**
 * Splices a tail (same step, same scale) into a matrix: columns of the tail replace the old ones from its
 * start, new rows are appended, and columns starting before `keepFrom` are dropped. Row statistics come from
 * the tail where it has the row (they describe the newest data), else from the old matrix.
 */
export function mergeMatrix(old: Matrix, tail: Matrix, keepFrom: number): Matrix {
  if (tail.step !== old.step)
    throw new Error(`cannot merge a tail of step ${tail.step} into step ${old.step}`);
  const step = old.step;
  const start = Math.max(old.start, Math.floor(keepFrom / step) * step);
  const end = Math.max(old.start + old.cols * step, tail.start + tail.cols * step);
  const cols = Math.max(1, Math.round((end - start) / step));
  const rows: HeatmapRowInfo[] = [];
  const index = new Map<string, number>();
  const tailIndex = new Map<string, number>();
  tail.rows.forEach((r, i) => {
    tailIndex.set(rowKey(tail, r), i);
  });
  for (const r of old.rows) {
    const k = rowKey(old, r);
    index.set(k, rows.length);
    const t = tailIndex.get(k);
    rows.push(t === undefined ? r : tail.rows[t]!);
  }
  for (const r of tail.rows) {
    const k = rowKey(tail, r);
    if (!index.has(k)) {
      index.set(k, rows.length);
      rows.push(r);
    }
  }
  const cells = new Uint8Array(rows.length * cols).fill(NO_DATA);
  // Old columns first, then the tail over them: its first column was still filling in the old matrix.
  for (const m of [old, tail]) {
    const shift = Math.round((m.start - start) / step);
    m.rows.forEach((r, i) => {
      const dst = index.get(rowKey(m, r))! * cols;
      const src = i * m.cols;
      for (let c = Math.max(0, -shift); c < m.cols && c + shift < cols; c++)
        cells[dst + c + shift] = m.cells[src + c]!;
    });
  }
  return { ...old, start, cols, rows, cells };
}
