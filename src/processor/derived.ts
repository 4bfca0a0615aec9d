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
 */
import { type SeriesBatch, SeriesBatchBuilder } from '../model/batch.js';
import type { LabelSet } from '../model/labels.js';
import type { SeriesDetector, SeriesInfo } from './detectors/types.js';

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

export function derivedName(metric: string, op: Op): string {
  return `job_id:${metric}:${op}`;
}

interface Acc {
  sum: number;
  count: number;
}

export interface DerivedSnapshot {
  readonly emittedUpTo: number;
  /** [bucket, metric, member, sum, count] */
  readonly open: [number, string, number, number, number][];
}

/** One job's open buckets. */
export class DerivedAccumulator {
  readonly members: DerivedMember[] = [];
  /** Member ids are creation order, stable across a snapshot and restore of the same series. */
  nextIndex = 0;
  /** bucket start → metric → member index → partial mean. */
  private readonly buckets = new Map<number, Map<string, Map<number, Acc>>>();
  /** Buckets before this start were emitted. */
  private emittedUpTo = Number.NEGATIVE_INFINITY;

  constructor(
    readonly tenant: string,
    readonly jobId: string,
  ) {}

  add(member: DerivedMember, t: number, v: number): void {
    if (!Number.isFinite(v)) return;
    const bucket = Math.floor(t / DERIVED_BUCKET_MS) * DERIVED_BUCKET_MS;
    if (bucket < this.emittedUpTo) return;
    let byMetric = this.buckets.get(bucket);
    if (!byMetric) {
      byMetric = new Map();
      this.buckets.set(bucket, byMetric);
    }
    let byMember = byMetric.get(member.series.name);
    if (!byMember) {
      byMember = new Map();
      byMetric.set(member.series.name, byMember);
    }
    const acc = byMember.get(member.index);
    if (acc) {
      acc.sum += v;
      acc.count++;
    } else {
      byMember.set(member.index, { sum: v, count: 1 });
    }
  }

  /** Emits every bucket all live members have passed (or every bucket when `all`). */
  emit(out: DerivedOutput, all = false): void {
    if (this.buckets.size === 0) return;
    let newest = Number.NEGATIVE_INFINITY;
    for (const m of this.members) if (m.series.lastT > newest) newest = m.series.lastT;
    let watermark = Number.POSITIVE_INFINITY;
    for (const m of this.members) {
      const t = m.series.lastT;
      if (newest - t <= STALE_MS && t < watermark) watermark = t;
    }
    const ready = [...this.buckets.keys()]
      .filter((b) => all || b + DERIVED_BUCKET_MS <= watermark)
      .sort((a, b) => a - b);
    for (const bucket of ready) {
      for (const [metric, byMember] of this.buckets.get(bucket)!) {
        const ops = DERIVED[metric];
        if (!ops || byMember.size === 0) continue;
        let sum = 0;
        let min = Number.POSITIVE_INFINITY;
        let max = Number.NEGATIVE_INFINITY;
        for (const acc of byMember.values()) {
          const mean = acc.sum / acc.count;
          sum += mean;
          if (mean < min) min = mean;
          if (mean > max) max = mean;
        }
        for (const op of ops) {
          const v =
            op === 'avg'
              ? sum / byMember.size
              : op === 'min'
                ? min
                : op === 'max'
                  ? max
                  : op === 'sum'
                    ? sum
                    : max - min;
          out.add(this.tenant, { __name__: derivedName(metric, op), job_id: this.jobId }, bucket, v);
        }
      }
      this.buckets.delete(bucket);
      this.emittedUpTo = Math.max(this.emittedUpTo, bucket + DERIVED_BUCKET_MS);
    }
  }

  snapshot(): DerivedSnapshot {
    const open: DerivedSnapshot['open'] = [];
    for (const [bucket, byMetric] of this.buckets)
      for (const [metric, byMember] of byMetric)
        for (const [member, acc] of byMember) open.push([bucket, metric, member, acc.sum, acc.count]);
    return { emittedUpTo: Number.isFinite(this.emittedUpTo) ? this.emittedUpTo : -1, open };
  }

  /** Members must be registered (the series restored) before the snapshot is loaded. */
  restore(s: DerivedSnapshot): void {
    this.emittedUpTo = s.emittedUpTo < 0 ? Number.NEGATIVE_INFINITY : s.emittedUpTo;
    for (const [bucket, metric, member, sum, count] of s.open) {
      let byMetric = this.buckets.get(bucket);
      if (!byMetric) {
        byMetric = new Map();
        this.buckets.set(bucket, byMetric);
      }
      let byMember = byMetric.get(metric);
      if (!byMember) {
        byMember = new Map();
        byMetric.set(metric, byMember);
      }
      byMember.set(member, { sum, count });
    }
  }
}

/** Feeds one input series into its job's accumulator. */
export class DerivedMember implements SeriesDetector {
  readonly detector = 'derived' as const;

  constructor(
    readonly series: SeriesInfo,
    readonly index: number,
    private readonly acc: DerivedAccumulator,
  ) {}

  observe(t: number, v: number): void {
    this.acc.add(this, t, v);
  }
}

/** Collects derived samples, per tenant, into columnar batches for storage. */
export class DerivedOutput {
  private readonly byTenant = new Map<string, Map<string, { labels: LabelSet; t: number[]; v: number[] }>>();

  add(tenant: string, labels: LabelSet, t: number, v: number): void {
    let series = this.byTenant.get(tenant);
    if (!series) {
      series = new Map();
      this.byTenant.set(tenant, series);
    }
    const key = `${labels.__name__}\u0000${labels.job_id}`;
    let s = series.get(key);
    if (!s) {
      s = { labels, t: [], v: [] };
      series.set(key, s);
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
      for (const s of series.values()) {
        b.addSeries(s.labels);
        for (let i = 0; i < s.t.length; i++) b.add(s.t[i]!, s.v[i]!);
      }
      out.push([tenant, b.build()]);
    }
    this.byTenant.clear();
    return out;
  }
}
