/**
 * Reading raw series for charts: select, iterate, and decimate to about one point per pixel keeping each
 * bucket's minimum and maximum (as uPlot recommends), so a one-second spike survives a thirty-day chart.
 */

import type { ColumnarSeries, JsonSample } from '../model/api-types.js';
import { isStaleNaN } from '../model/batch.js';
import type { LabelMatcher } from '../model/labels.js';
import type { Querier, SelectedSeries, SelectHints } from '../storage/index.js';

/**
 * The series of a selection, for callers that need the whole answer (charts, summaries): a set that broke off
 * part-way fails with its error; warnings are dropped (the dashboard has nowhere to show them per chart).
 */
export async function selectSeries(
  querier: Querier,
  matchers: readonly LabelMatcher[],
  hints?: SelectHints,
  signal?: AbortSignal,
): Promise<readonly SelectedSeries[]> {
  const set = await querier.select(matchers, hints, signal);
  if (set.err) throw set.err;
  return set.series;
}

export type { ColumnarSeries, JsonSample } from '../model/api-types.js';

export function jsonValue(v: number): JsonSample {
  if (Number.isFinite(v)) return v;
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return 'NaN';
}

/**
 * Reads series within [start, end]. With `points`, each series is cut into `points` time buckets and keeps
 * the min and the max of each (and any non-finite value, which a divergence chart must show).
 * Staleness markers are not data and are dropped.
 */
export function readSeries(
  selected: readonly SelectedSeries[],
  start: number,
  end: number,
  points?: number,
): ColumnarSeries[] {
  const out: ColumnarSeries[] = [];
  const width = points && points > 0 ? Math.max(1, (end - start + 1) / points) : 0;
  for (const s of selected) {
    const t: number[] = [];
    const v: JsonSample[] = [];
    const it = s.iterator();
    if (!it.seek(start)) continue;
    if (width === 0) {
      do {
        if (it.t > end) break;
        if (isStaleNaN(it.v)) continue;
        t.push(it.t);
        v.push(jsonValue(it.v));
      } while (it.next());
    } else {
      decimate(it, start, end, width, t, v);
    }
    if (t.length > 0) out.push({ labels: s.labels, t, v });
  }
  return out;
}

function decimate(
  it: { next(): boolean; readonly t: number; readonly v: number },
  start: number,
  end: number,
  width: number,
  t: number[],
  v: JsonSample[],
): void {
  let bucket = -1;
  let minT = 0;
  let minV = 0;
  let maxT = 0;
  let maxV = 0;
  let count = 0;
  const flush = () => {
    if (count === 0) return;
    if (count === 1 || minT === maxT) {
      t.push(minT);
      v.push(minV);
    } else if (minT < maxT) {
      t.push(minT, maxT);
      v.push(minV, maxV);
    } else {
      t.push(maxT, minT);
      v.push(maxV, minV);
    }
    count = 0;
  };
  do {
    const ts = it.t;
    if (ts > end) break;
    const val = it.v;
    if (isStaleNaN(val)) continue;
    if (!Number.isFinite(val)) {
      flush();
      t.push(ts);
      v.push(jsonValue(val));
      continue;
    }
    const b = Math.floor((ts - start) / width);
    if (b !== bucket) {
      flush();
      bucket = b;
    }
    if (count === 0 || val < minV) {
      minV = val;
      minT = ts;
    }
    if (count === 0 || val > maxV) {
      maxV = val;
      maxT = ts;
    }
    count++;
  } while (it.next());
  flush();
}
