/**
 * Where every collector of the agent puts its readings until the next batch is closed (at least every
 * `ship.interval_ms`, or when `max_batch_samples` are waiting).
 *
 * A series is interned once into a {@link RecordedSeries} that the collector keeps; a reading is then a few
 * number stores on that object (no allocation per sample). Three ways to record:
 * - `raw`: every sample is shipped as read (scrapes, TensorBoard scalars, host metrics read at the ship rate).
 * - `mean`: readings faster than the ship interval are folded into the interval's mean, shipped under the
 *   series' own name, plus its minimum and maximum under `<name>_min` and `<name>_max`, so a 200 ms stall read
 *   at 100 ms still shows on a 1 s chart (the dip is in `_min`). The timestamp is the last reading's.
 * - `last`: counters read faster than shipped: only the newest reading matters.
 */
import { type SeriesBatch, SeriesBatchBuilder } from '../model/batch.js';
import { doubled } from '../model/grow.js';
import { type LabelSet, labelsKey, METRIC_NAME_LABEL } from '../model/labels.js';

export type RecordMode = 'raw' | 'mean' | 'last';

/**
 * One series as the agent records it. Fields are the accumulators of the current interval (the aggregates
 * storage/rollup.ts keeps per window, here as fields of the one object the agent holds per series anyway).
 */
export class RecordedSeries {
  /** Per interval: readings folded in (mean/last), or raw samples queued. */
  count = 0;
  sum = 0;
  min = 0;
  max = 0;
  lastT = 0;
  lastV = 0;
  lastWriteMs = 0;
  /** Whether the recorder's index forgot this series after a long silence (it is re-added on the next write). */
  forgotten = false;
  /** Scratch for flush grouping; -1 outside a flush. */
  group = -1;
  minLabels: LabelSet | undefined;
  maxLabels: LabelSet | undefined;

  constructor(
    readonly key: string,
    readonly labels: LabelSet,
    readonly mode: RecordMode,
  ) {}
}

/** Series silent for this long are dropped from the index, so that dead processes and jobs do not pile up. */
const FORGET_AFTER_MS = 15 * 60_000;

export class Recorder {
  private readonly index = new Map<string, RecordedSeries>();
  /** Series with a reading in the current interval (mean/last), in first-write order. */
  private touched: RecordedSeries[] = [];
  /** Raw samples of the current interval: series per entry, then its time and value in typed arrays. */
  private rawSeries: RecordedSeries[] = [];
  private rawT = new Float64Array(1024);
  private rawV = new Float64Array(1024);
  private rawCount = 0;
  private lastSweepMs = Date.now();
  /** Called when the pending sample count reaches the size bound, so the owner can close a batch early. */
  onFull: (() => void) | undefined;

  constructor(private readonly maxPending = 20_000) {}

  /** Interns a series. The same labels and mode give the same object until it is forgotten. */
  series(labels: LabelSet, mode: RecordMode): RecordedSeries {
    // labelsKey concatenates a dozen pieces per series, which V8 keeps as a tree of strings for as long as the
    // key lives (~0.5 KB per series); join copies them into one flat string.
    const key = [mode, labelsKey(labels)].join('|');
    let s = this.index.get(key);
    if (!s) {
      s = new RecordedSeries(key, labels, mode);
      this.index.set(key, s);
    }
    return s;
  }

  get seriesCount(): number {
    return this.index.size;
  }

  /** Samples waiting for the next batch (mean/last series count once). */
  get pending(): number {
    return this.rawCount + this.touched.length;
  }

  record(s: RecordedSeries, t: number, v: number): void {
    if (s.forgotten) {
      s.forgotten = false;
      this.index.set(s.key, s);
    }
    s.lastWriteMs = t;
    if (s.mode === 'raw') {
      if (this.rawCount === this.rawT.length) this.growRaw();
      this.rawSeries[this.rawCount] = s;
      this.rawT[this.rawCount] = t;
      this.rawV[this.rawCount] = v;
      this.rawCount++;
    } else {
      if (s.count === 0) {
        this.touched.push(s);
        s.sum = 0;
        s.min = v;
        s.max = v;
      }
      s.count++;
      s.sum += v;
      // NaN readings are kept out of min/max and propagate through the mean, as they are data.
      if (v < s.min) s.min = v;
      if (v > s.max) s.max = v;
      s.lastT = t;
      s.lastV = v;
    }
    if (this.onFull && this.pending >= this.maxPending) this.onFull();
  }

  /** Closes the interval: everything recorded since the last call, as one columnar batch (or undefined). */
  flush(nowMs = Date.now()): SeriesBatch | undefined {
    if (this.rawCount === 0 && this.touched.length === 0) {
      this.sweep(nowMs);
      return undefined;
    }
    // Group raw samples by series (counting sort on first appearance), so each series is one run in the batch.
    const order: RecordedSeries[] = [];
    const counts: number[] = [];
    for (let i = 0; i < this.rawCount; i++) {
      const s = this.rawSeries[i]!;
      if (s.group < 0) {
        s.group = order.length;
        order.push(s);
        counts.push(0);
      }
      counts[s.group]!++;
    }
    const starts = new Uint32Array(order.length + 1);
    for (let g = 0; g < order.length; g++) starts[g + 1] = starts[g]! + counts[g]!;
    const fill = starts.slice(0, order.length);
    const t = new Float64Array(this.rawCount);
    const v = new Float64Array(this.rawCount);
    for (let i = 0; i < this.rawCount; i++) {
      const g = this.rawSeries[i]!.group;
      const at = fill[g]!++;
      t[at] = this.rawT[i]!;
      v[at] = this.rawV[i]!;
    }
    let extra = 0;
    for (const s of this.touched) extra += s.mode === 'mean' ? 3 : 1;
    const b = new SeriesBatchBuilder(this.rawCount + extra);
    for (let g = 0; g < order.length; g++) {
      const s = order[g]!;
      b.addSeries(s.labels);
      for (let i = starts[g]!; i < starts[g + 1]!; i++) b.add(t[i]!, v[i]!);
      s.group = -1;
    }
    for (const s of this.touched) {
      if (s.mode === 'mean') {
        b.addSample(s.labels, s.lastT, s.sum / s.count);
        s.minLabels ??= suffixed(s.labels, '_min');
        s.maxLabels ??= suffixed(s.labels, '_max');
        b.addSample(s.minLabels, s.lastT, s.min);
        b.addSample(s.maxLabels, s.lastT, s.max);
      } else {
        b.addSample(s.labels, s.lastT, s.lastV);
      }
      s.count = 0;
    }
    this.touched.length = 0;
    this.rawSeries.length = 0;
    this.rawCount = 0;
    this.sweep(nowMs);
    return b.build();
  }

  private sweep(nowMs: number): void {
    if (nowMs - this.lastSweepMs < 60_000) return;
    this.lastSweepMs = nowMs;
    for (const [key, s] of this.index) {
      if (s.count === 0 && nowMs - s.lastWriteMs > FORGET_AFTER_MS) {
        s.forgotten = true;
        this.index.delete(key);
      }
    }
  }

  private growRaw(): void {
    this.rawT = doubled(this.rawT);
    this.rawV = doubled(this.rawV);
  }
}

function suffixed(labels: LabelSet, suffix: string): LabelSet {
  return { ...labels, [METRIC_NAME_LABEL]: `${labels[METRIC_NAME_LABEL]}${suffix}` };
}
