/**
 * The series a remote querier answers with: raw samples gathered from the TSDB's answers (several responses
 * may hold parts of one series) and windows computed by the TSDB's window functions. Separate from the
 * querier (remote-querier.ts), which only builds requests and hands the parsed answers here.
 */

import { STALE_NAN_BITS_HI, STALE_NAN_BITS_LO } from '../../model/batch.js';
import type { LabelSet } from '../../model/labels.js';
import { ArraySeries } from '../iterators.js';
import { AGG_COUNT, AGG_SUM, type RollupColumns, RollupIterator } from '../rollup.js';
import type { AggregateArrays, AggregateIterator, SampleArrays, SelectedSeries } from '../storage.js';
import { labelSetSortKey } from '../symbols.js';

/** Sorts one column's (window index, value) pairs by window, keeping the last of equal windows. */
export function sortByWindow(c: { i: number[]; v: number[] }): void {
  let sorted = true;
  for (let k = 1; k < c.i.length; k++)
    if (c.i[k]! <= c.i[k - 1]!) {
      sorted = false;
      break;
    }
  if (sorted) return;
  const order = c.i.map((_, k) => k).sort((a, b) => c.i[a]! - c.i[b]! || a - b);
  const i: number[] = [];
  const v: number[] = [];
  for (const k of order) {
    if (i.length > 0 && i[i.length - 1] === c.i[k]) {
      v[v.length - 1] = c.v[k]!;
      continue;
    }
    i.push(c.i[k]!);
    v.push(c.v[k]!);
  }
  c.i = i;
  c.v = v;
}

export function parseValue(raw: string): number {
  return raw === '+Inf' || raw === 'Inf'
    ? Number.POSITIVE_INFINITY
    : raw === '-Inf'
      ? Number.NEGATIVE_INFINITY
      : Number(raw);
}

/** Windows of one series computed by the TSDB (see RemoteQuerier.selectWindows). */
export class RemoteWindows implements SelectedSeries {
  constructor(
    readonly labels: LabelSet,
    readonly resolutionMs: number,
    private readonly windows: RollupColumns,
    private readonly column: number,
  ) {}

  iterator(): RollupIterator {
    return new RollupIterator(this.windows, this.column);
  }

  aggregates(): AggregateIterator {
    return new RollupIterator(this.windows, this.column);
  }

  readAggregates(out: AggregateArrays): number {
    const w = this.windows;
    out.reset();
    out.reserve(w.n);
    out.t.set(w.t.subarray(0, w.n));
    for (let c = 0; c < w.cols.length; c++) out.cols[c]!.set(w.cols[c]!.subarray(0, w.n));
    out.n = w.n;
    return w.n;
  }

  readSamples(out: SampleArrays): number {
    const w = this.windows;
    out.n = 0;
    out.ensure(w.n);
    out.t.set(w.t.subarray(0, w.n));
    const sum = w.cols[AGG_SUM]!;
    const count = w.cols[AGG_COUNT]!;
    if (this.column >= 0) out.v.set(w.cols[this.column]!.subarray(0, w.n));
    else for (let i = 0; i < w.n; i++) out.v[i] = sum[i]! / count[i]!;
    out.n = w.n;
    return w.n;
  }
}

/** Collects samples per series (a series may come in several parts, e.g. VictoriaMetrics export blocks). */
export class SeriesCollector {
  private readonly parts = new Map<string, { labels: LabelSet; t: number[]; v: Float64Array[]; n: number }>();

  constructor(
    private readonly lo: number,
    private readonly hi: number,
    private readonly nanIsStale: boolean,
  ) {}

  /** Adds samples; `values[i]` null or NaN-ish strings are handled per flavor. */
  add(labels: LabelSet, ts: readonly number[], values: readonly (number | string | null)[]): void {
    const key = labelSetSortKey(labels);
    let p = this.parts.get(key);
    if (!p) {
      p = { labels, t: [], v: [], n: 0 };
      this.parts.set(key, p);
    }
    const v = new Float64Array(values.length);
    const bits = new Uint32Array(v.buffer);
    let k = 0;
    for (let i = 0; i < ts.length; i++) {
      const t = ts[i]!;
      if (t < this.lo || t > this.hi) continue;
      const raw = values[i]!;
      const x =
        raw === null
          ? Number.NaN
          : typeof raw === 'number'
            ? raw
            : raw === '+Inf' || raw === 'Inf'
              ? Number.POSITIVE_INFINITY
              : raw === '-Inf'
                ? Number.NEGATIVE_INFINITY
                : Number(raw);
      p.t.push(t);
      if (Number.isNaN(x) && (raw === null || this.nanIsStale)) {
        // Written as bits: the marker's payload must not depend on how the engine moves NaNs around.
        bits[2 * k] = STALE_NAN_BITS_LO;
        bits[2 * k + 1] = STALE_NAN_BITS_HI;
      } else v[k] = x;
      k++;
    }
    p.v.push(v.subarray(0, k));
    p.n += k;
  }

  /** The series ordered by labels, each sorted by time with one sample per timestamp (the last read wins). */
  finish(): SelectedSeries[] {
    const keys = [...this.parts.keys()].sort();
    const out: SelectedSeries[] = [];
    for (const key of keys) {
      const p = this.parts.get(key)!;
      if (p.n === 0) continue;
      let v: Float64Array;
      if (p.v.length === 1) v = p.v[0]!;
      else {
        v = new Float64Array(p.n);
        let o = 0;
        for (const part of p.v) {
          v.set(part, o);
          o += part.length;
        }
      }
      let t = Float64Array.from(p.t);
      let sorted = true;
      for (let i = 1; i < t.length; i++) {
        if (t[i]! <= t[i - 1]!) {
          sorted = false;
          break;
        }
      }
      if (!sorted) {
        const idx = Array.from({ length: t.length }, (_, i) => i).sort((a, b) => t[a]! - t[b]! || a - b);
        const t2 = new Float64Array(t.length);
        const v2 = new Float64Array(t.length);
        const b = new Uint32Array(v.buffer, v.byteOffset, v.length * 2);
        const b2 = new Uint32Array(v2.buffer);
        let n = 0;
        for (const i of idx) {
          if (n > 0 && t2[n - 1] === t[i]) n--; // same timestamp: the later part wins
          t2[n] = t[i]!;
          b2[2 * n] = b[2 * i]!;
          b2[2 * n + 1] = b[2 * i + 1]!;
          n++;
        }
        t = t2.subarray(0, n);
        v = v2.subarray(0, n);
      }
      out.push(new ArraySeries(p.labels, t, v));
    }
    return out;
  }
}
