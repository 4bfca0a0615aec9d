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
 * Size: one format, kept in one file on purpose: each codec's encoder beside its decoder, so that a layout
 * change is made in one place (the format box above is their shared contract).
 */
import { ByteReader, type ByteWriter } from '../../protocol/bytes.js';
import type { SampleArrays } from '../storage.js';
import { BitBuffer, peekBits, peekWord, streamWords } from './bits.js';
import { decodeXorValuesInto, writeXorValue, XorEncoderColumns } from './xor.js';

/**
 * Timestamps (ms) the codecs accept: |t| <= 2^49 (beyond the year 17,000), so that deltas of deltas and their
 * zigzag encodings stay exact integers in a float64.
 */
export const MAX_TIMESTAMP = 2 ** 49;

export const TsCodec = { constDelta: 0, dodBits: 1, dodVarint: 2 } as const;
export const ValueCodec = { const: 0, decimal: 1, xor: 2, bits: 3, constDecimal: 4 } as const;

const TWO32 = 4294967296;
const INV_TWO32 = 1 / TWO32;
/** Integers of the DECIMAL codec stay below this so that deltas of deltas and their zigzag stay exact. */
const DECIMAL_LIMIT = 2 ** 50;
const MAX_SCALE = 12;
const POW10 = Array.from({ length: MAX_SCALE + 1 }, (_, i) => 10 ** i);
/** Rice codes longer than this many '1's escape to the stream's full width. */
const RICE_ESCAPE = 32;

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

function zigzag(x: number): number {
  return x >= 0 ? x * 2 : -x * 2 - 1;
}

function unzigzag(z: number): number {
  return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
}

function varintLen(z: number): number {
  let n = 1;
  while (z >= 0x80) {
    z = Math.floor(z / 0x80);
    n++;
  }
  return n;
}

function bitWidth(z: number): number {
  if (z === 0) return 0;
  if (z < TWO32) return 32 - Math.clz32(z);
  return 32 + (32 - Math.clz32(Math.floor(z / TWO32)));
}

/** Writes the low `w` (0..53) bits of the non-negative integer `z`. */
function writeWide(bb: BitBuffer, z: number, w: number): void {
  if (w <= 32) {
    bb.write(w === 32 ? z >>> 0 : z % 2 ** w, w);
    return;
  }
  const hi = Math.floor(z / TWO32);
  bb.write(hi, w - 32);
  bb.write(z >>> 0, 32);
}

/** Reads `w` (0..53) bits at `pos` of a word stream. */
function peekWide(buf: Uint32Array, pos: number, w: number): number {
  if (w === 0) return 0;
  if (w <= 32) return w === 32 ? peekWord(buf, pos) : peekWord(buf, pos) >>> (32 - w);
  return (peekWord(buf, pos) >>> (64 - w)) * TWO32 + peekWord(buf, pos + w - 32);
}

const scratchBits = new BitBuffer(1 << 12);
const scratch = { m: new Float64Array(1024), x: new Float64Array(1024) };

function ints(n: number): Float64Array {
  if (scratch.m.length < n) scratch.m = new Float64Array(Math.max(n, scratch.m.length * 2));
  return scratch.m;
}

function xs(n: number): Float64Array {
  if (scratch.x.length < n) scratch.x = new Float64Array(Math.max(n, scratch.x.length * 2));
  return scratch.x;
}

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

interface ValueChoice {
  codec: number;
  scale: number;
  /** Integer stream: order 0 (around `centre`), 1 (deltas), 2 (delta of deltas). */
  order: number;
  /** Integer stream: 0 varint, 1 packed, 2 flagged packed, 3 Rice. */
  form: number;
  width: number;
  /** Rice: the low bits written as they are. */
  low: number;
  centre: number;
  bytes: number;
}

const choice: ValueChoice = {
  codec: 0,
  scale: 0,
  order: 1,
  form: 0,
  width: 0,
  low: 0,
  centre: 0,
  bytes: 0,
};

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

/** x_1..x_{n-1} of an integer stream of `order` into `x` (x[0] unused); returns false if one is not exact. */
function streamValues(m: Float64Array, n: number, order: number, centre: number, x: Float64Array): boolean {
  let prevD = 0;
  for (let i = 1; i < n; i++) {
    const d = m[i]! - m[i - 1]!;
    const v = order === 0 ? m[i]! - centre : order === 1 ? d : d - prevD;
    prevD = d;
    if (!Number.isSafeInteger(v) || Math.abs(v) >= 2 ** 52) return false;
    x[i] = v;
  }
  return true;
}

/**
 * Sizes the integer stream of `m[0..n)` in every order and form; takes it into `choice` when smaller than what
 * `choice` holds.
 */
function considerIntStream(
  m: Float64Array,
  n: number,
  headBytes: number,
  codec: number,
  scale: number,
): void {
  if (n < 2) return;
  const x = xs(n);
  let mean = 0;
  for (let i = 1; i < n; i++) mean += m[i]!;
  const centre = Math.round(mean / (n - 1));
  for (let order = 0; order <= 2; order++) {
    if (!streamValues(m, n, order, centre, x)) continue;
    let varBytes = 0;
    let maxZ = 0;
    let zeros = 0;
    let sumZ = 0;
    for (let i = 1; i < n; i++) {
      const z = zigzag(x[i]!);
      varBytes += varintLen(z);
      if (z > maxZ) maxZ = z;
      if (z === 0) zeros++;
      sumZ += z;
    }
    const w = bitWidth(maxZ);
    const head = headBytes + 2 + (order === 0 ? varintLen(zigzag(centre)) : 0);
    const take = (form: number, bytes: number, low: number) => {
      if (head + bytes < choice.bytes) {
        choice.codec = codec;
        choice.scale = scale;
        choice.order = order;
        choice.form = form;
        choice.width = w;
        choice.low = low;
        choice.centre = centre;
        choice.bytes = head + bytes;
      }
    };
    take(0, varBytes, 0);
    if (w > 53) continue;
    take(1, 1 + Math.ceil(((n - 1) * w) / 8), 0);
    take(2, 1 + Math.ceil((zeros + (n - 1 - zeros) * (1 + w)) / 8), 0);
    // Rice: the best low-bit count is near log2 of the mean times ln 2 (for geometric-like magnitudes).
    const meanZ = sumZ / (n - 1);
    const guess = meanZ > 1 ? Math.floor(Math.log2(meanZ * Math.LN2)) : 0;
    for (let low = Math.max(0, guess - 1); low <= Math.min(w, guess + 1); low++) {
      const p = 2 ** low;
      let bits = 0;
      for (let i = 1; i < n; i++) {
        const q = Math.floor(zigzag(x[i]!) / p);
        bits += q < RICE_ESCAPE ? q + 1 + low : RICE_ESCAPE + w;
      }
      take(3, 2 + Math.ceil(bits / 8), low);
    }
  }
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

/** The stream of m_1..m_{n-1} in the chosen order and form. */
function writeIntStream(c: ValueChoice, m: Float64Array, n: number, out: ByteWriter): void {
  out.u8(c.order);
  out.u8(c.form);
  if (c.form !== 0) out.u8(c.width);
  if (c.form === 3) out.u8(c.low);
  if (c.order === 0) out.svarint(c.centre);
  const x = xs(n);
  streamValues(m, n, c.order, c.centre, x);
  const bb = scratchBits;
  bb.reset();
  const p = 2 ** c.low;
  for (let i = 1; i < n; i++) {
    const z = zigzag(x[i]!);
    if (c.form === 0) out.uvarint(z);
    else if (c.form === 1) writeWide(bb, z, c.width);
    else if (c.form === 2) {
      if (z === 0) bb.write(0, 1);
      else {
        bb.write(1, 1);
        writeWide(bb, z, c.width);
      }
    } else {
      const q = Math.floor(z / p);
      if (q < RICE_ESCAPE) {
        // q ones and a zero (q < 32: at most 32 bits at once), then the low bits.
        if (q === 0) bb.write(0, 1);
        else {
          bb.write(0xffffffff >>> (32 - q), q);
          bb.write(0, 1);
        }
        writeWide(bb, z - q * p, c.low);
      } else {
        bb.write(0xffffffff, RICE_ESCAPE);
        writeWide(bb, z, c.width);
      }
    }
  }
  if (c.form !== 0) out.bytes(bb.bytes());
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

/**
 * Reads an integer stream (see writeIntStream) into m[0..n), with m[0] = m0: first the zigzag values into a
 * scratch array, in a loop specialised per form (and for widths that fit 31 bits, in integer arithmetic),
 * then the order's prefix sums — tight, monomorphic loops.
 */
function readIntStream(r: ByteReader, bytes: Uint8Array, n: number, m0: number, m: Float64Array): void {
  const order = r.u8('stream order');
  const form = r.u8('stream form');
  const w = form === 0 ? 0 : r.u8('stream width');
  const low = form === 3 ? r.u8('stream low bits') : 0;
  const centre = order === 0 ? r.svarint('stream centre') : 0;
  if (order > 2 || form > 3 || w > 53 || low > w)
    throw new Error(`bad integer stream ${order}/${form}/${w}/${low}`);
  const x = xs(n);
  if (form === 0) for (let i = 1; i < n; i++) x[i] = unzigzag(r.uvarint('stream value'));
  else {
    const buf = streamWords(bytes, r.pos);
    const end = 0;
    const pos =
      form === 1
        ? w <= 31
          ? packedNarrow(buf, end, n, w, x)
          : packedWide(buf, end, n, w, x)
        : form === 2
          ? flagged(buf, end, n, w, x)
          : low <= 30 && w <= 31
            ? riceNarrow(buf, end, n, w, low, x)
            : riceWide(buf, end, n, w, low, x);
    r.pos += (pos + 7) >>> 3;
  }
  m[0] = m0;
  if (order === 0) for (let i = 1; i < n; i++) m[i] = centre + x[i]!;
  else if (order === 1) {
    let v = m0;
    for (let i = 1; i < n; i++) {
      v += x[i]!;
      m[i] = v;
    }
  } else {
    let v = m0;
    let d = 0;
    for (let i = 1; i < n; i++) {
      d += x[i]!;
      v += d;
      m[i] = v;
    }
  }
}

/**
 * BITS values from an order-0 Rice stream: v_i's bit pattern = bits(v_0) + centre + unzigzag(z_i), computed as
 * 64-bit integers in 32-bit halves (no floating-point rounding, no floor per sample) straight into VB.
 */
function bitsRiceAroundCentre(
  r: ByteReader,
  bytes: Uint8Array,
  n: number,
  hi0: number,
  lo0: number,
  VB: Uint32Array,
  at: number,
): void {
  r.u8('stream order');
  r.u8('stream form');
  const w = r.u8('stream width');
  const low = r.u8('stream low bits');
  const centre = r.svarint('stream centre');
  if (w > 53 || low > w) throw new Error(`bad integer stream 0/3/${w}/${low}`);
  // base = bits(v_0) + centre, as (baseHi, baseLo).
  const chi = Math.floor(centre * INV_TWO32);
  let baseLo = lo0 + (centre - chi * TWO32);
  let baseHi = hi0 + chi;
  if (baseLo >= TWO32) {
    baseLo -= TWO32;
    baseHi++;
  }
  baseHi = baseHi >>> 0;
  const buf = streamWords(bytes, r.pos);
  let pos = 0;
  for (let i = 1; i < n; i++) {
    const q = Math.clz32(~peekBits(buf, pos));
    let zhi: number;
    let zlo: number;
    if (q < RICE_ESCAPE) {
      pos += q + 1;
      if (low > 32) {
        zhi = (q << (low - 32)) | (peekWord(buf, pos) >>> (64 - low));
        zlo = peekWord(buf, pos + low - 32);
      } else if (low === 32) {
        zhi = q;
        zlo = peekWord(buf, pos);
      } else if (low === 0) {
        zhi = 0;
        zlo = q;
      } else {
        zhi = q >>> (32 - low);
        zlo = ((q << low) | (peekWord(buf, pos) >>> (32 - low))) >>> 0;
      }
      pos += low;
    } else {
      pos += RICE_ESCAPE;
      if (w > 32) {
        zhi = peekWord(buf, pos) >>> (64 - w);
        zlo = peekWord(buf, pos + w - 32);
      } else {
        zhi = 0;
        zlo = w === 0 ? 0 : peekWord(buf, pos) >>> (32 - w);
      }
      pos += w;
    }
    // x = unzigzag(z): z >> 1, negated (minus one) when z is odd.
    let mlo = ((zlo >>> 1) | (zhi << 31)) >>> 0;
    let mhi = zhi >>> 1;
    let lo: number;
    let hi: number;
    if ((zlo & 1) === 0) {
      lo = baseLo + mlo;
      hi = baseHi + mhi;
      if (lo >= TWO32) {
        lo -= TWO32;
        hi++;
      }
    } else {
      // base − (m + 1)
      mlo += 1;
      if (mlo >= TWO32) {
        mlo -= TWO32;
        mhi++;
      }
      lo = baseLo - mlo;
      hi = baseHi - mhi;
      if (lo < 0) {
        lo += TWO32;
        hi--;
      }
    }
    VB[(at + i) * 2] = lo;
    VB[(at + i) * 2 + 1] = hi >>> 0;
  }
  r.pos += (pos + 7) >>> 3;
}

/** Zigzag decoding of a non-negative integer up to 2^53 (doubles: no fmod, exact). */
function unzigzagWide(z: number): number {
  const h = Math.floor(z * 0.5);
  return z - h * 2 === 0 ? h : -h - 1;
}

function packedNarrow(buf: Uint32Array, pos: number, n: number, w: number, x: Float64Array): number {
  if (w === 0) {
    x.fill(0, 1, n);
    return pos;
  }
  const shift = 32 - w;
  for (let i = 1; i < n; i++) {
    const z = peekBits(buf, pos) >>> shift;
    pos += w;
    x[i] = (z >>> 1) ^ -(z & 1);
  }
  return pos;
}

function packedWide(buf: Uint32Array, pos: number, n: number, w: number, x: Float64Array): number {
  for (let i = 1; i < n; i++) {
    x[i] = unzigzagWide(peekWide(buf, pos, w));
    pos += w;
  }
  return pos;
}

function flagged(buf: Uint32Array, pos: number, n: number, w: number, x: Float64Array): number {
  for (let i = 1; i < n; i++) {
    if (peekBits(buf, pos) < 0) {
      x[i] = unzigzagWide(peekWide(buf, pos + 1, w));
      pos += 1 + w;
    } else {
      x[i] = 0;
      pos += 1;
    }
  }
  return pos;
}

/** Rice with values of at most 31 bits: integer arithmetic throughout. */
function riceNarrow(
  buf: Uint32Array,
  pos: number,
  n: number,
  w: number,
  low: number,
  x: Float64Array,
): number {
  const mask = (1 << low) - 1;
  for (let i = 1; i < n; i++) {
    const q = Math.clz32(~peekBits(buf, pos));
    let z: number;
    if (q < RICE_ESCAPE) {
      pos += q + 1;
      z = low === 0 ? q : (q << low) | ((peekBits(buf, pos) >>> (32 - low)) & mask);
      pos += low;
    } else {
      z = w === 0 ? 0 : peekWord(buf, pos + RICE_ESCAPE) >>> (32 - w);
      pos += RICE_ESCAPE + w;
    }
    x[i] = (z >>> 1) ^ -(z & 1);
  }
  return pos;
}

function riceWide(buf: Uint32Array, pos: number, n: number, w: number, low: number, x: Float64Array): number {
  const p = 2 ** low;
  for (let i = 1; i < n; i++) {
    const q = Math.clz32(~peekBits(buf, pos));
    let z: number;
    if (q < RICE_ESCAPE) {
      pos += q + 1;
      z = q * p + peekWide(buf, pos, low);
      pos += low;
    } else {
      z = peekWide(buf, pos + RICE_ESCAPE, w);
      pos += RICE_ESCAPE + w;
    }
    x[i] = unzigzagWide(z);
  }
  return pos;
}
