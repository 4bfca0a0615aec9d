/**
 * The Gorilla chunk (Facebook's Gorilla paper, as Prometheus uses it): timestamps as delta-of-delta with
 * variable-width buckets, values as the XOR with the previous value's bits, storing only the meaningful
 * bits. Every float64 bit pattern round-trips exactly (NaN payloads such as the staleness marker, -0,
 * infinities, subnormals).
 *
 * One encoder ({@link appendXorSample}: the head appends every sample through it, into the open chunk of
 * its series, with the encoder state in typed-array columns) and one decoder (decodeXorWords, behind
 * {@link decodeXorInto}, {@link decodeXorValuesInto} and {@link XorReader}). The block chunk's XOR value codec
 * (chunk.ts) is the value half of the same stream. Format (bits, most significant first; docs/storage.md
 * "Head chunk"):
 *
 * ```
 * sample 0   t: 64 (two's complement)            v: 64 raw bits
 * sample 1+  t: dod bucket                        v: xor
 * dod bucket  '0' (dod = 0) | '10' 14b | '110' 17b | '1110' 20b | '1111' 64b    (two's complement)
 * xor         '0' (same bits) | '10' meaningful bits in the previous window
 *                             | '11' leading(5b) sigbits(6b, 0 = 64) meaningful bits
 * ```
 */
import { clz64, ctz64, peekBits, peekWord, streamWords, writeBits, writeMeaningful } from './bits.js';

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
// Little-endian hosts only (every platform Node supports): u32[0] is the low word.
const LO = 0;
const HI = 1;

const TWO32 = 4294967296;

/** Most bits one sample can take: 4 + 64 for the timestamp, 2 + 5 + 6 + 64 for the value. */
export const XOR_MAX_SAMPLE_BITS = 145;

/** Writes a 64-bit two's complement integer (|x| < 2^53). */
function write64(buf: Uint8Array, pos: number, x: number): number {
  const hi = Math.floor(x / TWO32);
  const lo = x - hi * TWO32;
  pos = writeBits(buf, pos, hi >>> 0, 32);
  return writeBits(buf, pos, lo >>> 0, 32);
}

/** Writes a delta-of-delta bucket into a zeroed buffer; returns the new position. */
function writeDod(buf: Uint8Array, pos: number, dod: number): number {
  if (dod === 0) return pos + 1; // '0': the buffer is zeroed

  if (dod >= -8192 && dod < 8192) {
    pos = writeBits(buf, pos, 0b10, 2);
    return writeBits(buf, pos, dod & 0x3fff, 14);
  }
  if (dod >= -65536 && dod < 65536) {
    pos = writeBits(buf, pos, 0b110, 3);
    return writeBits(buf, pos, dod & 0x1ffff, 17);
  }
  if (dod >= -524288 && dod < 524288) {
    pos = writeBits(buf, pos, 0b1110, 4);
    return writeBits(buf, pos, dod & 0xfffff, 20);
  }
  pos = writeBits(buf, pos, 0b1111, 4);
  return write64(buf, pos, dod);
}

/**
 * Encoder state of many Gorilla streams in typed-array columns, one slot per stream (the head keeps one slot
 * per series, indexed by its ref): no object per stream or per sample. `t`/`delta` are the previous timestamp
 * and interval, `hi`/`lo` the previous value's bits, `lead`/`trail` the current XOR window (`lead` = 0xff:
 * none yet).
 */
export class XorEncoderColumns {
  t: Float64Array;
  delta: Float64Array;
  hi: Uint32Array;
  lo: Uint32Array;
  lead: Uint8Array;
  trail: Uint8Array;

  constructor(capacity: number) {
    this.t = new Float64Array(capacity);
    this.delta = new Float64Array(capacity);
    this.hi = new Uint32Array(capacity);
    this.lo = new Uint32Array(capacity);
    this.lead = new Uint8Array(capacity);
    this.trail = new Uint8Array(capacity);
  }

  /** Grows every column to `capacity` slots, keeping the first ones. */
  grow(capacity: number): void {
    this.t = resized(this.t, capacity);
    this.delta = resized(this.delta, capacity);
    this.hi = resized(this.hi, capacity);
    this.lo = resized(this.lo, capacity);
    this.lead = resized(this.lead, capacity);
    this.trail = resized(this.trail, capacity);
  }

  /** Renumbers the slots: slot `i` (below `map.length`) moves to `map[i]` when that is >= 0. */
  renumber(map: Int32Array, capacity: number): void {
    this.t = moved(this.t, map, capacity);
    this.delta = moved(this.delta, map, capacity);
    this.hi = moved(this.hi, map, capacity);
    this.lo = moved(this.lo, map, capacity);
    this.lead = moved(this.lead, map, capacity);
    this.trail = moved(this.trail, map, capacity);
  }

  get byteLength(): number {
    return (
      this.t.byteLength +
      this.delta.byteLength +
      this.hi.byteLength +
      this.lo.byteLength +
      this.lead.byteLength +
      this.trail.byteLength
    );
  }
}

type Column = Float64Array | Uint32Array | Uint8Array;

function resized<T extends Column>(a: T, capacity: number): T {
  const next = new (a.constructor as new (n: number) => T)(capacity);
  next.set(a.subarray(0, Math.min(a.length, capacity)));
  return next;
}

function moved<T extends Column>(a: T, map: Int32Array, capacity: number): T {
  const next = new (a.constructor as new (n: number) => T)(capacity);
  for (let i = 0; i < map.length; i++) {
    const to = map[i]!;
    if (to >= 0) next[to] = a[i]!;
  }
  return next;
}

/**
 * THE Gorilla sample encoder: appends (t, v) to the stream of slot `i` of `s`, at bit `pos` of `buf` (zeroed
 * beyond `pos`, with {@link XOR_MAX_SAMPLE_BITS} free bits). `first`: the sample starts the stream. Returns
 * the new position. The head appends every sample through this; {@link encodeXor} and the block value codec
 * ({@link writeXorValue}) use the same steps.
 */
export function appendXorSample(
  buf: Uint8Array,
  pos: number,
  s: XorEncoderColumns,
  i: number,
  first: boolean,
  t: number,
  v: number,
): number {
  f64[0] = v;
  const hi = u32[HI]!;
  const lo = u32[LO]!;
  if (first) {
    pos = write64(buf, pos, t);
    pos = writeBits(buf, pos, hi, 32);
    pos = writeBits(buf, pos, lo, 32);
    s.delta[i] = 0;
    s.lead[i] = 0xff;
    s.hi[i] = hi;
    s.lo[i] = lo;
  } else {
    const delta = t - s.t[i]!;
    pos = writeDod(buf, pos, delta - s.delta[i]!);
    s.delta[i] = delta;
    pos = writeXorValue(buf, pos, s, i, hi, lo);
  }
  s.t[i] = t;
  return pos;
}

/**
 * Writes the value with bits (hi, lo) as the XOR with slot `i`'s previous value (the value half of
 * {@link appendXorSample}, also the block chunk's XOR value codec); updates the slot's value and window.
 */
export function writeXorValue(
  buf: Uint8Array,
  pos: number,
  s: XorEncoderColumns,
  i: number,
  hi: number,
  lo: number,
): number {
  const xhi = (hi ^ s.hi[i]!) >>> 0;
  const xlo = (lo ^ s.lo[i]!) >>> 0;
  s.hi[i] = hi;
  s.lo[i] = lo;
  // '0': same bits (the buffer is zeroed, so skipping the bit writes it).
  if (xhi === 0 && xlo === 0) return pos + 1;
  let l = clz64(xhi, xlo);
  const tr = ctz64(xhi, xlo);
  if (l > 31) l = 31;
  const pl = s.lead[i]!;
  const pt = s.trail[i]!;
  if (pl !== 0xff && l >= pl && tr >= pt) {
    pos = writeBits(buf, pos, 0b10, 2);
    return writeMeaningful(buf, pos, xhi, xlo, pl, pt);
  }
  pos = writeBits(buf, pos, 0b11, 2);
  pos = writeBits(buf, pos, l, 5);
  pos = writeBits(buf, pos, (64 - l - tr) & 63, 6);
  s.lead[i] = l;
  s.trail[i] = tr;
  return writeMeaningful(buf, pos, xhi, xlo, l, tr);
}

/**
 * Reads a Gorilla stream sample by sample into its fields. `reset` decodes the whole stream at once with
 * {@link decodeXorInto} (the one decoder) into buffers the reader owns and reuses, so a reader serves many
 * chunks without allocating per sample; `next` walks the decoded samples.
 */
export class XorReader {
  t = 0;
  v = 0;
  /** Bit position after the last sample of the stream (what the stream's `count` samples occupy). */
  endBitPos = 0;
  private ts = new Float64Array(128);
  private vs = new Float64Array(128);
  private vbits = new Uint32Array(this.vs.buffer);
  private n = 0;
  private i = 0;

  /** Points the reader at the `count` samples of the stream in `buf`. */
  reset(buf: Uint8Array, count: number): this {
    if (count > this.ts.length) {
      const cap = Math.max(count, this.ts.length * 2);
      this.ts = new Float64Array(cap);
      this.vs = new Float64Array(cap);
      this.vbits = new Uint32Array(this.vs.buffer);
    }
    this.endBitPos = decodeXorInto(buf, count, this.ts, this.vbits, 0);
    this.n = count;
    this.i = 0;
    return this;
  }

  next(): boolean {
    if (this.i === this.n) return false;
    this.t = this.ts[this.i]!;
    this.v = this.vs[this.i]!;
    this.i++;
    return true;
  }
}

/** Encodes whole arrays into a fresh byte array (tests, tools). */
export function encodeXor(
  ts: ArrayLike<number>,
  vs: ArrayLike<number>,
  from: number,
  to: number,
): Uint8Array {
  const buf = new Uint8Array((((to - from) * XOR_MAX_SAMPLE_BITS) >>> 3) + 32);
  const state = new XorEncoderColumns(1);
  let pos = 0;
  for (let i = from; i < to; i++) pos = appendXorSample(buf, pos, state, 0, i === from, ts[i]!, vs[i]!);
  return buf.slice(0, (pos + 7) >>> 3);
}

// ---------------------------------------------------------------------------------------------------------
// Decoding

/**
 * Decodes a whole Gorilla stream of `count` samples into `T` and (as raw bits, low word first) `VB` from
 * index `at`: one tight loop, no call per sample but the inlined 32-bit peeks. The arrays must have room.
 * Returns the bit position after the last sample.
 */
export function decodeXorInto(
  bytes: Uint8Array,
  count: number,
  T: Float64Array,
  VB: Uint32Array,
  at: number,
): number {
  if (count === 0) return 0;
  return decodeXorWords(streamWords(bytes, 0), count, T, VB, at);
}

/**
 * Decodes a value-only XOR stream (the block chunk's XOR value codec: no timestamps, the first value's 64 raw
 * bits first) from byte `start` of `bytes`, as raw bits into `VB` from `at`.
 */
export function decodeXorValuesInto(
  bytes: Uint8Array,
  start: number,
  count: number,
  VB: Uint32Array,
  at: number,
): number {
  if (count === 0) return 0;
  return decodeXorWords(streamWords(bytes, start), count, undefined, VB, at);
}

/**
 * THE Gorilla decoder, over a word stream (see streamWords). With `T` the stream interleaves timestamps (first
 * 64 raw bits, then delta-of-delta buckets) with the values; without, it holds values only.
 */
function decodeXorWords(
  buf: Uint32Array,
  count: number,
  T: Float64Array | undefined,
  VB: Uint32Array,
  at: number,
): number {
  let pos = 0;
  let t = 0;
  if (T !== undefined) {
    t = (buf[0]! | 0) * TWO32 + buf[1]!;
    T[at] = t;
    pos = 64;
  }
  let vhi = peekWord(buf, pos);
  let vlo = peekWord(buf, pos + 32);
  pos += 64;
  VB[at * 2] = vlo;
  VB[at * 2 + 1] = vhi;
  let delta = 0;
  let lead = 0;
  let trail = 0;
  for (let i = 1; i < count; i++) {
    let w: number;
    if (T !== undefined) {
      w = peekBits(buf, pos);
      if (w >= 0) pos += 1;
      else {
        let dod: number;
        if ((w & 0x40000000) === 0) {
          dod = (w << 2) >> 18; // 14 bits after '10', sign-extended
          pos += 16;
        } else if ((w & 0x20000000) === 0) {
          dod = (w << 3) >> 15; // 17 bits after '110'
          pos += 20;
        } else if ((w & 0x10000000) === 0) {
          dod = (w << 4) >> 12; // 20 bits after '1110'
          pos += 24;
        } else {
          dod = peekBits(buf, pos + 4) * TWO32 + peekWord(buf, pos + 36);
          pos += 68;
        }
        delta += dod;
      }
      t += delta;
      T[at + i] = t;
    }
    w = peekBits(buf, pos);
    if (w < 0) {
      if ((w & 0x40000000) !== 0) {
        lead = (w >>> 25) & 31;
        let sig = (w >>> 19) & 63;
        if (sig === 0) sig = 64;
        trail = 64 - lead - sig;
        pos += 13;
      } else pos += 2;
      const sig = 64 - lead - trail;
      let xhi: number;
      let xlo: number;
      if (sig > 32) {
        // (top:low) << trail: top has sig - 32 bits.
        const top = peekWord(buf, pos) >>> (64 - sig);
        const low = peekWord(buf, pos + sig - 32);
        if (trail === 0) {
          xhi = top;
          xlo = low;
        } else {
          xhi = ((top << trail) | (low >>> (32 - trail))) >>> 0;
          xlo = (low << trail) >>> 0;
        }
      } else {
        const bits = sig === 32 ? peekWord(buf, pos) : peekBits(buf, pos) >>> (32 - sig);
        if (trail >= 32) {
          xhi = trail === 32 ? bits : (bits << (trail - 32)) >>> 0;
          xlo = 0;
        } else if (trail === 0) {
          xhi = 0;
          xlo = bits;
        } else {
          xhi = sig + trail > 32 ? bits >>> (32 - trail) : 0;
          xlo = (bits << trail) >>> 0;
        }
      }
      pos += sig;
      vhi = (vhi ^ xhi) >>> 0;
      vlo = (vlo ^ xlo) >>> 0;
    } else pos += 1;
    VB[(at + i) * 2] = vlo;
    VB[(at + i) * 2 + 1] = vhi;
  }
  return pos;
}
