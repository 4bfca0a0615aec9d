/**
 * Derived per-job series, computed in the processor as samples arrive and appended to storage like any
 * other series (recording-rule naming, `level:metric:operation`):
 *
 * | series | from |
 * |---|---|
 * | `job_id:gpu_utilization_ratio:avg` / `:min` / `:max` | the job's GPUs |
 * | `job_id:train_tokens_per_second:sum`, `job_id:train_samples_per_second:sum` | the job's ranks |
 * | `job_id:train_step_duration_seconds:spread` (max − min across ranks), `:max` | the job's ranks |
 *
 * Each is one sample per job per {@link DERIVED_BUCKET_MS} bucket (timestamp = bucket start): every input
 * series contributes the mean of its samples in the bucket, and the bucket is emitted once every input series
 * still reporting has moved past it (its watermark), so that nodes whose batches arrive a little later
 * (agents send per node) are not left out. A series silent for {@link STALE_MS} no longer holds buckets back.
 * Samples arriving for a bucket already emitted are not counted (storage keeps the first value written).
 *
 * State per job: its members (input series) and a few open buckets, each a sum and a count per member in
 * typed arrays; a sample adds to one of them (no lookup by key, no allocation).
 */
import { type SeriesBatch, SeriesBatchBuilder } from '../model/batch.js';
import type { LabelSet } from '../model/labels.js';
import type { AlertIdentity } from './detectors/context.js';
import { Family, growF64, growI32 } from './detectors/family.js';
import type { StateReader, StateWriter } from './state.js';

export const DERIVED_BUCKET_MS = 10_000;
const STALE_MS = 5 * 60_000;

type Op = 'avg' | 'min' | 'max' | 'sum' | 'spread';

/** Input metric → the aggregations derived from it. */
export const DERIVED: Readonly<Record<string, readonly Op[]>> = {
  gpu_utilization_ratio: ['avg', 'min', 'max'],
  train_tokens_per_second: ['sum'],
  train_samples_per_second: ['sum'],
  train_step_duration_seconds: ['spread', 'max'],
};
const DERIVED_METRICS = Object.keys(DERIVED);

export function derivedName(metric: string, op: Op): string {
  return `job_id:${metric}:${op}`;
}

export interface DerivedSnapshot {
  readonly emittedUpTo: number;
  /** [bucket, metric, member, sum, count] */
  readonly open: [number, string, number, number, number][];
}

/** One open bucket: a partial sum and a sample count per member. */
interface Bucket {
  start: number;
  sums: Float64Array;
  counts: Float64Array;
}

/** The newest sample time of a series, by the engine's series ref (dref). */
export type LastTimeOf = (dref: number) => number;

/** One job's members and open buckets. */
export class DerivedAccumulator {
  /** Member ids are creation order, stable across a snapshot and restore of the same series. */
  nextIndex = 0;
  /** Per member id: the engine's series (dref; -1 once removed) and the index of its metric in DERIVED. */
  memberSeries = new Int32Array(16).fill(-1);
  memberMetric = new Int32Array(16);
  private live = 0;
  private buckets: Bucket[] = [];
  /** Buckets before this start were emitted. */
  private emittedUpTo = Number.NEGATIVE_INFINITY;
  /** Newest sample time added: no bucket can be ready before every open one is a bucket behind it. */
  private newest = Number.NEGATIVE_INFINITY;
  private readonly labels = new Map<string, LabelSet>();

  constructor(
    readonly tenant: string,
    readonly jobId: string,
    private readonly lastT: LastTimeOf,
  ) {}

  get members(): number {
    return this.live;
  }

  /** Registers series `dref` of metric `metric` as a member; returns its member id. */
  addMember(dref: number, metric: string): number {
    const m = this.nextIndex++;
    if (m >= this.memberSeries.length) {
      const n = this.memberSeries.length * 2;
      const s = new Int32Array(n).fill(-1);
      s.set(this.memberSeries);
      this.memberSeries = s;
      this.memberMetric = growI32(this.memberMetric, n);
      for (const b of this.buckets) {
        b.sums = growF64(b.sums, n);
        b.counts = growF64(b.counts, n);
      }
    }
    this.memberSeries[m] = dref;
    this.memberMetric[m] = DERIVED_METRICS.indexOf(metric);
    this.live++;
    return m;
  }

  removeMember(m: number): void {
    if (this.memberSeries[m] === -1) return;
    this.memberSeries[m] = -1;
    this.live--;
    for (const b of this.buckets) {
      b.sums[m] = 0;
      b.counts[m] = 0;
    }
  }

  private bucketAt(start: number): Bucket {
    const bs = this.buckets;
    for (let i = bs.length - 1; i >= 0; i--) if (bs[i]!.start === start) return bs[i]!;
    const n = this.memberSeries.length;
    const b: Bucket = { start, sums: new Float64Array(n), counts: new Float64Array(n) };
    bs.push(b);
    return b;
  }

  add(m: number, t: number, v: number): void {
    // Every sample of a member moves `newest` (its series' newest time), even one not counted.
    if (t > this.newest) this.newest = t;
    if (!Number.isFinite(v)) return;
    const start = Math.floor(t / DERIVED_BUCKET_MS) * DERIVED_BUCKET_MS;
    if (start < this.emittedUpTo) return;
    const b = this.bucketAt(start);
    b.sums[m]! += v;
    b.counts[m]!++;
  }

  /** Emits every bucket all live members have passed (or every bucket when `all`). */
  emit(out: DerivedOutput, all = false): void {
    if (this.buckets.length === 0) return;
    let oldest = Number.POSITIVE_INFINITY;
    for (const b of this.buckets) if (b.start < oldest) oldest = b.start;
    // The watermark is at most the newest sample: nothing can be ready yet (the common case, cheaply).
    if (!all && oldest + DERIVED_BUCKET_MS > this.newest) return;
    let newest = Number.NEGATIVE_INFINITY;
    for (let m = 0; m < this.nextIndex; m++) {
      const d = this.memberSeries[m]!;
      if (d < 0) continue;
      const t = this.lastT(d);
      if (t > newest) newest = t;
    }
    let watermark = Number.POSITIVE_INFINITY;
    for (let m = 0; m < this.nextIndex; m++) {
      const d = this.memberSeries[m]!;
      if (d < 0) continue;
      const t = this.lastT(d);
      if (newest - t <= STALE_MS && t < watermark) watermark = t;
    }
    const ready = this.buckets
      .filter((b) => all || b.start + DERIVED_BUCKET_MS <= watermark)
      .sort((a, b) => a.start - b.start);
    if (ready.length === 0) return;
    for (const b of ready) {
      for (let metric = 0; metric < DERIVED_METRICS.length; metric++) {
        let sum = 0;
        let n = 0;
        let min = Number.POSITIVE_INFINITY;
        let max = Number.NEGATIVE_INFINITY;
        for (let m = 0; m < this.nextIndex; m++) {
          if (this.memberMetric[m] !== metric) continue;
          const c = b.counts[m]!;
          if (c === 0) continue;
          const mean = b.sums[m]! / c;
          sum += mean;
          n++;
          if (mean < min) min = mean;
          if (mean > max) max = mean;
        }
        if (n === 0) continue;
        const name = DERIVED_METRICS[metric]!;
        for (const op of DERIVED[name]!) {
          const v =
            op === 'avg' ? sum / n : op === 'min' ? min : op === 'max' ? max : op === 'sum' ? sum : max - min;
          out.add(this.tenant, this.labelsOf(derivedName(name, op)), b.start, v);
        }
      }
      this.emittedUpTo = Math.max(this.emittedUpTo, b.start + DERIVED_BUCKET_MS);
    }
    this.buckets = this.buckets.filter((b) => !ready.includes(b));
  }

  private labelsOf(name: string): LabelSet {
    let l = this.labels.get(name);
    if (!l) {
      l = { __name__: name, job_id: this.jobId };
      this.labels.set(name, l);
    }
    return l;
  }

  /**
   * Member ids in the snapshot are ranks among the live members (in creation order): a restore registers the
   * live members again in that order, numbering them from 0.
   */
  snapshot(): DerivedSnapshot {
    const open: DerivedSnapshot['open'] = [];
    for (const b of this.buckets) {
      let rank = 0;
      for (let m = 0; m < this.nextIndex; m++) {
        if (this.memberSeries[m]! < 0) continue;
        const c = b.counts[m]!;
        if (c !== 0) open.push([b.start, DERIVED_METRICS[this.memberMetric[m]!]!, rank, b.sums[m]!, c]);
        rank++;
      }
    }
    return { emittedUpTo: Number.isFinite(this.emittedUpTo) ? this.emittedUpTo : -1, open };
  }

  /** The open buckets in the binary state file: the content of {@link snapshot}. */
  write(w: StateWriter): void {
    w.float(this.emittedUpTo);
    w.uvarint(this.buckets.length);
    for (const b of this.buckets) {
      w.float(b.start);
      let n = 0;
      for (let m = 0; m < this.nextIndex; m++) if (this.memberSeries[m]! >= 0 && b.counts[m]! !== 0) n++;
      w.uvarint(n);
      let rank = 0;
      for (let m = 0; m < this.nextIndex; m++) {
        if (this.memberSeries[m]! < 0) continue;
        if (b.counts[m]! !== 0) {
          w.uvarint(rank);
          w.float(b.sums[m]!);
          w.float(b.counts[m]!);
        }
        rank++;
      }
    }
  }

  /** Reads what {@link write} wrote (members registered first, as for {@link restore}). */
  read(r: StateReader): void {
    const open: DerivedSnapshot['open'] = [];
    const emittedUpTo = r.float('derived');
    const buckets = r.uvarint('derived buckets');
    for (let i = 0; i < buckets; i++) {
      const start = r.float('derived bucket');
      const n = r.uvarint('derived bucket members');
      for (let k = 0; k < n; k++) {
        const m = r.uvarint('derived member');
        const sum = r.float('derived sum');
        const count = r.float('derived count');
        if (m < this.nextIndex) open.push([start, DERIVED_METRICS[this.memberMetric[m]!]!, m, sum, count]);
      }
    }
    this.restore({ emittedUpTo: Number.isFinite(emittedUpTo) ? emittedUpTo : -1, open });
  }

  /** Members must be registered (the series restored) before the snapshot is loaded. */
  restore(s: DerivedSnapshot): void {
    this.emittedUpTo = s.emittedUpTo < 0 ? Number.NEGATIVE_INFINITY : s.emittedUpTo;
    for (const [bucket, metric, member, sum, count] of s.open) {
      if (member >= this.nextIndex || DERIVED_METRICS[this.memberMetric[member]!] !== metric) continue;
      const b = this.bucketAt(bucket);
      b.sums[member] = sum;
      b.counts[member] = count;
      if (bucket > this.newest) this.newest = bucket;
    }
    // The members' own newest samples are what later emits compare with.
    for (let m = 0; m < this.nextIndex; m++) {
      const d = this.memberSeries[m]!;
      if (d >= 0 && this.lastT(d) > this.newest) this.newest = this.lastT(d);
    }
  }
}

/** Feeds each input series into its job's accumulator (one slot per input series). */
export class DerivedFamily extends Family<DerivedAccumulator> {
  readonly detector = 'derived' as const;
  memberOf = new Int32Array(0);

  protected override grow(n: number): void {
    super.grow(n);
    this.memberOf = growI32(this.memberOf, n);
  }

  protected reset(): void {}

  /** Registers the slot as a member of its accumulator (the slot's params) for metric `metric`. */
  join(slot: number, metric: string): void {
    this.memberOf[slot] = this.params[slot]!.addMember(this.series[slot]!, metric);
  }

  protected buildIdentity(): AlertIdentity {
    throw new Error('derived series raise no alert');
  }

  observe(slot: number, t: number, v: number): void {
    this.params[slot]!.add(this.memberOf[slot]!, t, v);
  }

  override dispose(): void {}

  override free(slot: number): void {
    this.params[slot]?.removeMember(this.memberOf[slot]!);
    super.free(slot);
  }
}

/** Collects derived samples, per tenant, into columnar batches for storage. */
export class DerivedOutput {
  private readonly byTenant = new Map<string, Map<LabelSet, { t: number[]; v: number[] }>>();

  add(tenant: string, labels: LabelSet, t: number, v: number): void {
    let series = this.byTenant.get(tenant);
    if (!series) {
      series = new Map();
      this.byTenant.set(tenant, series);
    }
    let s = series.get(labels);
    if (!s) {
      s = { t: [], v: [] };
      series.set(labels, s);
    }
    s.t.push(t);
    s.v.push(v);
  }

  get empty(): boolean {
    return this.byTenant.size === 0;
  }

  /** The collected samples as one batch per tenant; empties the output. */
  take(): [string, SeriesBatch][] {
    const out: [string, SeriesBatch][] = [];
    for (const [tenant, series] of this.byTenant) {
      const b = new SeriesBatchBuilder();
      for (const [labels, s] of series) {
        b.addSeries(labels);
        for (let i = 0; i < s.t.length; i++) b.add(s.t[i]!, s.v[i]!);
      }
      out.push([tenant, b.build()]);
    }
    this.byTenant.clear();
    return out;
  }
}
