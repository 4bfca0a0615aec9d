/**
 * Splicing live tails into what a page already shows: curves (raw points appended after the last one) and
 * spreads (aligned columns replaced from the tail's first column on). Old data before the window's start is
 * dropped, so a "last hour" view stays an hour long.
 */
import type { Curve, Series, SpreadResponse } from './types.js';

export function seriesKey(labels: Readonly<Record<string, string>>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

function cutBefore<T extends { t: number[] }>(s: T, keepFrom: number): number {
  let i = 0;
  while (i < s.t.length && s.t[i]! < keepFrom) i++;
  return i;
}

/** Appends the tail's points newer than each series' last point; new series are added. */
export function mergeSeries(old: readonly Series[], tail: readonly Series[], keepFrom: number): Series[] {
  const byKey = new Map(tail.map((s) => [seriesKey(s.labels), s]));
  const out: Series[] = old.map((o) => {
    const k = seriesKey(o.labels);
    const t = byKey.get(k);
    byKey.delete(k);
    const cut = cutBefore(o, keepFrom);
    const last = o.t.length ? o.t[o.t.length - 1]! : Number.NEGATIVE_INFINITY;
    let from = 0;
    if (t) while (from < t.t.length && t.t[from]! <= last) from++;
    if (cut === 0 && (!t || from === t.t.length)) return o;
    return {
      labels: o.labels,
      t: [...o.t.slice(cut), ...(t ? t.t.slice(from) : [])],
      v: [...o.v.slice(cut), ...(t ? t.v.slice(from) : [])],
    };
  });
  for (const s of byKey.values()) out.push(s);
  return out;
}

export function mergeCurves(old: readonly Curve[], tail: readonly Curve[], keepFrom: number): Curve[] {
  const key = (c: Curve) => `${c.metric}|${seriesKey(c.labels)}`;
  const byKey = new Map(tail.map((c) => [key(c), c]));
  const out = old.map((o) => {
    const t = byKey.get(key(o));
    byKey.delete(key(o));
    let cut = 0;
    while (cut < o.t.length && o.t[cut]! < keepFrom) cut++;
    const last = o.t.length ? o.t[o.t.length - 1]! : Number.NEGATIVE_INFINITY;
    let from = 0;
    if (t) while (from < t.t.length && t.t[from]! <= last) from++;
    if (cut === 0 && (!t || from === t.t.length)) return o;
    return {
      ...o,
      t: [...o.t.slice(cut), ...(t ? t.t.slice(from) : [])],
      v: [...o.v.slice(cut), ...(t ? t.v.slice(from) : [])],
      step: o.step
        ? [...o.step.slice(cut), ...(t?.step ? t.step.slice(from) : t ? t.t.slice(from).map(() => null) : [])]
        : (t?.step ?? null),
    };
  });
  for (const c of byKey.values()) out.push(c);
  return out;
}

/** Replaces columns from the tail's start on (same step), appends new ones, drops those before keepFrom. */
export function mergeSpread(old: SpreadResponse, tail: SpreadResponse, keepFrom: number): SpreadResponse {
  if (tail.step !== old.step) return tail;
  const step = old.step;
  const start = Math.max(old.start, Math.floor(keepFrom / step) * step);
  const end = Math.max(old.start + old.cols * step, tail.start + tail.cols * step);
  const cols = Math.max(1, Math.round((end - start) / step));
  const make = <T>(fill: T) => new Array<T>(cols).fill(fill);
  const out: SpreadResponse = {
    ...old,
    start,
    cols,
    series: Math.max(old.series, tail.series),
    t: Array.from({ length: cols }, (_, i) => start + i * step),
    min: make<number | null>(null),
    max: make<number | null>(null),
    mean: make<number | null>(null),
    sum: make<number | null>(null),
    count: make(0),
  };
  for (const src of [old, tail]) {
    const shift = Math.round((src.start - start) / step);
    for (let c = 0; c < src.cols; c++) {
      const d = c + shift;
      if (d < 0 || d >= cols) continue;
      out.min[d] = src.min[c]!;
      out.max[d] = src.max[c]!;
      out.mean[d] = src.mean[c]!;
      out.sum[d] = src.sum[c]!;
      out.count[d] = src.count[c]!;
    }
  }
  return out;
}

/** The training step at time t along a curve's (t, step) pairs: the last step at or before t. */
export function stepAtTime(
  c: { t: readonly number[]; step: readonly (number | null)[] | null },
  t: number,
): number | null {
  if (!c.step || c.t.length === 0) return null;
  let lo = 0;
  let hi = c.t.length - 1;
  if (t < c.t[0]!) return null;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (c.t[mid]! <= t) lo = mid;
    else hi = mid - 1;
  }
  for (let i = lo; i >= 0; i--) if (c.step[i] !== null) return c.step[i]!;
  return null;
}
