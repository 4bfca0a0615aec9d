/**
 * Block chunks: the compressed form of samples in blocks on disk. Each chunk picks its own timestamp codec
 * and value codec, whichever is smallest for its data (VictoriaMetrics picks a marshal type per block the
 * same way). Format version 2 (docs/storage.md "Block chunk"); version-1 chunks (blocks written before) carry
 * their first timestamp themselves and use a subset of the integer-stream forms, and decode through the
 * same code:
 *
 * ```
 * ┌────────────────────────────┬────────────┬───────────────────┬───────────────┐
 * │ codecs u8 (ts << 4 | vals) │ n uvarint  │ timestamp section │ value section │
 * └────────────────────────────┴────────────┴───────────────────┴───────────────┘
 * timestamps  (the first timestamp t0 is the chunk's minT in the block index; version 1: t0 svarint first)
 *             CONST_DELTA  delta svarint (n > 1)                   every interval equal: 0 bits/sample
 *             DOD_BITS     d1 svarint, width u8, per sample '0' or '1' + width bits of zigzag(dod)
 *             DOD_VARINT   d1 svarint, per sample svarint(dod)
 * values      CONST         8 bytes: every value has the same bit pattern
 *             CONST_DECIMAL scale u8, m svarint: every value is m / 10^scale (integers: scale 0)
 *             DECIMAL       scale u8, m0 svarint, integer stream of m_i = v_i * 10^scale (exact, |m| < 2^50)
 *             XOR           Gorilla XOR stream of the values (first value raw)
 *             BITS          first value raw (8 bytes), integer stream of m_i = bits(v_i) − bits(v_0): the float64
 *                           bit patterns as 64-bit integers (|m| < 2^51) — noisy readings whose bits stay close
 * integer stream of m_1..m_{n-1} (m_0 known):
 *             order u8   0: x_i = m_i − centre (readings around a level)   1: x_i = m_i − m_{i−1}
 *                        2: x_i = (m_i − m_{i−1}) − (m_{i−1} − m_{i−2})    (counters growing steadily)
 *             form u8    0: svarint(x_i)                    1: width u8, packed zigzag(x_i)
 *                        2: width u8, '0' (x = 0) | '1' + packed          3 (Rice): width u8, low u8, per value
 *                           q = zigzag(x) >> low: q < 32: q '1's, '0', low bits; else 32 '1's, width bits
 *             centre svarint (order 0 only, after the form's bytes)
 * ```
 * Bit streams start on a byte boundary and are padded to one. Decoding writes into caller-provided typed
 * arrays in tight loops (no allocation or call per sample; values as raw bits, so NaN payloads stay exact).
 *
 * Files: each codec's encoder sits beside its decoder, so that a layout change is made in one place (the
 * format box above is their shared contract): the chunk, timestamp and value codecs here, the integer stream
 * in int-stream.ts.
 */
import { ByteReader, type ByteWriter } from '../../protocol/bytes.js';
import type { SampleArrays } from '../storage.js';
import { peekBits, streamWords } from './bits.js';
import {
  bitsRiceAroundCentre,
  bitWidth,
  choice,
  considerIntStream,
  INV_TWO32,
  ints,
  peekWide,
  readIntStream,
  scratchBits,
  TWO32,
  unzigzag,
  type ValueChoice,
  varintLen,
  writeIntStream,
  writeWide,
  zigzag,
} from './int-stream.js';
import { decodeXorValuesInto, writeXorValue, XorEncoderColumns } from './xor.js';

/**
 * Timestamps (ms) the codecs accept: |t| <= 2^49 (beyond the year 17,000), so that deltas of deltas and their
 * zigzag encodings stay exact integers in a float64.
 */
export const MAX_TIMESTAMP = 2 ** 49;

export const TsCodec = { constDelta: 0, dodBits: 1, dodVarint: 2 } as const;
export const ValueCodec = { const: 0, decimal: 1, xor: 2, bits: 3, constDecimal: 4 } as const;

/** Integers of the DECIMAL codec stay below this so that deltas of deltas and their zigzag stay exact. */
const DECIMAL_LIMIT = 2 ** 50;
const MAX_SCALE = 12;
const POW10 = Array.from({ length: MAX_SCALE + 1 }, (_, i) => 10 ** i);

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

/**
 * Encodes samples `[from, to)` (timestamps strictly increasing) into `out` in format version 2: the first
 * timestamp is not written (the block index holds it as the chunk's minT). Returns the codecs chosen, for
 * statistics.
 */
export function encodeChunk(
  ts: ArrayLike<number>,
  vs: Float64Array,
  from: number,
  to: number,
  out: ByteWriter,
): number {
  const n = to - from;
  if (n <= 0) throw new RangeError('encodeChunk: empty chunk');
  const tsCodec = chooseTsCodec(ts, from, to);
  const valueChoice = chooseValueCodec(vs, from, to);
  const codecs = (tsCodec << 4) | valueChoice.codec;
  out.u8(codecs);
  out.uvarint(n);
  writeTimestamps(tsCodec, ts, from, to, out);
  writeValues(valueChoice, vs, from, to, out);
  return codecs;
}

// ---------------------------------------------------------------------------------------------------------
// Timestamps

function chooseTsCodec(ts: ArrayLike<number>, from: number, to: number): number {
  const n = to - from;
  if (n <= 2) return TsCodec.constDelta; // at most one delta: nothing more to encode
  const d1 = ts[from + 1]! - ts[from]!;
  let constant = true;
  let maxZ = 0;
  let varBytes = 0;
  let zeros = 0;
  let prev = d1;
  for (let i = from + 2; i < to; i++) {
    const d = ts[i]! - ts[i - 1]!;
    const dod = d - prev;
    prev = d;
    if (dod !== 0) constant = false;
    const z = zigzag(dod);
    if (z > maxZ) maxZ = z;
    if (z === 0) zeros++;
    varBytes += varintLen(z);
  }
  if (constant) return TsCodec.constDelta;
  const w = bitWidth(maxZ);
  const bitsBytes = 1 + Math.ceil((zeros + (n - 2 - zeros) * (1 + w)) / 8);
  return w <= 53 && bitsBytes < varBytes ? TsCodec.dodBits : TsCodec.dodVarint;
}

function writeTimestamps(codec: number, ts: ArrayLike<number>, from: number, to: number, out: ByteWriter) {
  const n = to - from;
  if (n === 1) return;
  const d1 = ts[from + 1]! - ts[from]!;
  out.svarint(d1);
  if (codec === TsCodec.constDelta) return;
  if (codec === TsCodec.dodVarint) {
    let prev = d1;
    for (let i = from + 2; i < to; i++) {
      const d = ts[i]! - ts[i - 1]!;
      out.svarint(d - prev);
      prev = d;
    }
    return;
  }
  let maxZ = 0;
  let prev = d1;
  for (let i = from + 2; i < to; i++) {
    const d = ts[i]! - ts[i - 1]!;
    const z = zigzag(d - prev);
    prev = d;
    if (z > maxZ) maxZ = z;
  }
  const w = bitWidth(maxZ);
  out.u8(w);
  const bb = scratchBits;
  bb.reset();
  prev = d1;
  for (let i = from + 2; i < to; i++) {
    const d = ts[i]! - ts[i - 1]!;
    const z = zigzag(d - prev);
    prev = d;
    if (z === 0) bb.write(0, 1);
    else {
      bb.write(1, 1);
      writeWide(bb, z, w);
    }
  }
  out.bytes(bb.bytes());
}

// ---------------------------------------------------------------------------------------------------------
// Values

function sameBits(a: number, b: number): boolean {
  if (a === b) return a !== 0 || 1 / a === 1 / b; // +0 and -0 differ
  if (Number.isNaN(a) && Number.isNaN(b)) {
    f64[0] = a;
    const ahi = u32[1];
    const alo = u32[0];
    f64[0] = b;
    return ahi === u32[1] && alo === u32[0];
  }
  return false;
}

/** The smallest scale e (0..12) such that every value equals m / 10^e for an integer |m| < 2^50, or -1. */
function decimalScale(vs: Float64Array, from: number, to: number): number {
  let e = 0;
  for (let i = from; i < to; i++) {
    const v = vs[i]!;
    if (!Number.isFinite(v) || (v === 0 && 1 / v < 0)) return -1;
    for (;;) {
      const p = POW10[e]!;
      const m = Math.round(v * p);
      if (Math.abs(m) < DECIMAL_LIMIT && m / p === v) break;
      if (++e > MAX_SCALE || Math.abs(v * POW10[e]!) >= DECIMAL_LIMIT) return -1;
    }
  }
  return e;
}

function chooseValueCodec(vs: Float64Array, from: number, to: number): ValueChoice {
  const n = to - from;
  const v0 = vs[from]!;
  let constant = true;
  for (let i = from + 1; i < to; i++) {
    if (!sameBits(vs[i]!, v0)) {
      constant = false;
      break;
    }
  }
  choice.codec = ValueCodec.const;
  choice.bytes = 8;
  if (constant) {
    const scale = decimalScale(vs, from, from + 1);
    if (scale >= 0) {
      const m = Math.round(v0 * POW10[scale]!);
      if (1 + varintLen(zigzag(m)) < 8) {
        choice.codec = ValueCodec.constDecimal;
        choice.scale = scale;
        choice.centre = m;
        choice.bytes = 1 + varintLen(zigzag(m));
      }
    }
    return choice;
  }

  // XOR size: encode it (cheap, and exact).
  const xorBytes = encodeXorValues(vs, from, to);
  choice.codec = ValueCodec.xor;
  choice.bytes = xorBytes;

  const m = ints(n);
  if (bitsDeltas(vs, from, to, m)) considerIntStream(m, n, 8, ValueCodec.bits, 0);

  const scale = decimalScale(vs, from, to);
  if (scale < 0) return choice;
  const p = POW10[scale]!;
  for (let i = 0; i < n; i++) {
    m[i] = Math.round(vs[from + i]! * p);
    // Decoding divides by 10^scale: make sure that gives back this very value.
    if (m[i]! / p !== vs[from + i]) return choice;
  }
  considerIntStream(m, n, 1 + varintLen(zigzag(m[0]!)), ValueCodec.decimal, scale);
  return choice;
}

/**
 * Whether every value's bit pattern is within 2^51 of the first one's (same sign, exponent within one
 * binade or so); fills `m` with the differences. Bits as (hi, lo) halves: |hi_i − hi_0| < 2^19 bounds them.
 */
function bitsDeltas(vs: Float64Array, from: number, to: number, m: Float64Array): boolean {
  f64[0] = vs[from]!;
  const hi0 = u32[1]!;
  const lo0 = u32[0]!;
  m[0] = 0;
  for (let i = from + 1; i < to; i++) {
    f64[0] = vs[i]!;
    const dh = u32[1]! - hi0;
    if (dh >= 1 << 19 || dh <= -(1 << 19)) return false;
    m[i - from] = dh * TWO32 + (u32[0]! - lo0);
  }
  return true;
}

/** Encoder state of the XOR value codec: one stream at a time. */
const xorValueState = new XorEncoderColumns(1);

/** Encodes the XOR value stream into scratchBits (the value half of the head's Gorilla stream); returns its byte length. */
function encodeXorValues(vs: Float64Array, from: number, to: number): number {
  const bb = scratchBits;
  bb.reset();
  const s = xorValueState;
  f64[0] = vs[from]!;
  s.hi[0] = u32[1]!;
  s.lo[0] = u32[0]!;
  s.lead[0] = 0xff;
  bb.write(s.hi[0]!, 32);
  bb.write(s.lo[0]!, 32);
  for (let i = from + 1; i < to; i++) {
    f64[0] = vs[i]!;
    bb.ensure(80);
    bb.pos = writeXorValue(bb.buf, bb.pos, s, 0, u32[1]!, u32[0]!);
  }
  return bb.byteLength;
}

function writeValues(c: ValueChoice, vs: Float64Array, from: number, to: number, out: ByteWriter): void {
  const n = to - from;
  if (c.codec === ValueCodec.const) {
    out.f64le(vs[from]!);
    return;
  }
  if (c.codec === ValueCodec.constDecimal) {
    out.u8(c.scale);
    out.svarint(c.centre);
    return;
  }
  if (c.codec === ValueCodec.xor) {
    encodeXorValues(vs, from, to);
    out.bytes(scratchBits.bytes());
    return;
  }
  const m = ints(n);
  if (c.codec === ValueCodec.bits) {
    out.f64le(vs[from]!);
    bitsDeltas(vs, from, to, m);
  } else {
    const p = POW10[c.scale]!;
    for (let i = 0; i < n; i++) m[i] = Math.round(vs[from + i]! * p);
    out.u8(c.scale);
    out.svarint(m[0]!);
  }
  writeIntStream(c, m, n, out);
}

// ---------------------------------------------------------------------------------------------------------
// Decoding

/**
 * Growable sample arrays: timestamps and values, with `vb` viewing the values' raw bits (low word first), so
 * that decoders write bit patterns without going through a JS number (NaN payloads stay exact).
 */
export class SampleBuffer implements SampleArrays {
  t: Float64Array;
  v: Float64Array;
  vb: Uint32Array;
  n = 0;

  constructor(capacity = 256) {
    this.t = new Float64Array(capacity);
    this.v = new Float64Array(capacity);
    this.vb = new Uint32Array(this.v.buffer);
  }

  /** Room for at least `n` samples; keeps the first `this.n`. */
  ensure(n: number): void {
    if (n <= this.t.length) return;
    let cap = this.t.length * 2;
    while (cap < n) cap *= 2;
    const t = new Float64Array(cap);
    t.set(this.t.subarray(0, this.n));
    const v = new Float64Array(cap);
    v.set(this.v.subarray(0, this.n));
    this.t = t;
    this.v = v;
    this.vb = new Uint32Array(v.buffer);
  }
}

/** Number of samples in an encoded chunk, without decoding it. */
export function chunkSampleCount(bytes: Uint8Array): number {
  return new ByteReader(bytes, 1).uvarint('chunk sample count');
}

/**
 * Decodes a chunk into `out`: replacing its contents, or after them with `append`. `t0` is the chunk's first
 * timestamp (its minT in the block index) for version-2 chunks; undefined for version-1 chunks, which carry
 * it. Returns the sample count.
 */
export function decodeChunk(bytes: Uint8Array, out: SampleArrays, t0?: number, append = false): number {
  const r = new ByteReader(bytes);
  const codecs = r.u8('chunk codecs');
  const tsCodec = codecs >>> 4;
  const vCodec = codecs & 15;
  const n = r.uvarint('chunk sample count');
  const at = append ? out.n : 0;
  out.n = at;
  out.ensure(at + n);
  const T = out.t;
  // Timestamps.
  let t = t0 ?? r.svarint('t0');
  T[at] = t;
  if (n > 1) {
    let d = r.svarint('first delta');
    t += d;
    T[at + 1] = t;
    if (tsCodec === TsCodec.constDelta) {
      for (let i = 2; i < n; i++) {
        t += d;
        T[at + i] = t;
      }
    } else if (tsCodec === TsCodec.dodVarint) {
      for (let i = 2; i < n; i++) {
        d += r.svarint('dod');
        t += d;
        T[at + i] = t;
      }
    } else if (tsCodec === TsCodec.dodBits) {
      const w = r.u8('dod width');
      const buf = streamWords(bytes, r.pos);
      let pos = 0;
      for (let i = 2; i < n; i++) {
        if (peekBits(buf, pos) < 0) {
          d += unzigzag(peekWide(buf, pos + 1, w));
          pos += 1 + w;
        } else pos += 1;
        t += d;
        T[at + i] = t;
      }
      r.pos += (pos + 7) >>> 3;
    } else throw new Error(`unknown timestamp codec ${tsCodec}`);
  }
  // Values.
  const V = out.v;
  const VB = out.vb;
  if (vCodec === ValueCodec.const) {
    r.need(8, 'constant value');
    const lo =
      (bytes[r.pos]! | (bytes[r.pos + 1]! << 8) | (bytes[r.pos + 2]! << 16) | (bytes[r.pos + 3]! << 24)) >>>
      0;
    const hi =
      (bytes[r.pos + 4]! |
        (bytes[r.pos + 5]! << 8) |
        (bytes[r.pos + 6]! << 16) |
        (bytes[r.pos + 7]! << 24)) >>>
      0;
    for (let i = at; i < at + n; i++) {
      VB[i * 2] = lo;
      VB[i * 2 + 1] = hi;
    }
  } else if (vCodec === ValueCodec.constDecimal) {
    const scale = r.u8('decimal scale');
    const v = r.svarint('constant') / POW10[scale]!;
    for (let i = at; i < at + n; i++) V[i] = v;
  } else if (vCodec === ValueCodec.xor) {
    decodeXorValuesInto(bytes, r.pos, n, VB, at);
  } else if (vCodec === ValueCodec.decimal) {
    const scale = r.u8('decimal scale');
    const p = POW10[scale]!;
    const m0 = r.svarint('m0');
    const m = ints(n);
    readIntStream(r, bytes, n, m0, m);
    for (let i = 0; i < n; i++) V[at + i] = m[i]! / p;
  } else if (vCodec === ValueCodec.bits) {
    r.need(8, 'first value');
    const p = r.pos;
    const lo0 = (bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24)) >>> 0;
    const hi0 = (bytes[p + 4]! | (bytes[p + 5]! << 8) | (bytes[p + 6]! << 16) | (bytes[p + 7]! << 24)) >>> 0;
    r.pos += 8;
    VB[at * 2] = lo0;
    VB[at * 2 + 1] = hi0;
    // Noisy readings (order 0, Rice): bit patterns rebuilt in 32-bit halves, no stream array in between.
    if (bytes[r.pos] === 0 && bytes[r.pos + 1] === 3) {
      bitsRiceAroundCentre(r, bytes, n, hi0, lo0, VB, at);
      out.n = at + n;
      return n;
    }
    const m = ints(n);
    readIntStream(r, bytes, n, 0, m);
    for (let i = 1; i < n; i++) {
      const d = m[i]!;
      const dhi = Math.floor(d * INV_TWO32);
      let lo = lo0 + (d - dhi * TWO32);
      let hi = hi0 + dhi;
      if (lo >= TWO32) {
        lo -= TWO32;
        hi++;
      }
      VB[(at + i) * 2] = lo;
      VB[(at + i) * 2 + 1] = hi >>> 0;
    }
  } else throw new Error(`unknown value codec ${vCodec}`);
  out.n = at + n;
  return n;
}
