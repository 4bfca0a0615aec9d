/**
 * Byte-level reading and writing for trainwatch's binary formats (native protocol, bus records).
 *
 * Varints are unsigned LEB128 as in protobuf, limited to 53 bits so that they round-trip through a JS number;
 * signed values use zigzag encoding. A {@link ByteWriter} is meant to be reused: `reset()` keeps its buffer.
 */

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

export class DecodeError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} (at byte ${offset})`);
    this.name = 'DecodeError';
  }
}

/**
 * Writes `v` (an integer in [0, 2^32)) as a uvarint at `b[at..]`, which has room; returns the position after
 * it. For fixed-size scratch buffers (series keys, head-log sections); a {@link ByteWriter} grows instead.
 */
export function putUvarint32(b: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    b[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  b[at++] = v;
  return at;
}

/**
 * Room for `extra` more bytes after the first `used` of `buf`: `buf` itself when they fit, else a buffer at
 * least twice as large holding a copy of those bytes (doubling keeps appending amortized O(1)). The growable
 * writers (this file's ByteWriter, the collector's payload and the processor's state writers) share it.
 */
export function growBuffer(
  buf: Uint8Array<ArrayBuffer>,
  used: number,
  extra: number,
): Uint8Array<ArrayBuffer> {
  const need = used + extra;
  if (need <= buf.length) return buf;
  let cap = Math.max(1, buf.length * 2);
  while (cap < need) cap *= 2;
  const next = new Uint8Array(cap);
  next.set(buf.subarray(0, used));
  return next;
}

export class ByteWriter {
  private buf: Uint8Array<ArrayBuffer>;
  private view: DataView;
  length = 0;

  constructor(initialCapacity = 4096) {
    this.buf = new Uint8Array(initialCapacity);
    this.view = new DataView(this.buf.buffer);
  }

  reset(): void {
    this.length = 0;
  }

  /** The bytes written so far, as a view valid until the next write or reset. */
  view_(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  /** A copy of the bytes written so far, safe to keep. */
  toBytes(): Uint8Array {
    return this.buf.slice(0, this.length);
  }

  ensure(extra: number): void {
    if (this.length + extra <= this.buf.length) return;
    this.buf = growBuffer(this.buf, this.length, extra);
    this.view = new DataView(this.buf.buffer);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.length++] = v;
  }

  u32le(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }

  f64le(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.length, v, true);
    this.length += 8;
  }

  /** Writes `values[from..to)` as little-endian float64s, preserving every NaN bit pattern. */
  f64leArray(values: Float64Array, from: number, to: number): void {
    const n = to - from;
    this.ensure(n * 8);
    for (let i = from; i < to; i++) {
      this.view.setFloat64(this.length, values[i]!, true);
      this.length += 8;
    }
  }

  uvarint(v: number): void {
    if (!(v >= 0 && v <= MAX_SAFE && Number.isInteger(v))) throw new RangeError(`uvarint out of range: ${v}`);
    this.ensure(8);
    while (v >= 0x80) {
      this.buf[this.length++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.length++] = v;
  }

  /** Zigzag: 0 → 0, -1 → 1, 1 → 2, -2 → 3 ... for |v| < 2^52. */
  svarint(v: number): void {
    this.uvarint(v >= 0 ? v * 2 : -v * 2 - 1);
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  /** A UTF-8 string preceded by its byte length as a uvarint. */
  string(s: string): void {
    // Worst case 3 bytes per UTF-16 unit; encodeInto avoids an intermediate array.
    this.ensure(s.length * 3 + 10);
    const lenPos = this.length;
    // Reserve a length slot of the size the final length will need.
    const maxLen = s.length * 3;
    const slot = maxLen < 0x80 ? 1 : maxLen < 0x4000 ? 2 : maxLen < 0x200000 ? 3 : 4;
    const { written } = textEncoder.encodeInto(s, this.buf.subarray(lenPos + slot));
    const actualSlot = written < 0x80 ? 1 : written < 0x4000 ? 2 : written < 0x200000 ? 3 : 4;
    if (actualSlot !== slot) this.buf.copyWithin(lenPos + actualSlot, lenPos + slot, lenPos + slot + written);
    this.length = lenPos;
    this.uvarint(written);
    this.length = lenPos + actualSlot + written;
  }
}

export class ByteReader {
  pos: number;
  private readonly view: DataView;

  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  need(n: number, what: string): void {
    if (this.end - this.pos < n)
      throw new DecodeError(`truncated: ${what} needs ${n} bytes, ${this.end - this.pos} left`, this.pos);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }

  u32le(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  f64le(what: string): number {
    this.need(8, what);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** Reads `n` float64s into `out[at..at+n)` without allocating. */
  f64leInto(out: Float64Array, at: number, n: number, what: string): void {
    this.need(n * 8, what);
    let p = this.pos;
    for (let i = 0; i < n; i++) {
      out[at + i] = this.view.getFloat64(p, true);
      p += 8;
    }
    this.pos = p;
  }

  uvarint(what: string): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.end) throw new DecodeError(`truncated varint in ${what}`, this.pos);
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (result > MAX_SAFE) throw new DecodeError(`varint in ${what} exceeds 2^53`, this.pos);
        return result;
      }
      mul *= 0x80;
    }
    throw new DecodeError(`varint in ${what} longer than 8 bytes`, this.pos);
  }

  svarint(what: string): number {
    const u = this.uvarint(what);
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
  }

  /**
   * The byte length of a length-prefixed string, checked against `maxBytes` and against what remains; the
   * position is left at its first byte. For readers that use the bytes in place (interning, hashing) instead
   * of decoding a string.
   */
  stringLength(what: string, maxBytes: number): number {
    const len = this.uvarint(`${what} length`);
    if (len > maxBytes)
      throw new DecodeError(`${what} is ${len} bytes, longer than the limit of ${maxBytes}`, this.pos);
    this.need(len, what);
    return len;
  }

  string(what: string, maxBytes: number): string {
    const len = this.stringLength(what, maxBytes);
    let s: string;
    try {
      s = textDecoder.decode(this.buf.subarray(this.pos, this.pos + len));
    } catch {
      throw new DecodeError(`${what} is not valid UTF-8`, this.pos);
    }
    this.pos += len;
    return s;
  }

  bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}
