/**
 * Bit-level writing and reading for the chunk codecs (Gorilla-style streams). Bits are written most
 * significant first into bytes that must start zeroed: writers OR bits in, never clear them, which lets the
 * head append to a chunk in place.
 *
 * 64-bit quantities (timestamps, float64 bit patterns) travel as two 32-bit halves `hi`, `lo`, because JS
 * bit operators work on 32 bits and BigInt would allocate per sample.
 */

/** Writes the low `n` (0..32) bits of `v` at bit position `pos`; returns the new position. */
export function writeBits(buf: Uint8Array, pos: number, v: number, n: number): number {
  while (n > 0) {
    const used = pos & 7;
    const free = 8 - used;
    const take = Math.min(n, free);
    const bits = (v >>> (n - take)) & ((1 << take) - 1);
    buf[pos >>> 3]! |= bits << (free - take);
    pos += take;
    n -= take;
  }
  return pos;
}

/** Reads `n` (0..32) bits at `pos` as an unsigned 32-bit number. The caller advances its position. */
export function readBits(buf: Uint8Array, pos: number, n: number): number {
  let v = 0;
  while (n > 0) {
    const used = pos & 7;
    const avail = 8 - used;
    const take = Math.min(n, avail);
    const byte = buf[pos >>> 3]!;
    const bits = (byte >>> (avail - take)) & ((1 << take) - 1);
    // `v * 2^take + bits` keeps 32-bit values exact (no sign bit trouble with <<).
    v = v * (1 << take) + bits;
    pos += take;
    n -= take;
  }
  return v;
}

/** Number of leading zero bits of the 64-bit value (hi, lo). */
export function clz64(hi: number, lo: number): number {
  return hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
}

/** Number of trailing zero bits of the 64-bit value (hi, lo); 64 for zero. */
export function ctz64(hi: number, lo: number): number {
  if (lo !== 0) return 31 - Math.clz32(lo & -lo);
  if (hi !== 0) return 63 - Math.clz32(hi & -hi);
  return 64;
}

/**
 * Writes bits [trailing, 64 - leading) of the 64-bit value (hi, lo), i.e. its `64 - leading - trailing`
 * meaningful bits, most significant first.
 */
export function writeMeaningful(
  buf: Uint8Array,
  pos: number,
  hi: number,
  lo: number,
  leading: number,
  trailing: number,
): number {
  const sig = 64 - leading - trailing;
  // Shift (hi, lo) right by `trailing`.
  let shi: number;
  let slo: number;
  if (trailing === 0) {
    shi = hi;
    slo = lo;
  } else if (trailing < 32) {
    slo = ((lo >>> trailing) | (hi << (32 - trailing))) >>> 0;
    shi = hi >>> trailing;
  } else {
    slo = hi >>> (trailing - 32);
    shi = 0;
  }
  if (sig > 32) {
    pos = writeBits(buf, pos, shi, sig - 32);
    return writeBits(buf, pos, slo, 32);
  }
  return writeBits(buf, pos, slo, sig);
}

/** Growable byte buffer for bit streams; bytes beyond the written length are kept zero. */
export class BitBuffer {
  buf: Uint8Array;
  pos = 0;

  constructor(initialBytes = 256) {
    this.buf = new Uint8Array(initialBytes);
  }

  reset(): void {
    this.buf.fill(0, 0, (this.pos + 7) >>> 3);
    this.pos = 0;
  }

  /** Makes room for `bits` more bits. */
  ensure(bits: number): void {
    const need = (this.pos + bits + 7) >>> 3;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, (this.pos + 7) >>> 3));
    this.buf = next;
  }

  write(v: number, n: number): void {
    this.ensure(n);
    this.pos = writeBits(this.buf, this.pos, v, n);
  }

  get byteLength(): number {
    return (this.pos + 7) >>> 3;
  }

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.byteLength);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Bulk decoding: bit streams as big-endian 32-bit words

let words = new Uint32Array(1026);

/**
 * The bytes of a bit stream from `start` as big-endian 32-bit words, followed by two zero words, in a scratch
 * array valid until the next call: decoders then read any 32 bits with two loads ({@link peekWord}) and never
 * leave the array.
 */
export function streamWords(bytes: Uint8Array, start: number): Uint32Array {
  const length = bytes.length - start;
  const count = (length + 3) >>> 2;
  if (words.length < count + 2) words = new Uint32Array(count * 2 + 2);
  const w = words;
  let i = start;
  let k = 0;
  const whole = start + (length & ~3);
  for (; i < whole; i += 4, k++)
    w[k] = ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
  if (i < bytes.length) {
    let last = 0;
    for (let s = 24; i < bytes.length; i++, s -= 8) last |= bytes[i]! << s;
    w[k++] = last >>> 0;
  }
  w[k] = 0;
  w[k + 1] = 0;
  return w;
}

/** The 32 bits at bit position `pos` of a word stream (see {@link streamWords}), as an unsigned number. */
export function peekWord(w: Uint32Array, pos: number): number {
  return peekBits(w, pos) >>> 0;
}

/**
 * The 32 bits at bit position `pos` of a word stream as a signed 32-bit integer: the first bit is the sign,
 * so hot loops test it with `< 0` and count leading bits with Math.clz32 in integer registers; shift right
 * with `>>>` to extract unsigned fields.
 */
export function peekBits(w: Uint32Array, pos: number): number {
  const k = pos >>> 5;
  const s = pos & 31;
  // (lo >>> 1) >>> (31 - s) is lo >>> (32 - s) without the shift-by-32 case at s = 0.
  return (w[k]! << s) | ((w[k + 1]! >>> 1) >>> (31 - s));
}
