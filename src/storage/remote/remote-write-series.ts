/**
 * The remote-write queue's interned series (each series' encoded `Label` fields and shard, cached across
 * batches) and the protobuf varint writers that they and the request encoder in remote-write.ts share.
 * Separate from the queue: the table is the queue's only per-series state and is swept on its own schedule;
 * the writers are plain wire-format code (hot path: comparisons and shifts, no allocation).
 */
import { type LabelSet, WellKnownLabel } from '../../model/labels.js';

const TWO_32 = 4294967296;
export const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();

/** A cached series: its id (index into the table's arrays) and whether it is still in the table. */
interface SeriesRef {
  readonly id: number;
  readonly key: string;
  readonly tenant: string;
  alive: boolean;
}

/**
 * Interned series: the encoded `repeated Label labels = 1` fields of a TimeSeries and the shard, per id.
 * Looked up by the LabelSet object first (processors reuse them batch after batch), then by a canonical key.
 */
export class SeriesTable {
  labels: Uint8Array[] = [];
  refs: (SeriesRef | undefined)[] = [];
  shard = new Uint16Array(1024);
  lastUsed = new Float64Array(1024);
  /** Samples of the series enqueued and not completed: a series with pending samples is never forgotten. */
  pending = new Int32Array(1024);
  private readonly byKey = new Map<string, SeriesRef>();
  private byObject = new WeakMap<LabelSet, SeriesRef>();
  private readonly free: number[] = [];

  constructor(private readonly shards: number) {}

  get capacity(): number {
    return this.shard.length;
  }

  get size(): number {
    return this.byKey.size;
  }

  intern(tenant: string, labels: LabelSet, now: number): number {
    const cached = this.byObject.get(labels);
    if (cached?.alive && cached.tenant === tenant) {
      this.lastUsed[cached.id] = now;
      return cached.id;
    }
    // The tenant label is the appender's, whatever the batch said; empty values mean "no label" (Prometheus).
    const names: string[] = [];
    for (const n in labels) if (n !== WellKnownLabel.tenant && labels[n] !== '') names.push(n);
    names.push(WellKnownLabel.tenant);
    names.sort();
    const pairs: string[] = [];
    for (const n of names) pairs.push(n, n === WellKnownLabel.tenant ? tenant : labels[n]!);
    const key = JSON.stringify(pairs);
    let ref = this.byKey.get(key);
    if (!ref) {
      const id = this.free.length > 0 ? this.free.pop()! : this.labels.length;
      if (id >= this.capacity) this.grow();
      ref = { id, key, tenant, alive: true };
      this.byKey.set(key, ref);
      const bytes = encodeLabels(pairs);
      this.labels[id] = bytes;
      this.refs[id] = ref;
      this.shard[id] = fnv1a(bytes) % this.shards;
      this.pending[id] = 0;
    }
    this.byObject.set(labels, ref);
    this.lastUsed[ref.id] = now;
    return ref.id;
  }

  /** Forgets series idle since `before` with nothing pending; their ids are reused. */
  sweep(before: number): number {
    let n = 0;
    for (let id = 0; id < this.labels.length; id++) {
      const ref = this.refs[id];
      if (!ref || this.lastUsed[id]! >= before || this.pending[id]! > 0) continue;
      ref.alive = false;
      this.byKey.delete(ref.key);
      this.refs[id] = undefined;
      this.labels[id] = EMPTY;
      this.free.push(id);
      n++;
    }
    return n;
  }

  private grow(): void {
    const cap = this.capacity * 2;
    const shard = new Uint16Array(cap);
    shard.set(this.shard);
    this.shard = shard;
    const lastUsed = new Float64Array(cap);
    lastUsed.set(this.lastUsed);
    this.lastUsed = lastUsed;
    const pending = new Int32Array(cap);
    pending.set(this.pending);
    this.pending = pending;
  }
}

/** `Label { string name = 1; string value = 2; }` messages as TimeSeries field 1, for sorted name/value pairs. */
function encodeLabels(pairs: readonly string[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let size = 0;
  for (let i = 0; i < pairs.length; i += 2) {
    const name = utf8.encode(pairs[i]!);
    const value = utf8.encode(pairs[i + 1]!);
    const msg = 1 + varintLength(name.length) + name.length + 1 + varintLength(value.length) + value.length;
    size += 1 + varintLength(msg) + msg;
    parts.push(name, value);
  }
  const out = new Uint8Array(size);
  let p = 0;
  for (let i = 0; i < parts.length; i += 2) {
    const name = parts[i]!;
    const value = parts[i + 1]!;
    const msg = 1 + varintLength(name.length) + name.length + 1 + varintLength(value.length) + value.length;
    out[p++] = 0x0a;
    p = writeVarint(out, p, msg);
    out[p++] = 0x0a;
    p = writeVarint(out, p, name.length);
    out.set(name, p);
    p += name.length;
    out[p++] = 0x12;
    p = writeVarint(out, p, value.length);
    out.set(value, p);
    p += value.length;
  }
  return out;
}

function fnv1a(b: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}

/** Bytes of the varint of a non-negative safe integer: comparisons, no division (hot path). */
export function varintLength(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  if (n < 0x800000000) return 5;
  if (n < 0x40000000000) return 6;
  if (n < 0x2000000000000) return 7;
  return 8;
}

/** Writes the varint of a non-negative safe integer, 7 bits at a time over its (lo, hi) 32-bit halves. */
export function writeVarint(buf: Uint8Array, p: number, n: number): number {
  if (n < 0x80) {
    buf[p] = n;
    return p + 1;
  }
  let lo = n >>> 0; // ToUint32 is n mod 2^32
  let hi = (n - lo) / TWO_32;
  while (hi > 0 || lo >= 0x80) {
    buf[p++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  buf[p++] = lo;
  return p;
}

/** Bytes of an int64 varint (negative values take 10, as two's complement). `t` is a safe integer. */
export function int64VarintLength(t: number): number {
  return t < 0 ? 10 : varintLength(t);
}

export function writeInt64Varint(buf: Uint8Array, p: number, t: number): number {
  if (t >= 0) return writeVarint(buf, p, t);
  // Two's complement over 64 bits, as (lo, hi) 32-bit halves.
  let hi = Math.floor(t / TWO_32);
  let lo = (t - hi * TWO_32) >>> 0;
  hi >>>= 0;
  for (let i = 0; i < 9; i++) {
    buf[p++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  buf[p++] = lo & 0x01;
  return p;
}
