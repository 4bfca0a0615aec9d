/**
 * PLACEHOLDER storage: everything in memory, nothing persisted, series found by scanning. It exists so the
 * roles can be wired end to end before trainwatch's own TSDB lands (issue: "Storage: trainwatch's own
 * embedded time-series database"), which replaces it behind the same interfaces.
 *
 * Durability still holds end to end because the bus is the write-ahead log: this storage never reports a
 * covered position, so after a restart the processor replays the whole bus into it.
 */
import type { SeriesBatch } from '../model/batch.js';
import { type LabelMatcher, type LabelSet, labelsKey, matchesAll, WellKnownLabel } from '../model/labels.js';
import type {
  Appender,
  AppendStats,
  BusPositions,
  Querier,
  SampleIterator,
  SelectedSeries,
  SelectHints,
  Storage,
} from './storage.js';

class MemSeries {
  ts = new Float64Array(8);
  vs = new Float64Array(8);
  n = 0;

  constructor(readonly labels: LabelSet) {}

  /** Inserts in timestamp order; an equal timestamp replaces the value. Returns false for an exact duplicate. */
  insert(t: number, v: number): boolean {
    const n = this.n;
    if (n === 0 || t > this.ts[n - 1]!) {
      if (n === this.ts.length) this.grow();
      this.ts[n] = t;
      this.vs[n] = v;
      this.n++;
      return true;
    }
    const i = lowerBound(this.ts, n, t);
    if (i < n && this.ts[i] === t) {
      if (Object.is(this.vs[i], v)) return false;
      this.vs[i] = v;
      return true;
    }
    if (n === this.ts.length) this.grow();
    this.ts.copyWithin(i + 1, i, n);
    this.vs.copyWithin(i + 1, i, n);
    this.ts[i] = t;
    this.vs[i] = v;
    this.n++;
    return true;
  }

  private grow(): void {
    const ts = new Float64Array(this.ts.length * 2);
    ts.set(this.ts);
    this.ts = ts;
    const vs = new Float64Array(this.vs.length * 2);
    vs.set(this.vs);
    this.vs = vs;
  }
}

/** First index in [lo, n) whose timestamp is >= t. */
function lowerBound(ts: Float64Array, n: number, t: number, lo = 0): number {
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ts[mid]! < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

class MemIterator implements SampleIterator {
  private i: number;
  t = 0;
  v = 0;

  constructor(
    private readonly s: MemSeries,
    private readonly from: number,
    private readonly end: number,
  ) {
    this.i = from - 1;
  }

  next(): boolean {
    if (this.i + 1 >= this.end) {
      this.i = this.end;
      return false;
    }
    this.i++;
    this.t = this.s.ts[this.i]!;
    this.v = this.s.vs[this.i]!;
    return true;
  }

  seek(t: number): boolean {
    if (this.i >= this.from && this.i < this.end && this.t >= t) return true;
    const k = lowerBound(this.s.ts, this.end, t, Math.max(this.i + 1, this.from));
    if (k >= this.end) {
      this.i = this.end;
      return false;
    }
    this.i = k;
    this.t = this.s.ts[k]!;
    this.v = this.s.vs[k]!;
    return true;
  }
}

export class PlaceholderMemoryStorage implements Storage {
  private readonly series = new Map<string, MemSeries>();
  readonly appender: Appender = { append: (tenant, batch) => this.append(tenant, batch) };

  private append(tenant: string, batch: SeriesBatch): AppendStats {
    let samples = 0;
    let duplicates = 0;
    for (let i = 0; i < batch.series.length; i++) {
      const labels = { ...batch.series[i]!, [WellKnownLabel.tenant]: tenant };
      const key = labelsKey(labels);
      let s = this.series.get(key);
      if (!s) {
        s = new MemSeries(labels);
        this.series.set(key, s);
      }
      for (let j = batch.offsets[i]!; j < batch.offsets[i + 1]!; j++) {
        if (s.insert(batch.timestamps[j]!, batch.values[j]!)) samples++;
        else duplicates++;
      }
    }
    return { series: batch.series.length, samples, duplicates };
  }

  querier(tenant: string | null, minT: number, maxT: number): Querier {
    const all = this.series;
    const scoped = (matchers: readonly LabelMatcher[]): MemSeries[] => {
      const out: MemSeries[] = [];
      for (const s of all.values()) {
        if (tenant !== null && s.labels[WellKnownLabel.tenant] !== tenant) continue;
        if (matchesAll(s.labels, matchers)) out.push(s);
      }
      return out;
    };
    return {
      select(matchers: readonly LabelMatcher[], hints?: SelectHints): SelectedSeries[] {
        const lo = Math.max(minT, hints?.minT ?? minT);
        const hi = Math.min(maxT, hints?.maxT ?? maxT);
        return scoped(matchers)
          .map((s) => ({ s, key: labelsKey(s.labels) }))
          .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
          .flatMap(({ s }) => {
            const from = lowerBound(s.ts, s.n, lo);
            const end = lowerBound(s.ts, s.n, hi + 1);
            if (from >= end) return [];
            return [{ labels: s.labels, iterator: () => new MemIterator(s, from, end) }];
          });
      },
      labelNames(matchers = []): string[] {
        const names = new Set<string>();
        for (const s of scoped(matchers)) for (const n of Object.keys(s.labels)) names.add(n);
        return [...names].sort();
      },
      labelValues(name: string, matchers = []): string[] {
        const values = new Set<string>();
        for (const s of scoped(matchers)) {
          const v = s.labels[name];
          if (v !== undefined) values.add(v);
        }
        return [...values].sort();
      },
    };
  }

  async checkpoint(_positions: BusPositions): Promise<void> {
    // Nothing is persisted, so nothing is covered: the bus is replayed from the start after a restart.
  }

  coveredPositions(): BusPositions {
    return new Map();
  }

  async close(): Promise<void> {
    this.series.clear();
  }
}
