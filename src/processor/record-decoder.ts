/**
 * Decodes the native payload of a bus record (docs/protocol.md, "Payload") straight into series refs of the
 * processor's {@link SeriesTable} and reused typed arrays: no label object, no string and no key per series
 * of a record whose series are known (the allocation-free counterpart of `decodePayload`, which builds a
 * label object per series and a string per string-table entry).
 *
 * Accepts and refuses exactly what `decodePayload` does, with the same messages (a property test compares
 * them on random and mutated payloads and on the shared test vectors). Values are copied as raw float64
 * bytes, so every NaN payload (Prometheus's staleness marker included) reaches storage bit for bit.
 */
import type { JobEvent } from '../model/job.js';
import { ByteReader, DecodeError } from '../protocol/bytes.js';
import { checkLabelRefs, type DecodeLimits, defaultDecodeLimits, readJobEvents } from '../protocol/native.js';
import { type SeriesTable, SeriesTableError } from './series-table.js';

const NO_EVENTS: readonly JobEvent[] = Object.freeze([]);

/** One decoded record: series entry i has ref `refs[i]` and samples `[starts[i], starts[i + 1])`. */
export class RecordBatch {
  refs = new Int32Array(1024);
  starts = new Uint32Array(1025);
  timestamps = new Float64Array(4096);
  values = new Float64Array(4096);
  private valueBytes = new Uint8Array(this.values.buffer);
  seriesCount = 0;
  sampleCount = 0;
  /** The record's job events (a shared empty list for the many records without any: no garbage). */
  events: readonly JobEvent[] = NO_EVENTS;
  /** Scratch: the record's string-table index → sid. */
  sidOfLocal = new Int32Array(1024);
  /** Scratch: sid → number of the last series that had it as a label name (duplicate names). */
  seen = new Int32Array(1024);
  stamp = 0;

  reset(): void {
    this.seriesCount = 0;
    this.sampleCount = 0;
    this.starts[0] = 0;
    this.events = NO_EVENTS;
  }

  ensureSeries(n: number): void {
    if (n + 1 <= this.refs.length) return;
    let cap = this.refs.length * 2;
    while (cap < n + 1) cap *= 2;
    const r = new Int32Array(cap);
    r.set(this.refs);
    this.refs = r;
    const s = new Uint32Array(cap + 1);
    s.set(this.starts);
    this.starts = s;
  }

  /**
   * Room for `n` samples, keeping the first `kept` (those decoded so far: `sampleCount` is only set once the
   * whole record is decoded, so the caller says how many there are).
   */
  ensureSamples(n: number, kept: number): void {
    if (n <= this.timestamps.length) return;
    let cap = this.timestamps.length * 2;
    while (cap < n) cap *= 2;
    const t = new Float64Array(cap);
    t.set(this.timestamps.subarray(0, kept));
    this.timestamps = t;
    const v = new Float64Array(cap);
    v.set(this.values.subarray(0, kept));
    this.values = v;
    this.valueBytes = new Uint8Array(v.buffer);
  }

  /** Copies `n` little-endian float64s from `src[at..]` bit for bit into values[from..from+n). */
  copyValues(src: Uint8Array, at: number, from: number, n: number): void {
    const vb = this.valueBytes;
    const o = from * 8;
    const len = n * 8;
    if (len >= 64) vb.set(src.subarray(at, at + len), o);
    else for (let k = 0; k < len; k++) vb[o + k] = src[at + k]!;
  }
}

/**
 * Decodes `payload` (a bus record's native payload) for tenant `tenantSid` into `out`. Throws a DecodeError
 * (as `decodePayload` would) for a malformed payload; `out` then holds nothing usable.
 */
export function decodeRecord(
  payload: Uint8Array,
  tenantSid: number,
  table: SeriesTable,
  out: RecordBatch,
  nowMs: number,
  limits: DecodeLimits = defaultDecodeLimits,
): void {
  out.reset();
  const r = new ByteReader(payload);
  const stringCount = r.uvarint('string count');
  if (stringCount > r.remaining)
    throw new DecodeError(`string count ${stringCount} exceeds payload size`, r.pos);
  if (out.sidOfLocal.length < stringCount)
    out.sidOfLocal = new Int32Array(Math.max(stringCount, out.sidOfLocal.length * 2));
  const local = out.sidOfLocal;
  const maxBytes = limits.maxLabelValueBytes;
  for (let i = 0; i < stringCount; i++) {
    const len = r.stringLength('string table entry', maxBytes);
    try {
      local[i] = table.internBytes(payload, r.pos, len);
    } catch (err) {
      if (err instanceof SeriesTableError)
        throw new DecodeError('string table entry is not valid UTF-8', r.pos);
      throw err;
    }
    r.pos += len;
  }

  const seriesCount = r.uvarint('series count');
  if (seriesCount > r.remaining)
    throw new DecodeError(`series count ${seriesCount} exceeds payload size`, r.pos);
  out.ensureSeries(seriesCount);
  const pairs = table.pairScratch(2 * Math.min(limits.maxLabelsPerSeries, 1 << 16));
  let samples = 0;
  if (out.seen.length < table.stringCount)
    out.seen = new Int32Array(Math.max(table.stringCount, out.seen.length * 2));
  const seen = out.seen;
  const end = payload.length;
  for (let s = 0; s < seriesCount; s++) {
    // One-byte varints (counts and string indexes below 128, the common case) are read in place.
    let p = r.pos;
    let labelCount: number;
    if (p < end && payload[p]! < 0x80) {
      labelCount = payload[p]!;
      r.pos = p + 1;
    } else labelCount = r.uvarint('label count');
    if (labelCount > limits.maxLabelsPerSeries) {
      throw new DecodeError(
        `series ${s} has ${labelCount} labels, more than the limit of ${limits.maxLabelsPerSeries}`,
        r.pos,
      );
    }
    // Duplicate names are found by stamping each name's sid with this series' number.
    const stamp = ++out.stamp;
    p = r.pos;
    for (let l = 0; l < labelCount; l++) {
      let ni: number;
      let vi: number;
      if (p + 1 < end && payload[p]! < 0x80 && payload[p + 1]! < 0x80) {
        ni = payload[p]!;
        vi = payload[p + 1]!;
        p += 2;
        r.pos = p;
      } else {
        r.pos = p;
        ni = r.uvarint('label name index');
        vi = r.uvarint('label value index');
        p = r.pos;
      }
      checkLabelRefs(s, ni, vi, stringCount, r.pos);
      const name = local[ni]!;
      if (seen[name] === stamp)
        throw new DecodeError(`series ${s} has label ${JSON.stringify(table.strings[name])} twice`, r.pos);
      seen[name] = stamp;
      pairs[2 * l] = name;
      pairs[2 * l + 1] = local[vi]!;
    }
    let sampleCount: number;
    if (p < end && payload[p]! < 0x80) {
      sampleCount = payload[p]!;
      r.pos = p + 1;
    } else {
      r.pos = p;
      sampleCount = r.uvarint('sample count');
    }
    if (sampleCount * 9 > r.remaining) {
      throw new DecodeError(
        `series ${s} claims ${sampleCount} samples but only ${r.remaining} bytes remain`,
        r.pos,
      );
    }
    out.refs[s] = table.resolve(tenantSid, pairs, labelCount, nowMs);
    out.ensureSamples(samples + sampleCount, samples);
    const ts = out.timestamps;
    let t = 0;
    p = r.pos;
    for (let j = 0; j < sampleCount; j++) {
      // The zigzag varint read in place (ByteReader.svarint's arithmetic); anything it would refuse (truncated,
      // longer than 8 bytes, beyond 2^53) is read again by it, to throw its error.
      let u = 0;
      let mul = 1;
      let q = p;
      for (;;) {
        if (q >= end || q - p === 8) {
          q = -1;
          break;
        }
        const b = payload[q++]!;
        u += (b & 0x7f) * mul;
        if (b < 0x80) break;
        mul *= 0x80;
      }
      if (q < 0 || u > Number.MAX_SAFE_INTEGER) {
        r.pos = p;
        u = r.uvarint('timestamp');
        q = r.pos;
      }
      p = q;
      t += u % 2 === 0 ? u / 2 : -(u + 1) / 2;
      if (!Number.isSafeInteger(t)) {
        r.pos = p;
        throw new DecodeError(`series ${s} has timestamp ${t} out of range`, r.pos);
      }
      ts[samples + j] = t;
    }
    r.pos = p;
    r.need(sampleCount * 8, 'values');
    out.copyValues(payload, r.pos, samples, sampleCount);
    r.pos += sampleCount * 8;
    samples += sampleCount;
    out.starts[s + 1] = samples;
  }
  out.seriesCount = seriesCount;
  out.sampleCount = samples;

  const events = readJobEvents(r);
  if (events.length > 0) out.events = events;
}
