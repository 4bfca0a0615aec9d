/**
 * The Gorilla chunk (Facebook's Gorilla paper, as Prometheus uses it): timestamps as delta-of-delta with
 * variable-width buckets, values as the XOR with the previous value's bits, storing only the meaningful
 * bits. Every float64 bit pattern round-trips exactly (NaN payloads such as the staleness marker, -0,
 * infinities, subnormals).
 *
 * The head appends to an open chunk sample by sample ({@link XorAppender}); sealed chunks are decoded by
 * {@link XorReader}. Format (bits, most significant first; docs/storage.md "Head chunk"):
 *
 * ```
 * sample 0   t: 64 (two's complement)            v: 64 raw bits
 * sample 1+  t: dod bucket                        v: xor
 * dod bucket  '0' (dod = 0) | '10' 14b | '110' 17b | '1110' 20b | '1111' 64b    (two's complement)
 * xor         '0' (same bits) | '10' meaningful bits in the previous window
 *                             | '11' leading(5b) sigbits(6b, 0 = 64) meaningful bits
 * ```
 */
import {
  clz64,
  ctz64,
  peekBits,
  peekWord,
  readBits,
  streamWords,
  writeBits,
  writeMeaningful,
} from './bits.js';

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

function read64(buf: Uint8Array, pos: number): number {
  const hi = readBits(buf, pos, 32) | 0;
  const lo = readBits(buf, pos + 32, 32);
  return hi * TWO32 + lo;
}

/** Writes a delta-of-delta bucket; returns the new position. */
export function writeDod(buf: Uint8Array, pos: number, dod: number): number {
  if (dod === 0) return writeBits(buf, pos, 0, 1);
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
 * Appends samples to a Gorilla stream held in a caller-owned zeroed buffer. The encoder state lives in plain
 * fields so that the head can keep one per series in typed-array columns instead (see head.ts, which
 * inlines the same steps); this class is what blocks and tests use.
 */
export class XorAppender {
  count = 0;
  pos = 0;
  private t = 0;
  private delta = 0;
  private vhi = 0;
  private vlo = 0;
  private lead = 0xff;
  private trail = 0;

  constructor(public buf: Uint8Array) {}

  /** Appends (t, v); the buffer must have XOR_MAX_SAMPLE_BITS free bits beyond `pos`. */
  append(t: number, v: number): void {
    f64[0] = v;
    const hi = u32[HI]!;
    const lo = u32[LO]!;
    let pos = this.pos;
    const buf = this.buf;
    if (this.count === 0) {
      pos = write64(buf, pos, t);
      pos = writeBits(buf, pos, hi, 32);
      pos = writeBits(buf, pos, lo, 32);
    } else {
      const delta = t - this.t;
      pos = writeDod(buf, pos, delta - this.delta);
      this.delta = delta;
      appendXorValue(buf, pos, hi ^ this.vhi, lo ^ this.vlo, this.lead, this.trail);
      pos = xorPos;
      if (xorWindowChanged) {
        this.lead = xorLead;
        this.trail = xorTrail;
      }
    }
    this.t = t;
    this.vhi = hi;
    this.vlo = lo;
    this.pos = pos;
    this.count++;
  }
}

// appendXorValue reports through these module fields to avoid allocating a result object per sample.
export let xorPos = 0;
export let xorLead = 0;
export let xorTrail = 0;
export let xorWindowChanged = false;

/**
 * Writes the XOR `(xhi, xlo)` of a value with its predecessor, given the previous window (`lead` = 0xff
 * when there is none). Sets {@link xorPos}, and {@link xorLead}/{@link xorTrail} when
 * {@link xorWindowChanged}.
 */
export function appendXorValue(
  buf: Uint8Array,
  pos: number,
  xhi: number,
  xlo: number,
  lead: number,
  trail: number,
): number {
  xorWindowChanged = false;
  if (xhi === 0 && xlo === 0) {
    xorPos = writeBits(buf, pos, 0, 1);
    return 1;
  }
  let l = clz64(xhi, xlo);
  const t = ctz64(xhi, xlo);
  if (l > 31) l = 31;
  if (lead !== 0xff && l >= lead && t >= trail) {
    pos = writeBits(buf, pos, 0b10, 2);
    xorPos = writeMeaningful(buf, pos, xhi >>> 0, xlo >>> 0, lead, trail);
    return 2;
  }
  const sig = 64 - l - t;
  pos = writeBits(buf, pos, 0b11, 2);
  pos = writeBits(buf, pos, l, 5);
  pos = writeBits(buf, pos, sig & 63, 6);
  xorPos = writeMeaningful(buf, pos, xhi >>> 0, xlo >>> 0, l, t);
  xorLead = l;
  xorTrail = t;
  xorWindowChanged = true;
  return 3;
}

/**
 * Reads a Gorilla stream sample by sample into its fields; no allocation per sample. `reset` points it at
 * another stream so one reader serves many chunks.
 */
export class XorReader {
  t = 0;
  v = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private left = 0;
  private read = 0;
  private delta = 0;
  private vhi = 0;
  private vlo = 0;
  private lead = 0;
  private trail = 0;

  reset(buf: Uint8Array, count: number, bitOffset = 0): this {
    this.buf = buf;
    this.pos = bitOffset;
    this.left = count;
    this.read = 0;
    this.delta = 0;
    return this;
  }

  /** Bit position after the last sample read. */
  get bitPos(): number {
    return this.pos;
  }

  next(): boolean {
    if (this.left === 0) return false;
    this.left--;
    const buf = this.buf;
    let pos = this.pos;
    if (this.read === 0) {
      this.t = read64(buf, pos);
      this.vhi = readBits(buf, pos + 64, 32);
      this.vlo = readBits(buf, pos + 96, 32);
      pos += 128;
    } else {
      // Timestamp: delta of delta.
      let dod: number;
      if (readBits(buf, pos, 1) === 0) {
        dod = 0;
        pos += 1;
      } else if (readBits(buf, pos + 1, 1) === 0) {
        dod = signExtend(readBits(buf, pos + 2, 14), 14);
        pos += 16;
      } else if (readBits(buf, pos + 2, 1) === 0) {
        dod = signExtend(readBits(buf, pos + 3, 17), 17);
        pos += 20;
      } else if (readBits(buf, pos + 3, 1) === 0) {
        dod = signExtend(readBits(buf, pos + 4, 20), 20);
        pos += 24;
      } else {
        dod = read64(buf, pos + 4);
        pos += 68;
      }
      this.delta += dod;
      this.t += this.delta;
      // Value: XOR with the previous bits.
      if (readBits(buf, pos, 1) === 1) {
        if (readBits(buf, pos + 1, 1) === 1) {
          this.lead = readBits(buf, pos + 2, 5);
          let sig = readBits(buf, pos + 7, 6);
          if (sig === 0) sig = 64;
          this.trail = 64 - this.lead - sig;
          pos += 13;
        } else {
          pos += 2;
        }
        pos = this.readXor(buf, pos);
      } else {
        pos += 1;
      }
    }
    u32[HI] = this.vhi;
    u32[LO] = this.vlo;
    this.v = f64[0]!;
    this.pos = pos;
    this.read++;
    return true;
  }

  private readXor(buf: Uint8Array, pos: number): number {
    const sig = 64 - this.lead - this.trail;
    const trail = this.trail;
    let xhi: number;
    let xlo: number;
    if (sig > 32) {
      const top = readBits(buf, pos, sig - 32);
      const low = readBits(buf, pos + sig - 32, 32);
      // (top:low) << trail, where sig - 32 + 32 + trail <= 64.
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
    this.vhi = (this.vhi ^ xhi) >>> 0;
    this.vlo = (this.vlo ^ xlo) >>> 0;
    return pos + sig;
  }
}

function signExtend(v: number, bits: number): number {
  return v >= 1 << (bits - 1) ? v - (1 << bits) : v;
}

/** Encodes whole arrays into a fresh byte array (blocks, tests). */
export function encodeXor(
  ts: ArrayLike<number>,
  vs: ArrayLike<number>,
  from: number,
  to: number,
): Uint8Array {
  const buf = new Uint8Array((((to - from) * XOR_MAX_SAMPLE_BITS) >>> 3) + 32);
  const app = new XorAppender(buf);
  for (let i = from; i < to; i++) app.append(ts[i]!, vs[i]!);
  return buf.slice(0, (app.pos + 7) >>> 3);
}

// ---------------------------------------------------------------------------------------------------------
// Bulk decoding

/**
 * Scratch for bulk decoders: the stream copied behind 16 zero bytes of padding, so that reading 32 bits at
 * any position up to the end never leaves the array (no bounds checks in the loops, no out-of-bounds reads).
 */
let padded = new Uint8Array(4096 + 16);

/** `bytes` copied into a zero-padded scratch array (valid until the next call). */
export function paddedCopy(bytes: Uint8Array): Uint8Array {
  if (padded.length < bytes.length + 16) padded = new Uint8Array(bytes.length * 2 + 16);
  padded.set(bytes);
  padded.fill(0, bytes.length, bytes.length + 16);
  return padded;
}

/** The 32 bits at bit position `pos` of a padded buffer, as an unsigned number. */
export function peek32(buf: Uint8Array, pos: number): number {
  const i = pos >>> 3;
  const s = pos & 7;
  // No branch for s = 0: the fifth byte shifted right by 8 is 0.
  return (
    ((((buf[i]! << 24) | (buf[i + 1]! << 16) | (buf[i + 2]! << 8) | buf[i + 3]!) << s) |
      (buf[i + 4]! >>> (8 - s))) >>>
    0
  );
}

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
  const buf = streamWords(bytes, 0);
  let t = (buf[0]! | 0) * TWO32 + buf[1]!;
  let vhi = buf[2]!;
  let vlo = buf[3]!;
  let pos = 128;
  T[at] = t;
  VB[at * 2] = vlo;
  VB[at * 2 + 1] = vhi;
  let delta = 0;
  let lead = 0;
  let trail = 0;
  for (let i = 1; i < count; i++) {
    let w = peekBits(buf, pos);
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
