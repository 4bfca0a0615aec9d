/**
 * A decoded request as the collector's protocol decoders leave it: columnar samples per series *ref* of the
 * tenant's {@link SeriesRegistry}, in reused typed arrays, and the writer that turns it into native payloads
 * (docs/protocol.md, "Payload"), one per partition key, for the bus.
 *
 * Values are kept as raw float64 bytes: a decoder copies the 8 bytes of a protobuf `double` straight in, so
 * every NaN payload, Prometheus's staleness marker included, reaches the bus bit for bit.
 *
 * Reused for every request of a route: everything here is consumed synchronously (decode, then `encode`)
 * before the route's first `await`.
 */

import { doubled } from '../model/grow.js';
import { growBuffer } from '../protocol/bytes.js';
import type { SeriesRegistry } from './series-registry.js';

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  // Float64Array bytes are copied to and from little-endian wire formats without swapping.
  throw new Error('trainwatch needs a little-endian machine');
}

export interface PartitionPayload {
  readonly key: string;
  readonly payload: Uint8Array;
  readonly series: number;
  readonly samples: number;
}

export class RefBatch {
  refs = new Int32Array(1024);
  /** Series entry i's samples are [starts[i], starts[i + 1]). */
  starts = new Uint32Array(1025);
  timestamps = new Float64Array(4096);
  values = new Float64Array(4096);
  valueBytes = new Uint8Array(this.values.buffer);
  seriesCount = 0;
  sampleCount = 0;

  reset(): void {
    this.seriesCount = 0;
    this.sampleCount = 0;
    this.starts[0] = 0;
  }

  /** Starts a series entry; the samples added next belong to it. The same ref may appear in many entries. */
  beginSeries(ref: number): void {
    if (this.seriesCount + 1 >= this.refs.length) {
      this.refs = doubled(this.refs);
      this.starts = doubled(this.starts);
    }
    this.refs[this.seriesCount] = ref;
    this.starts[this.seriesCount] = this.sampleCount;
    this.seriesCount++;
    this.starts[this.seriesCount] = this.sampleCount;
  }

  /** Forgets everything added after the batch had `series` entries and `samples` samples. */
  truncate(series: number, samples: number): void {
    this.seriesCount = series;
    this.sampleCount = samples;
    this.starts[series] = samples;
  }

  /** Drops the series entry begun last when it got no samples. */
  dropEmptySeries(): void {
    if (this.seriesCount > 0 && this.starts[this.seriesCount - 1] === this.sampleCount) this.seriesCount--;
  }

  /** Makes room for one more sample and returns its index; the caller fills timestamps and values. */
  nextSample(): number {
    const i = this.sampleCount;
    if (i === this.timestamps.length) this.grow();
    this.sampleCount = i + 1;
    this.starts[this.seriesCount] = i + 1;
    return i;
  }

  add(timestampMs: number, value: number): void {
    const i = this.nextSample();
    this.timestamps[i] = timestampMs;
    this.values[i] = value;
  }

  /** Adds a sample whose value is the 8 little-endian bytes at `src[at..at+8)`, copied bit for bit. */
  addRaw(timestampMs: number, src: Uint8Array, at: number): void {
    const i = this.nextSample();
    this.timestamps[i] = timestampMs;
    const vb = this.valueBytes;
    const o = i * 8;
    vb[o] = src[at]!;
    vb[o + 1] = src[at + 1]!;
    vb[o + 2] = src[at + 2]!;
    vb[o + 3] = src[at + 3]!;
    vb[o + 4] = src[at + 4]!;
    vb[o + 5] = src[at + 5]!;
    vb[o + 6] = src[at + 6]!;
    vb[o + 7] = src[at + 7]!;
  }

  private grow(): void {
    const n = this.timestamps.length * 2;
    const t = new Float64Array(n);
    t.set(this.timestamps);
    this.timestamps = t;
    const v = new Float64Array(n);
    v.set(this.values);
    this.values = v;
    this.valueBytes = new Uint8Array(v.buffer);
  }
}

/**
 * Encodes a {@link RefBatch} into one native payload per partition key. Strings are deduplicated per
 * payload through the registry's interned string ids (a generation-stamped index array, no Map per request);
 * label strings are copied from their pre-encoded bytes.
 */
export class PayloadWriter {
  private readonly out = new PayloadBytes();
  private stamp = new Int32Array(1024);
  private local = new Int32Array(1024);
  private generation = 0;
  private tableIds = new Int32Array(1024);
  private groupStamp = new Int32Array(64);
  private groupOfPartition = new Int32Array(64);
  private seriesOrder = new Int32Array(1024);
  private groupCounts = new Int32Array(64);

  encode(batch: RefBatch, registry: SeriesRegistry): PartitionPayload[] {
    const n = batch.seriesCount;
    const partitions = registry.partitionKeys.length;
    if (this.groupStamp.length < partitions) {
      this.groupStamp = new Int32Array(partitions * 2);
      this.groupOfPartition = new Int32Array(partitions * 2);
    }
    if (this.seriesOrder.length < n) this.seriesOrder = new Int32Array(n * 2);
    const gen = ++this.generation;
    // Group series entries by partition: count, then a counting sort of entry indexes.
    let groups = 0;
    const groupPartition: number[] = [];
    for (let i = 0; i < n; i++) {
      const p = registry.partitionIndexOf(batch.refs[i]!);
      if (this.groupStamp[p] !== gen) {
        this.groupStamp[p] = gen;
        this.groupOfPartition[p] = groups++;
        groupPartition.push(p);
      }
    }
    if (this.groupCounts.length < groups + 1) this.groupCounts = new Int32Array((groups + 1) * 2);
    const counts = this.groupCounts;
    counts.fill(0, 0, groups + 1);
    for (let i = 0; i < n; i++)
      counts[this.groupOfPartition[registry.partitionIndexOf(batch.refs[i]!)]! + 1]!++;
    for (let g = 0; g < groups; g++) counts[g + 1]! += counts[g]!;
    const fill = Int32Array.from(counts.subarray(0, groups));
    for (let i = 0; i < n; i++) {
      const g = this.groupOfPartition[registry.partitionIndexOf(batch.refs[i]!)]!;
      this.seriesOrder[fill[g]!++] = i;
    }
    const result: PartitionPayload[] = [];
    for (let g = 0; g < groups; g++) {
      result.push(
        this.encodeGroup(
          batch,
          registry,
          counts[g]!,
          counts[g + 1]!,
          registry.partitionKeys[groupPartition[g]!]!,
        ),
      );
    }
    return result;
  }

  private encodeGroup(
    batch: RefBatch,
    registry: SeriesRegistry,
    from: number,
    to: number,
    key: string,
  ): PartitionPayload {
    const strings = registry.stringCount;
    if (this.stamp.length < strings) {
      this.stamp = new Int32Array(strings * 2);
      this.local = new Int32Array(strings * 2);
    }
    const gen = ++this.generation;
    let tableSize = 0;
    const arena = registry.labelIdArena();
    for (let k = from; k < to; k++) {
      const ref = batch.refs[this.seriesOrder[k]!]!;
      const first = registry.labelIdStart(ref);
      const last = first + registry.labelIdCount(ref);
      for (let j = first; j < last; j++) {
        const id = arena[j]!;
        if (this.stamp[id] !== gen) {
          this.stamp[id] = gen;
          this.local[id] = tableSize;
          if (tableSize === this.tableIds.length) {
            const t = new Int32Array(tableSize * 2);
            t.set(this.tableIds);
            this.tableIds = t;
          }
          this.tableIds[tableSize++] = id;
        }
      }
    }
    const out = this.out;
    out.reset();
    out.uvarint(tableSize);
    const strArena = registry.stringArena;
    const strStart = registry.stringStart;
    const strSize = registry.stringSize;
    for (let i = 0; i < tableSize; i++) {
      const id = this.tableIds[i]!;
      const at = strStart[id]!;
      out.bytesRange(strArena, at, at + strSize[id]!);
    }
    out.uvarint(to - from);
    let samples = 0;
    for (let k = from; k < to; k++) {
      const entry = this.seriesOrder[k]!;
      const ref = batch.refs[entry]!;
      const first = registry.labelIdStart(ref);
      const count = registry.labelIdCount(ref);
      const s0 = batch.starts[entry]!;
      const s1 = batch.starts[entry + 1]!;
      // Worst case: label count + indexes + sample count (5 bytes each), 8 per timestamp delta, 8 per value.
      out.ensure(5 * (count + 2) + 16 * (s1 - s0));
      out.uvarint32(count / 2);
      for (let j = first; j < first + count; j++) out.uvarint32(this.local[arena[j]!]!);
      out.uvarint32(s1 - s0);
      let prev = 0;
      for (let s = s0; s < s1; s++) {
        const t = batch.timestamps[s]!;
        const d = t - prev;
        out.uvarint(d >= 0 ? d * 2 : -d * 2 - 1);
        prev = t;
      }
      out.bytesRange(batch.valueBytes, s0 * 8, s1 * 8);
      samples += s1 - s0;
    }
    out.uvarint(0); // no job events
    return { key, payload: out.toBytes(), series: to - from, samples };
  }
}

/**
 * The growable output buffer of {@link PayloadWriter}: varints without the range checks of the general
 * ByteWriter (inputs here are counts, indexes and zigzagged millisecond deltas, always < 2^53), and a
 * 32-bit fast path for counts and string indexes.
 */
class PayloadBytes {
  private buf = new Uint8Array(1 << 16);
  private pos = 0;

  reset(): void {
    this.pos = 0;
  }

  ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.buf = growBuffer(this.buf, this.pos, n);
  }

  /** v < 2^31; the caller ensured 5 bytes. */
  uvarint32(v: number): void {
    const b = this.buf;
    let p = this.pos;
    while (v >= 0x80) {
      b[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    b[p++] = v;
    this.pos = p;
  }

  /** 0 ≤ v < 2^53. */
  uvarint(v: number): void {
    if (v < 0x80000000) {
      this.ensure(5);
      this.uvarint32(v);
      return;
    }
    this.ensure(8);
    const b = this.buf;
    let p = this.pos;
    while (v >= 0x80) {
      b[p++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    b[p++] = v;
    this.pos = p;
  }

  /** Copies `src[from..to)` without creating a view object (one per series would feed the GC). */
  bytesRange(src: Uint8Array, from: number, to: number): void {
    const n = to - from;
    this.ensure(n);
    const b = this.buf;
    const p = this.pos;
    for (let i = 0; i < n; i++) b[p + i] = src[from + i]!;
    this.pos += n;
  }

  toBytes(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}
