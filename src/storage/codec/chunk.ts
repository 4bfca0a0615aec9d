/**
 * Block chunks: the compressed form of samples in blocks on disk. Each chunk picks its own timestamp codec
 * and value codec, whichever is smallest for its data (VictoriaMetrics picks a marshal type per block the
 * same way). Format (docs/storage.md "Block chunk"):
 *
 * ```
 * ┌────────────────────────────┬────────────┬───────────────────┬───────────────┐
 * │ codecs u8 (ts << 4 | vals) │ n uvarint  │ timestamp section │ value section │
 * └────────────────────────────┴────────────┴───────────────────┴───────────────┘
 * timestamps  CONST_DELTA  t0 svarint, delta svarint            (every interval equal: 0 bits/sample)
 *             DOD_BITS     t0 svarint, d1 svarint, width u8, per sample '0' or '1' + width bits of zigzag(dod)
 *             DOD_VARINT   t0 svarint, d1 svarint, per sample svarint(dod)
 * values      CONST        8 bytes: every value has the same bit pattern
 *             DECIMAL      scale u8, then the integers m = v * 10^scale (exact, |m| < 2^50) as an integer
 *                          stream: m0 svarint, order u8 (1 = deltas, 2 = delta of deltas), form u8
 *                          (0 = svarints, 1 = width u8 + packed zigzag, 2 = width u8 + '0' | '1' + packed)
 *             XOR          Gorilla XOR stream of the values (first value raw)
 *             BITS         first value raw (8 bytes), then the integers m_i = bits(v_i) − bits(v_0) (the float64
 *                          bit patterns as 64-bit integers, |m| < 2^51) as an integer stream like DECIMAL's
 *                          (order u8, form u8, ...): noisy readings whose bits stay close beat XOR's control bits
 * ```
 * Bit streams start on a byte boundary and are padded to one. Decoding writes into caller-provided typed
 * arrays: no allocation per sample.
 */
import { ByteReader, type ByteWriter } from '../../protocol/bytes.js';
import { BitBuffer, readBits } from './bits.js';
import { appendXorValue, xorLead, xorPos, xorTrail, xorWindowChanged } from './xor.js';

/**
 * Timestamps (ms) the codecs accept: |t| <= 2^49 (beyond the year 17,000), so that deltas of deltas and their
 * zigzag encodings stay exact integers in a float64.
 */
export const MAX_TIMESTAMP = 2 ** 49;

export const TsCodec = { constDelta: 0, dodBits: 1, dodVarint: 2 } as const;
export const ValueCodec = { const: 0, decimal: 1, xor: 2, bits: 3 } as const;

const TWO32 = 4294967296;
/** Integers of the DECIMAL codec stay below this so that deltas of deltas and their zigzag stay exact. */
const DECIMAL_LIMIT = 2 ** 50;
const MAX_SCALE = 12;
const POW10 = Array.from({ length: MAX_SCALE + 1 }, (_, i) => 10 ** i);

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
    bb.write(z >>> 0, w);
    return;
  }
  const hi = Math.floor(z / TWO32);
  bb.write(hi, w - 32);
  bb.write(z >>> 0, 32);
}

function readWide(buf: Uint8Array, pos: number, w: number): number {
  if (w <= 32) return readBits(buf, pos, w);
  return readBits(buf, pos, w - 32) * TWO32 + readBits(buf, pos + w - 32, 32);
}

const scratchBits = new BitBuffer(1 << 12);
const scratchInts = { buf: new Float64Array(1024) };

function ints(n: number): Float64Array {
  if (scratchInts.buf.length < n) scratchInts.buf = new Float64Array(Math.max(n, scratchInts.buf.length * 2));
  return scratchInts.buf;
}

/**
 * Encodes samples `[from, to)` (timestamps strictly increasing) into `out`. Returns the codecs chosen, for
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
  if (n <= 2) return TsCodec.constDelta; // t0 and at most one delta: nothing more to encode
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
  out.svarint(ts[from]!);
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
  /** For DECIMAL: 1 = deltas, 2 = delta of deltas; form 0 varint, 1 packed, 2 flagged packed. */
  order: number;
  form: number;
  width: number;
  bytes: number;
}

const choice: ValueChoice = { codec: 0, scale: 0, order: 1, form: 0, width: 0, bytes: 0 };

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
  if (constant) return choice;

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

/**
 * Sizes the integer stream of `m[0..n)` as deltas and deltas of deltas, each as varints, packed or flagged
 * packed; takes it into `choice` when smaller than what `choice` holds.
 */
function considerIntStream(
  m: Float64Array,
  n: number,
  headBytes: number,
  codec: number,
  scale: number,
): void {
  for (let order = 1; order <= 2; order++) {
    let varBytes = 0;
    let maxZ = 0;
    let zeros = 0;
    let prevD = 0;
    for (let i = 1; i < n; i++) {
      const d = m[i]! - m[i - 1]!;
      const x = order === 1 ? d : d - prevD;
      prevD = d;
      const z = zigzag(x);
      varBytes += varintLen(z);
      if (z > maxZ) maxZ = z;
      if (z === 0) zeros++;
    }
    const w = bitWidth(maxZ);
    const head = headBytes + 2;
    const forms = [
      varBytes,
      w <= 53 ? 1 + Math.ceil(((n - 1) * w) / 8) : Number.POSITIVE_INFINITY,
      w <= 53 ? 1 + Math.ceil((zeros + (n - 1 - zeros) * (1 + w)) / 8) : Number.POSITIVE_INFINITY,
    ];
    for (let form = 0; form < 3; form++) {
      const bytes = head + forms[form]!;
      if (bytes < choice.bytes) {
        choice.codec = codec;
        choice.scale = scale;
        choice.order = order;
        choice.form = form;
        choice.width = w;
        choice.bytes = bytes;
      }
    }
  }
}

/** Encodes the XOR value stream into scratchBits; returns its byte length. */
function encodeXorValues(vs: Float64Array, from: number, to: number): number {
  const bb = scratchBits;
  bb.reset();
  f64[0] = vs[from]!;
  let phi = u32[1]!;
  let plo = u32[0]!;
  bb.write(phi, 32);
  bb.write(plo, 32);
  let lead = 0xff;
  let trail = 0;
  for (let i = from + 1; i < to; i++) {
    f64[0] = vs[i]!;
    const hi = u32[1]!;
    const lo = u32[0]!;
    bb.ensure(80);
    appendXorValue(bb.buf, bb.pos, hi ^ phi, lo ^ plo, lead, trail);
    bb.pos = xorPos;
    if (xorWindowChanged) {
      lead = xorLead;
      trail = xorTrail;
    }
    phi = hi;
    plo = lo;
  }
  return bb.byteLength;
}

function writeValues(c: ValueChoice, vs: Float64Array, from: number, to: number, out: ByteWriter): void {
  const n = to - from;
  if (c.codec === ValueCodec.const) {
    out.f64le(vs[from]!);
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

/** The deltas (order 1) or deltas of deltas (order 2) of m[0..n) in the chosen form. */
function writeIntStream(c: ValueChoice, m: Float64Array, n: number, out: ByteWriter): void {
  out.u8(c.order);
  out.u8(c.form);
  if (c.form !== 0) out.u8(c.width);
  const bb = scratchBits;
  bb.reset();
  let prevD = 0;
  for (let i = 1; i < n; i++) {
    const d = m[i]! - m[i - 1]!;
    const x = c.order === 1 ? d : d - prevD;
    prevD = d;
    const z = zigzag(x);
    if (c.form === 0) out.uvarint(z);
    else if (c.form === 1) writeWide(bb, z, c.width);
    else if (z === 0) bb.write(0, 1);
    else {
      bb.write(1, 1);
      writeWide(bb, z, c.width);
    }
  }
  if (c.form !== 0) out.bytes(bb.bytes());
}

// ---------------------------------------------------------------------------------------------------------
// Decoding

/** Grows a pair of sample arrays to hold at least `n` samples. */
export class SampleBuffer {
  t: Float64Array;
  v: Float64Array;
  n = 0;

  constructor(capacity = 256) {
    this.t = new Float64Array(capacity);
    this.v = new Float64Array(capacity);
  }

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
  }
}

/** Number of samples in an encoded chunk, without decoding it. */
export function chunkSampleCount(bytes: Uint8Array): number {
  return new ByteReader(bytes, 1).uvarint('chunk sample count');
}

/** Decodes a chunk into `out` (replacing its contents); returns the sample count. */
export function decodeChunk(bytes: Uint8Array, out: SampleBuffer): number {
  const r = new ByteReader(bytes);
  const codecs = r.u8('chunk codecs');
  const tsCodec = codecs >>> 4;
  const vCodec = codecs & 15;
  const n = r.uvarint('chunk sample count');
  out.n = 0;
  out.ensure(n);
  const T = out.t;
  const V = out.v;
  // Timestamps.
  let t = r.svarint('t0');
  T[0] = t;
  if (n > 1) {
    let d = r.svarint('first delta');
    t += d;
    T[1] = t;
    if (tsCodec === TsCodec.constDelta) {
      for (let i = 2; i < n; i++) {
        t += d;
        T[i] = t;
      }
    } else if (tsCodec === TsCodec.dodVarint) {
      for (let i = 2; i < n; i++) {
        d += r.svarint('dod');
        t += d;
        T[i] = t;
      }
    } else if (tsCodec === TsCodec.dodBits) {
      const w = r.u8('dod width');
      const buf = r.buf;
      let pos = r.pos * 8;
      for (let i = 2; i < n; i++) {
        if (readBits(buf, pos, 1) === 1) {
          d += unzigzag(readWide(buf, pos + 1, w));
          pos += 1 + w;
        } else pos += 1;
        t += d;
        T[i] = t;
      }
      r.pos = (pos + 7) >>> 3;
    } else throw new Error(`unknown timestamp codec ${tsCodec}`);
  }
  // Values.
  if (vCodec === ValueCodec.const) {
    const v = r.f64le('constant value');
    for (let i = 0; i < n; i++) V[i] = v;
  } else if (vCodec === ValueCodec.xor) {
    decodeXorValues(r.buf, r.pos, n, V);
  } else if (vCodec === ValueCodec.decimal) {
    const scale = r.u8('decimal scale');
    const p = POW10[scale]!;
    const m0 = r.svarint('m0');
    const m = ints(n);
    readIntStream(r, n, m0, m);
    for (let i = 0; i < n; i++) V[i] = m[i]! / p;
  } else if (vCodec === ValueCodec.bits) {
    f64[0] = r.f64le('first value');
    const hi0 = u32[1]!;
    const lo0 = u32[0]!;
    V[0] = f64[0]!;
    const m = ints(n);
    readIntStream(r, n, 0, m);
    for (let i = 1; i < n; i++) {
      const d = m[i]!;
      const dhi = Math.floor(d / TWO32);
      let lo = lo0 + (d - dhi * TWO32);
      let hi = hi0 + dhi;
      if (lo >= TWO32) {
        lo -= TWO32;
        hi++;
      }
      u32[1] = hi >>> 0;
      u32[0] = lo;
      V[i] = f64[0]!;
    }
  } else throw new Error(`unknown value codec ${vCodec}`);
  out.n = n;
  return n;
}

/** Reads an integer stream (see writeIntStream) into m[0..n), with m[0] = m0. */
function readIntStream(r: ByteReader, n: number, m0: number, m: Float64Array): void {
  const order = r.u8('stream order');
  const form = r.u8('stream form');
  let v = m0;
  m[0] = v;
  let d = 0;
  if (form === 0) {
    for (let i = 1; i < n; i++) {
      const x = unzigzag(r.uvarint('stream value'));
      if (order === 1) d = x;
      else d += x;
      v += d;
      m[i] = v;
    }
    return;
  }
  const w = r.u8('stream width');
  const buf = r.buf;
  let pos = r.pos * 8;
  for (let i = 1; i < n; i++) {
    let z = 0;
    if (form === 1) {
      z = readWide(buf, pos, w);
      pos += w;
    } else if (readBits(buf, pos, 1) === 1) {
      z = readWide(buf, pos + 1, w);
      pos += 1 + w;
    } else pos += 1;
    const x = unzigzag(z);
    if (order === 1) d = x;
    else d += x;
    v += d;
    m[i] = v;
  }
  r.pos = (pos + 7) >>> 3;
}

/** Decodes a XOR value stream (no timestamps) starting at byte `start`. */
function decodeXorValues(buf: Uint8Array, start: number, n: number, V: Float64Array): void {
  // The value-only stream has the same value encoding as the Gorilla chunk; decode it with a small
  // dedicated loop rather than XorReader, which expects timestamps in between.
  let pos = start * 8;
  let hi = readBits(buf, pos, 32);
  let lo = readBits(buf, pos + 32, 32);
  pos += 64;
  u32[1] = hi;
  u32[0] = lo;
  V[0] = f64[0]!;
  let lead = 0;
  let trail = 0;
  for (let i = 1; i < n; i++) {
    if (readBits(buf, pos, 1) === 1) {
      if (readBits(buf, pos + 1, 1) === 1) {
        lead = readBits(buf, pos + 2, 5);
        let sig = readBits(buf, pos + 7, 6);
        if (sig === 0) sig = 64;
        trail = 64 - lead - sig;
        pos += 13;
      } else pos += 2;
      const sig = 64 - lead - trail;
      let xhi: number;
      let xlo: number;
      if (sig > 32) {
        const top = readBits(buf, pos, sig - 32);
        const low = readBits(buf, pos + sig - 32, 32);
        if (trail === 0) {
          xhi = top;
          xlo = low;
        } else {
          xhi = ((top << trail) | (low >>> (32 - trail))) >>> 0;
          xlo = (low << trail) >>> 0;
        }
      } else {
        const bits = readBits(buf, pos, sig);
        if (trail >= 32) {
          xhi = (bits << (trail - 32)) >>> 0;
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
      hi = (hi ^ xhi) >>> 0;
      lo = (lo ^ xlo) >>> 0;
      u32[1] = hi;
      u32[0] = lo;
    } else pos += 1;
    V[i] = f64[0]!;
  }
}
