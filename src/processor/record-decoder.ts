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
import { hashBytes, type SeriesTable, SeriesTableError } from './series-table.js';

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

/** Bytes all remembered record shapes may hold together; past it, the cache starts over. */
const SHAPES_MAX_BYTES = 16 << 20;
/** Remembered shapes (direct-mapped by the hash of the string table). */
const SHAPE_SLOTS = 1024;

/**
 * What the labels of one record decoded to: its string table's bytes, the sid of each entry, each series'
 * label section (label count and index pairs, as bytes) and the ref it resolved to. Valid while the series
 * table frees no series (`epoch`), for the same tenant and decode limits.
 */
class RecordShape {
  constructor(
    readonly tenantSid: number,
    readonly epoch: number,
    readonly limits: DecodeLimits,
    readonly table: Uint8Array,
    readonly sids: Int32Array<ArrayBuffer>,
    readonly labels: Uint8Array,
    /** End of series i's section in `labels` (it starts where series i − 1's ends). */
    readonly ends: Int32Array,
    readonly refs: Int32Array,
  ) {}

  get bytes(): number {
    return this.table.length + this.labels.length + 4 * (this.sids.length + 2 * this.refs.length) + 200;
  }
}

/**
 * Record shapes seen before. A sender that sends the same series in the same order each time (an agent per
 * node, a scraper per target) makes records whose string table and label sections are byte for byte those of
 * its previous record: such a record's labels are then checked by comparing bytes, and each series' ref read
 * from the shape, instead of interning every string and looking every series up by its labels again. A byte
 * that differs sends that series (and the record's new shape) the ordinary way.
 *
 * Exactness: equal string-table bytes intern to the same sids (the table never frees a string) and equal
 * label sections of equal tables name the same labels, which were valid (under the same limits) when the
 * shape was recorded; a shape is dropped once the table frees any series (a ref may then name another one).
 */
export class RecordShapes {
  private slots: (RecordShape | undefined)[] = new Array(SHAPE_SLOTS);
  private heldBytes = 0;
  /** Per slot, the hash of the last string table that had no shape there (see {@link repeats}). */
  private readonly seen = new Int32Array(SHAPE_SLOTS);
  // Scratch: the shape of the record being decoded, while it differs from the remembered one.
  labelBuf = new Uint8Array(1 << 16);
  labelUsed = 0;
  ends = new Int32Array(1024);
  refs = new Int32Array(1024);

  /**
   * Whether a string table with this hash was seen before (and notes it): a record's shape is only remembered
   * when its string table repeats, so that records that never repeat cost nothing to remember.
   */
  repeats(hash: number): boolean {
    const slot = hash & (SHAPE_SLOTS - 1);
    if (this.seen[slot] === hash) return true;
    this.seen[slot] = hash;
    return false;
  }

  find(hash: number): RecordShape | undefined {
    return this.slots[hash & (SHAPE_SLOTS - 1)];
  }

  put(hash: number, shape: RecordShape): void {
    if (this.heldBytes + shape.bytes > SHAPES_MAX_BYTES) {
      this.slots = new Array(SHAPE_SLOTS);
      this.heldBytes = 0;
    }
    const slot = hash & (SHAPE_SLOTS - 1);
    const old = this.slots[slot];
    if (old) this.heldBytes -= old.bytes;
    this.slots[slot] = shape;
    this.heldBytes += shape.bytes;
  }

  /** Room to record series `s` with a label section of `len` bytes. */
  ensure(s: number, len: number): void {
    if (s >= this.ends.length) {
      const n = Math.max(s + 1, this.ends.length * 2);
      const e = new Int32Array(n);
      e.set(this.ends);
      this.ends = e;
      const r = new Int32Array(n);
      r.set(this.refs);
      this.refs = r;
    }
    if (this.labelUsed + len > this.labelBuf.length) {
      const b = new Uint8Array(Math.max(this.labelUsed + len, this.labelBuf.length * 2));
      b.set(this.labelBuf.subarray(0, this.labelUsed));
      this.labelBuf = b;
    }
  }

  /** Bytes held by the remembered shapes. */
  get bytes(): number {
    return this.heldBytes;
  }
}

/**
 * The end of the string table that starts at `pos` with `count` entries, or -1 where any entry is malformed
 * (too long, truncated: the ordinary path then reports it). Never throws.
 */
function stringTableEnd(b: Uint8Array, pos: number, count: number, maxBytes: number): number {
  const end = b.length;
  let q = pos;
  for (let i = 0; i < count; i++) {
    let len = 0;
    let mul = 1;
    for (let k = 0; ; k++) {
      if (q >= end || k === 8) return -1;
      const byte = b[q++]!;
      len += (byte & 0x7f) * mul;
      if (byte < 0x80) break;
      mul *= 0x80;
    }
    if (len > maxBytes || len > end - q) return -1;
    q += len;
  }
  return q;
}

function sameBytes(a: Uint8Array, at: number, b: Uint8Array, bt: number, len: number): boolean {
  for (let k = 0; k < len; k++) if (a[at + k] !== b[bt + k]) return false;
  return true;
}

/**
 * Decodes `payload` (a bus record's native payload) for tenant `tenantSid` into `out`. Throws a DecodeError
 * (as `decodePayload` would) for a malformed payload; `out` then holds nothing usable. With `shapes`, a record
 * shaped as one decoded before skips the label lookups (see {@link RecordShapes}); the result is the same.
 */
export function decodeRecord(
  payload: Uint8Array,
  tenantSid: number,
  table: SeriesTable,
  out: RecordBatch,
  nowMs: number,
  limits: DecodeLimits = defaultDecodeLimits,
  shapes?: RecordShapes,
): void {
  out.reset();
  const r = new ByteReader(payload);
  const stringCount = r.uvarint('string count');
  if (stringCount > r.remaining)
    throw new DecodeError(`string count ${stringCount} exceeds payload size`, r.pos);
  if (out.sidOfLocal.length < stringCount)
    out.sidOfLocal = new Int32Array(Math.max(stringCount, out.sidOfLocal.length * 2));
  let local = out.sidOfLocal;
  const maxBytes = limits.maxLabelValueBytes;
  // The remembered shape of a record with this very string table (same tenant, limits and table epoch).
  let shape: RecordShape | undefined;
  let shapeHash = 0;
  let tableEnd = -1;
  if (shapes) {
    tableEnd = stringTableEnd(payload, r.pos, stringCount, maxBytes);
    if (tableEnd >= 0) {
      shapeHash = hashBytes(payload, 0, tableEnd) ^ Math.imul(tenantSid + 1, 0x9e3779b1);
      const found = shapes.find(shapeHash);
      if (
        found &&
        found.tenantSid === tenantSid &&
        found.epoch === table.epoch &&
        found.limits === limits &&
        found.table.length === tableEnd &&
        sameBytes(found.table, 0, payload, 0, tableEnd)
      )
        shape = found;
    }
  }
  if (shape) {
    local = shape.sids;
    r.pos = tableEnd;
  } else {
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
  const minute = Math.floor(nowMs / 60_000);
  const lastSeen = table.lastSeen;
  // Recording this record's shape: from the start without a remembered one, else from its first difference.
  let recording = shapes !== undefined && tableEnd >= 0 && shape === undefined && shapes.repeats(shapeHash);
  if (recording) shapes!.labelUsed = 0;
  for (let s = 0; s < seriesCount; s++) {
    const labelStart = r.pos;
    let ref = -1;
    if (shape !== undefined && !recording) {
      if (s < shape.refs.length) {
        const from = s === 0 ? 0 : shape.ends[s - 1]!;
        const len = shape.ends[s]! - from;
        if (len <= end - labelStart && sameBytes(shape.labels, from, payload, labelStart, len)) {
          ref = shape.refs[s]!;
          r.pos = labelStart + len;
        }
      }
      if (ref < 0) {
        // The first series that differs: the record gets a shape of its own, starting with those that matched.
        recording = true;
        const keep = s === 0 ? 0 : shape.ends[s - 1]!;
        shapes!.labelUsed = 0;
        shapes!.ensure(s, keep);
        shapes!.labelBuf.set(shape.labels.subarray(0, keep));
        shapes!.labelUsed = keep;
        shapes!.ends.set(shape.ends.subarray(0, s));
        shapes!.refs.set(shape.refs.subarray(0, s));
      }
    }
    let labelCount = 0;
    if (ref < 0) {
      // One-byte varints (counts and string indexes below 128, the common case) are read in place.
      let p = r.pos;
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
    }
    const labelEnd = r.pos;
    let p = r.pos;
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
    // A series counts as seen at the same point on both paths (after its sample count is checked), so that a
    // record refused part-way leaves the table as the ordinary path would (the property test compares sweeps).
    if (ref < 0) ref = table.resolve(tenantSid, pairs, labelCount, nowMs);
    else if (lastSeen[ref] !== minute) lastSeen[ref] = minute;
    out.refs[s] = ref;
    if (recording) {
      const sh = shapes!;
      const len = labelEnd - labelStart;
      sh.ensure(s, len);
      const buf = sh.labelBuf;
      const at = sh.labelUsed;
      for (let k = 0; k < len; k++) buf[at + k] = payload[labelStart + k]!;
      sh.labelUsed = at + len;
      sh.ends[s] = sh.labelUsed;
      sh.refs[s] = ref;
    }
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
  if (shapes !== undefined && (recording || (shape !== undefined && seriesCount !== shape.refs.length))) {
    // A new shape (or the remembered one with fewer series: the record's own prefix of it).
    const sh = shapes;
    if (!recording) {
      // Every series matched the remembered shape, which has more: keep the prefix.
      const keep = seriesCount === 0 ? 0 : shape!.ends[seriesCount - 1]!;
      sh.labelUsed = 0;
      sh.ensure(seriesCount, keep);
      sh.labelBuf.set(shape!.labels.subarray(0, keep));
      sh.labelUsed = keep;
      sh.ends.set(shape!.ends.subarray(0, seriesCount));
      sh.refs.set(shape!.refs.subarray(0, seriesCount));
    }
    sh.put(
      shapeHash,
      new RecordShape(
        tenantSid,
        table.epoch,
        limits,
        payload.slice(0, tableEnd),
        local.slice(0, stringCount),
        sh.labelBuf.slice(0, sh.labelUsed),
        sh.ends.slice(0, seriesCount),
        sh.refs.slice(0, seriesCount),
      ),
    );
  }
}
