/**
 * The integer stream of block chunks (codec/chunk.ts, "integer stream" in its format box): the DECIMAL and BITS
 * value codecs write their integers m_1..m_{n-1} through it, in one of three orders and four forms. Its
 * sizing ({@link considerIntStream}) and writer sit beside its reader ({@link readIntStream}) and the
 * specialised per-form decode loops, so that a change to the stream's layout is made in this one file;
 * chunk.ts keeps the chunk layout, the timestamp codecs and the choice between value codecs.
 * Hot path: the decode loops are monomorphic and allocate nothing (scratch arrays are module-level, grown
 * when short); nothing here was changed in the move.
 */
import type { ByteReader, ByteWriter } from '../../protocol/bytes.js';
import { BitBuffer, peekBits, peekWord, streamWords } from './bits.js';

export const TWO32 = 4294967296;
export const INV_TWO32 = 1 / TWO32;

/** Rice codes longer than this many '1's escape to the stream's full width. */
export const RICE_ESCAPE = 32;

export function zigzag(x: number): number {
  return x >= 0 ? x * 2 : -x * 2 - 1;
}

export function unzigzag(z: number): number {
  return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
}

export function varintLen(z: number): number {
  let n = 1;
  while (z >= 0x80) {
    z = Math.floor(z / 0x80);
    n++;
  }
  return n;
}

export function bitWidth(z: number): number {
  if (z === 0) return 0;
  if (z < TWO32) return 32 - Math.clz32(z);
  return 32 + (32 - Math.clz32(Math.floor(z / TWO32)));
}

/** Writes the low `w` (0..53) bits of the non-negative integer `z`. */
export function writeWide(bb: BitBuffer, z: number, w: number): void {
  if (w <= 32) {
    bb.write(w === 32 ? z >>> 0 : z % 2 ** w, w);
    return;
  }
  const hi = Math.floor(z / TWO32);
  bb.write(hi, w - 32);
  bb.write(z >>> 0, 32);
}

/** Reads `w` (0..53) bits at `pos` of a word stream. */
export function peekWide(buf: Uint32Array, pos: number, w: number): number {
  if (w === 0) return 0;
  if (w <= 32) return w === 32 ? peekWord(buf, pos) : peekWord(buf, pos) >>> (32 - w);
  return (peekWord(buf, pos) >>> (64 - w)) * TWO32 + peekWord(buf, pos + w - 32);
}

export const scratchBits = new BitBuffer(1 << 12);
const scratch = { m: new Float64Array(1024), x: new Float64Array(1024) };

export function ints(n: number): Float64Array {
  if (scratch.m.length < n) scratch.m = new Float64Array(Math.max(n, scratch.m.length * 2));
  return scratch.m;
}

export function xs(n: number): Float64Array {
  if (scratch.x.length < n) scratch.x = new Float64Array(Math.max(n, scratch.x.length * 2));
  return scratch.x;
}

/** The value codec being chosen for the chunk being encoded (one at a time; reused, no object per chunk). */
export const choice: ValueChoice = {
  codec: 0,
  scale: 0,
  order: 1,
  form: 0,
  width: 0,
  low: 0,
  centre: 0,
  bytes: 0,
};

export interface ValueChoice {
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

/** x_1..x_{n-1} of an integer stream of `order` into `x` (x[0] unused); returns false if one is not exact. */
export function streamValues(
  m: Float64Array,
  n: number,
  order: number,
  centre: number,
  x: Float64Array,
): boolean {
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
export function considerIntStream(
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

/** The stream of m_1..m_{n-1} in the chosen order and form. */
export function writeIntStream(c: ValueChoice, m: Float64Array, n: number, out: ByteWriter): void {
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

/**
 * Reads an integer stream (see writeIntStream) into m[0..n), with m[0] = m0: first the zigzag values into a
 * scratch array, in a loop specialised per form (and for widths that fit 31 bits, in integer arithmetic),
 * then the order's prefix sums — tight, monomorphic loops.
 */
export function readIntStream(
  r: ByteReader,
  bytes: Uint8Array,
  n: number,
  m0: number,
  m: Float64Array,
): void {
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
export function bitsRiceAroundCentre(
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
