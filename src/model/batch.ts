import { doubled } from './grow.js';
import type { LabelSet } from './labels.js';

/**
 * A columnar batch of samples for many series: the unit that flows from the collector through the bus to
 * the processor and storage.
 *
 * Invariants:
 * - `offsets.length === series.length + 1`, `offsets[0] === 0`, offsets never decrease, and
 *   `offsets[series.length] === sampleCount <= timestamps.length === values.length`.
 * - The samples of series `i` are `timestamps[offsets[i]] .. timestamps[offsets[i+1] - 1]` (milliseconds since
 *   the epoch, integral) with the matching `values` (float64, any bit pattern incl. NaN and the staleness marker).
 * - Samples of one series are in the order the sender produced them; they need not be sorted.
 *
 * Ownership: whoever builds a batch owns it until it is handed to a consumer; a consumer that keeps data
 * beyond the call copies it (typed arrays may be views into a reused buffer).
 */
export interface SeriesBatch {
  readonly series: readonly LabelSet[];
  readonly offsets: Uint32Array;
  readonly timestamps: Float64Array;
  readonly values: Float64Array;
  readonly sampleCount: number;
}

/** Builds a {@link SeriesBatch} series by series, growing its typed arrays geometrically. */
export class SeriesBatchBuilder {
  private series: LabelSet[] = [];
  private offsets: number[] = [0];
  private timestamps: Float64Array;
  private values: Float64Array;
  private count = 0;

  constructor(expectedSamples = 256) {
    this.timestamps = new Float64Array(Math.max(16, expectedSamples));
    this.values = new Float64Array(Math.max(16, expectedSamples));
  }

  get sampleCount(): number {
    return this.count;
  }

  get seriesCount(): number {
    return this.series.length;
  }

  /** Starts a new series; the samples added next belong to it. */
  addSeries(labels: LabelSet): this {
    this.series.push(labels);
    this.offsets.push(this.count);
    return this;
  }

  /** Adds one sample to the series started last. */
  add(timestampMs: number, value: number): this {
    if (this.series.length === 0) throw new Error('SeriesBatchBuilder.add called before addSeries');
    if (this.count === this.timestamps.length) this.grow();
    this.timestamps[this.count] = timestampMs;
    this.values[this.count] = value;
    this.count++;
    this.offsets[this.offsets.length - 1] = this.count;
    return this;
  }

  /** Convenience for one series with one sample, the most common shape from gauges. */
  addSample(labels: LabelSet, timestampMs: number, value: number): this {
    return this.addSeries(labels).add(timestampMs, value);
  }

  /**
   * The builder's value array, for decoders that fill values in place after adding timestamps with
   * placeholder values. Valid until the next `add`.
   */
  valuesView(): Float64Array {
    return this.values;
  }

  build(): SeriesBatch {
    return {
      series: this.series,
      offsets: Uint32Array.from(this.offsets),
      timestamps: this.timestamps.subarray(0, this.count),
      values: this.values.subarray(0, this.count),
      sampleCount: this.count,
    };
  }

  private grow(): void {
    this.timestamps = doubled(this.timestamps);
    this.values = doubled(this.values);
  }
}

export const emptyBatch: SeriesBatch = {
  series: [],
  offsets: new Uint32Array([0]),
  timestamps: new Float64Array(0),
  values: new Float64Array(0),
  sampleCount: 0,
};

/**
 * Prometheus's staleness marker: a specific NaN bit pattern (0x7ff0000000000002) that says "this series ended".
 * Ordinary NaNs are data; only this exact pattern is a marker, so compare bits, never with `isNaN`.
 * V8 keeps NaN payloads in typed arrays and numbers but may canonicalise them in plain JS arrays
 * (`[STALE_NAN]` loses the marker): sample values must stay in typed arrays end to end.
 */
export const STALE_NAN_BITS_HI = 0x7ff00000;
export const STALE_NAN_BITS_LO = 0x00000002;

const staleProbe = new DataView(new ArrayBuffer(8));

export const STALE_NAN: number = (() => {
  staleProbe.setUint32(0, STALE_NAN_BITS_HI);
  staleProbe.setUint32(4, STALE_NAN_BITS_LO);
  return staleProbe.getFloat64(0);
})();

export function isStaleNaN(v: number): boolean {
  if (!Number.isNaN(v)) return false;
  staleProbe.setFloat64(0, v);
  return staleProbe.getUint32(0) === STALE_NAN_BITS_HI && staleProbe.getUint32(4) === STALE_NAN_BITS_LO;
}

/**
 * Splits a batch by a property of each series (e.g. the storage shard it belongs to): one batch per distinct
 * `groupOf` result, each series with all its samples, in the original order. A batch in one group is returned
 * as is.
 */
export function splitBatch(
  batch: SeriesBatch,
  groupOf: (labels: LabelSet) => number,
): Map<number, SeriesBatch> {
  const groups = batch.series.map(groupOf);
  if (groups.every((g) => g === groups[0])) return new Map(groups.length > 0 ? [[groups[0]!, batch]] : []);
  const builders = new Map<number, SeriesBatchBuilder>();
  for (let i = 0; i < batch.series.length; i++) {
    const g = groups[i]!;
    let b = builders.get(g);
    if (!b) {
      b = new SeriesBatchBuilder();
      builders.set(g, b);
    }
    b.addSeries(batch.series[i]!);
    for (let k = batch.offsets[i]!; k < batch.offsets[i + 1]!; k++)
      b.add(batch.timestamps[k]!, batch.values[k]!);
  }
  return new Map([...builders].map(([g, b]) => [g, b.build()]));
}
