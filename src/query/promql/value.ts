/**
 * Query results (what callers get) and the evaluator's internal columnar values.
 *
 * Internally every instant-vector expression is evaluated over all steps of the query at once: one
 * {@link StepSeries} per output series with a `Float64Array` of values and a presence mask, one slot per
 * step. Label work (matching, grouping, signatures) is then done once per series rather than once per step,
 * and no object is created per sample.
 */
import type { LabelSet } from '../../model/labels.js';

/** One element of an instant vector result. */
export interface InstantSample {
  readonly labels: LabelSet;
  /** Evaluation timestamp, ms. */
  readonly t: number;
  readonly v: number;
}

/** One series of a range (matrix) result: columnar points, timestamps in ms. */
export interface RangeSeries {
  readonly labels: LabelSet;
  readonly timestamps: Float64Array;
  readonly values: Float64Array;
}

export type QueryValue =
  | { readonly resultType: 'vector'; readonly samples: readonly InstantSample[] }
  | { readonly resultType: 'matrix'; readonly series: readonly RangeSeries[] }
  | { readonly resultType: 'scalar'; readonly t: number; readonly v: number }
  | { readonly resultType: 'string'; readonly t: number; readonly v: string };

/**
 * A rule's result as an instant vector (Prometheus's `rules.EngineQueryFunc`): a vector as it is, a scalar as
 * one sample without labels; a range vector or a string is an error naming the type.
 */
export function ruleVector(v: QueryValue): readonly InstantSample[] {
  if (v.resultType === 'vector') return v.samples;
  if (v.resultType === 'scalar') return [{ labels: {}, t: v.t, v: v.v }];
  throw new Error(`rule result is a ${v.resultType}, not a vector or scalar`);
}

export interface QueryStats {
  /** Samples read from storage. */
  readonly samplesRead: number;
  /** Series selected from storage. */
  readonly seriesSelected: number;
  /** Largest number of samples held in memory at once (what `maxSamples` limits). */
  readonly peakSamples: number;
  readonly evalMs: number;
}

export interface QueryResult {
  readonly value: QueryValue;
  /** Prometheus's warning annotations, rendered as its API does: `PromQL warning: ... (1:5)`. */
  readonly warnings: readonly string[];
  /** Prometheus's info annotations: `PromQL info: ... (1:5)`. */
  readonly infos: readonly string[];
  readonly stats: QueryStats;
}

// ---- internal ----

export interface StepSeries {
  labels: LabelSet;
  /** Value per step; meaningful only where `has[i] === 1`. */
  readonly vals: Float64Array;
  readonly has: Uint8Array;
  /** Delayed name removal: the metric name is still in `labels` but must be dropped at the end. */
  dropName: boolean;
}

export type EvalValue =
  | { readonly kind: 'scalar'; readonly vals: Float64Array }
  | { readonly kind: 'string'; readonly val: string }
  | { readonly kind: 'vector'; readonly series: StepSeries[] };

/** Number of present points in a vector value. */
export function pointCount(v: EvalValue): number {
  if (v.kind === 'scalar') return v.vals.length;
  if (v.kind === 'string') return 1;
  let n = 0;
  for (const s of v.series) {
    const has = s.has;
    for (let i = 0; i < has.length; i++) n += has[i]!;
  }
  return n;
}

/**
 * Step columns are carved from shared slabs: a fleet-wide selector makes tens of thousands of them, and one
 * backing store each (they are too large for V8's on-heap typed arrays) made the garbage collector a quarter
 * of a query's time. A slab lives while any of its columns does; columns never overlap.
 */
const SLAB_STEPS = 8192;
let valSlab = new Float64Array(0);
let hasSlab = new Uint8Array(0);
let slabUsed = 0;

export function newStepSeries(labels: LabelSet, steps: number, dropName = false): StepSeries {
  if (steps * 4 > SLAB_STEPS) {
    return { labels, vals: new Float64Array(steps), has: new Uint8Array(steps), dropName };
  }
  if (slabUsed + steps > valSlab.length) {
    valSlab = new Float64Array(SLAB_STEPS);
    hasSlab = new Uint8Array(SLAB_STEPS);
    slabUsed = 0;
  }
  const vals = valSlab.subarray(slabUsed, slabUsed + steps);
  const has = hasSlab.subarray(slabUsed, slabUsed + steps);
  slabUsed += steps;
  return { labels, vals, has, dropName };
}
