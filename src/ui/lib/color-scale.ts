/**
 * Heatmap colours fitted to the data. A heatmap's cells arrive as bytes 0..254 linear between the matrix's
 * `lo` and `hi` (the server scales bytes from zero, so 73.8 GB and 73.9 GB of 80 GB both paint the top
 * colour). Here the colour range is the robust extent of the cells (2nd to 98th percentile), so that ranks
 * that differ look different and one outlier cannot flatten the rest; the legend names that range and
 * marks the total (e.g. the GPU's memory) beside it. DOM-free, so unit tests run it in Node.
 */
import { colorTable, type ScaleName } from './colors.js';
import { type Matrix, NO_DATA } from './matrix.js';

export interface ValueRange {
  readonly lo: number;
  readonly hi: number;
}

/** The percentiles a robust range spans. */
export const ROBUST_LOW = 0.02;
export const ROBUST_HIGH = 0.98;

/**
 * The value range of a matrix's cells between the `low` and `high` quantiles (by a byte histogram: one
 * pass, no sort), or null without data. Equal ends (constant data) stay equal: the caller decides.
 */
export function robustRange(
  m: Pick<Matrix, 'cells' | 'lo' | 'hi'>,
  low = ROBUST_LOW,
  high = ROBUST_HIGH,
): ValueRange | null {
  const hist = new Uint32Array(255);
  let n = 0;
  for (let i = 0; i < m.cells.length; i++) {
    const b = m.cells[i]!;
    if (b !== NO_DATA) {
      hist[b]!++;
      n++;
    }
  }
  if (n === 0) return null;
  const quantileByte = (q: number) => {
    // The smallest byte with at least q·n cells at or below it.
    const want = Math.max(1, Math.ceil(q * n));
    let seen = 0;
    for (let b = 0; b < 255; b++) {
      seen += hist[b]!;
      if (seen >= want) return b;
    }
    return 254;
  };
  const value = (b: number) => m.lo + (b / 254) * (m.hi - m.lo);
  return { lo: value(quantileByte(low)), hi: value(quantileByte(high)) };
}

/**
 * The byte extent of a matrix's cells as values (min and max byte present), or null without data: a refetch
 * with this as `lo`/`hi` gives all 255 levels to the data, where bytes from zero gave it a handful.
 */
export function dataExtent(m: Pick<Matrix, 'cells' | 'lo' | 'hi'>): (ValueRange & { levels: number }) | null {
  let min = 255;
  let max = -1;
  for (let i = 0; i < m.cells.length; i++) {
    const b = m.cells[i]!;
    if (b === NO_DATA) continue;
    if (b < min) min = b;
    if (b > max) max = b;
  }
  if (max < 0) return null;
  const value = (b: number) => m.lo + (b / 254) * (m.hi - m.lo);
  return { lo: value(min), hi: value(max), levels: max - min };
}

/**
 * The position (0..1) on the colour scale of a value, for a colour range; values outside clamp to its ends,
 * and a range of zero width puts everything in the middle (one colour: the data is constant).
 */
export function scalePosition(v: number, range: ValueRange): number {
  const span = range.hi - range.lo;
  if (!(span > 0)) return 0.5;
  return Math.max(0, Math.min(1, (v - range.lo) / span));
}

/**
 * A 256-entry lookup table (as colorTable's) for a matrix's bytes painted on `range`: byte b is the value
 * lo + b/254·(hi − lo) of the matrix, coloured at its position in `range`; 255 (no data) is transparent.
 */
export function rangeColorTable(
  scale: ScaleName,
  m: Pick<Matrix, 'lo' | 'hi'>,
  range: ValueRange | null,
): Uint32Array {
  const base = colorTable(scale);
  if (!range) return base;
  const out = new Uint32Array(256);
  for (let b = 0; b < 255; b++) {
    const v = m.lo + (b / 254) * (m.hi - m.lo);
    out[b] = base[Math.round(scalePosition(v, range) * 254)]!;
  }
  out[NO_DATA] = 0;
  return out;
}
