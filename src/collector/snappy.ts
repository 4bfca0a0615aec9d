/**
 * Snappy block format (https://github.com/google/snappy/blob/main/format_description.txt), as Prometheus
 * remote-write uses it: a uvarint of the uncompressed length, then literals and back-references.
 *
 * Hand-written because it is the hot path: decoding into one reused buffer keeps the garbage collector out
 * of ingest (DESIGN.md measured a fresh buffer per request halving throughput). The encoder is a simple,
 * correct one for tests, benchmarks and tools; trainwatch never compresses snappy on a hot path.
 *
 * Every malformed input is a {@link SnappyError}: a truncated element, an offset of 0 or before the start,
 * output longer or shorter than the preamble says, or a preamble over the caller's limit (checked before
 * anything is allocated, so a 40-byte body cannot make the server reserve gigabytes).
 */

export class SnappyError extends Error {
  constructor(
    message: string,
    /** True when the data is well-formed but decompresses beyond the caller's limit. */
    readonly tooLarge = false,
  ) {
    super(message);
    this.name = 'SnappyError';
  }
}

/** Reads the uncompressed length from the preamble; throws on a malformed or over-long varint. */
export function snappyUncompressedLength(src: Uint8Array): { length: number; headerBytes: number } {
  let result = 0;
  let shift = 1;
  for (let i = 0; i < 5; i++) {
    if (i >= src.length) throw new SnappyError('truncated snappy preamble (uncompressed length)');
    const b = src[i]!;
    result += (b & 0x7f) * shift;
    if (b < 0x80) {
      if (result > 0xffffffff) throw new SnappyError('snappy uncompressed length exceeds 2^32 - 1');
      return { length: result, headerBytes: i + 1 };
    }
    shift *= 128;
  }
  throw new SnappyError('snappy preamble varint is longer than 5 bytes');
}

/**
 * Decodes snappy blocks into a buffer it keeps and grows. The returned view is valid until the next
 * `decode`: callers consume it synchronously (the collector walks the protobuf before its first `await`).
 */
export class SnappyDecoder {
  private out: Uint8Array;

  constructor(initialCapacity = 1 << 16) {
    this.out = new Uint8Array(initialCapacity);
  }

  decode(src: Uint8Array, maxLength: number): Uint8Array {
    const { length, headerBytes } = snappyUncompressedLength(src);
    if (length > maxLength) {
      throw new SnappyError(
        `snappy payload declares ${length} uncompressed bytes, more than the limit of ${maxLength}`,
        true,
      );
    }
    if (this.out.length < length) {
      let cap = this.out.length;
      while (cap < length) cap *= 2;
      this.out = new Uint8Array(Math.min(cap, Math.max(length, maxLength)));
    }
    const out = this.out;
    const end = src.length;
    let s = headerBytes;
    let d = 0;
    while (s < end) {
      const tag = src[s++]!;
      const type = tag & 3;
      if (type === 0) {
        let len = tag >>> 2;
        if (len >= 60) {
          const extra = len - 59; // 1..4 bytes of length, little-endian
          if (s + extra > end) throw new SnappyError(`truncated snappy literal length at byte ${s}`);
          len = 0;
          for (let i = extra - 1; i >= 0; i--) len = len * 256 + src[s + i]!;
          s += extra;
        }
        len += 1;
        if (s + len > end) throw new SnappyError(`truncated snappy literal at byte ${s}: needs ${len} bytes`);
        if (d + len > length)
          throw new SnappyError('snappy data decodes to more bytes than its preamble says');
        // A view per literal would be an object per literal: copy short ones by hand.
        if (len < 128) {
          for (let i = 0; i < len; i++) out[d + i] = src[s + i]!;
        } else {
          out.set(src.subarray(s, s + len), d);
        }
        s += len;
        d += len;
        continue;
      }
      let len: number;
      let offset: number;
      if (type === 1) {
        if (s >= end) throw new SnappyError(`truncated snappy copy at byte ${s}`);
        len = 4 + ((tag >>> 2) & 7);
        offset = ((tag >>> 5) << 8) | src[s++]!;
      } else if (type === 2) {
        if (s + 2 > end) throw new SnappyError(`truncated snappy copy at byte ${s}`);
        len = 1 + (tag >>> 2);
        offset = src[s]! | (src[s + 1]! << 8);
        s += 2;
      } else {
        if (s + 4 > end) throw new SnappyError(`truncated snappy copy at byte ${s}`);
        len = 1 + (tag >>> 2);
        offset = (src[s]! | (src[s + 1]! << 8) | (src[s + 2]! << 16) | (src[s + 3]! << 24)) >>> 0;
        s += 4;
      }
      if (offset === 0 || offset > d) {
        throw new SnappyError(
          `snappy copy at byte ${s} refers ${offset} bytes back from output position ${d}`,
        );
      }
      if (d + len > length) throw new SnappyError('snappy data decodes to more bytes than its preamble says');
      let from = d - offset;
      if (offset >= len && len > 16) {
        out.copyWithin(d, from, from + len);
        d += len;
      } else {
        // Overlapping copies repeat the last `offset` bytes (run-length style): byte by byte, in order.
        for (let i = 0; i < len; i++) out[d++] = out[from++]!;
      }
    }
    if (d !== length) {
      throw new SnappyError(`snappy data decodes to ${d} bytes but its preamble says ${length}`);
    }
    return out.subarray(0, length);
  }
}

/**
 * Compresses into the snappy block format with a greedy 4-byte hash matcher (what Snappy itself does,
 * without its speed tricks). For tests, benchmarks and tools.
 */
export function snappyEncode(src: Uint8Array): Uint8Array {
  const out: number[] = [];
  let n = src.length;
  do {
    out.push(n >= 0x80 ? (n & 0x7f) | 0x80 : n);
    n = Math.floor(n / 128);
  } while (n > 0);
  const emitLiteral = (from: number, to: number) => {
    let remaining = to - from;
    while (remaining > 0) {
      const len = Math.min(remaining, 1 << 16);
      const l = len - 1;
      if (l < 60) out.push(l << 2);
      else if (l < 256) out.push(60 << 2, l);
      else out.push(61 << 2, l & 0xff, l >>> 8);
      for (let i = 0; i < len; i++) out.push(src[from + i]!);
      from += len;
      remaining -= len;
    }
  };
  const emitCopy = (offset: number, len: number) => {
    while (len > 0) {
      const l = Math.min(len, 64);
      if (l >= 4 && l <= 11 && offset < 2048)
        out.push(1 | ((l - 4) << 2) | ((offset >>> 8) << 5), offset & 0xff);
      else out.push(2 | ((l - 1) << 2), offset & 0xff, offset >>> 8);
      len -= l;
    }
  };
  const table = new Map<number, number>();
  let literalStart = 0;
  let i = 0;
  while (i + 4 <= src.length) {
    const key = (src[i]! | (src[i + 1]! << 8) | (src[i + 2]! << 16) | (src[i + 3]! << 24)) >>> 0;
    const candidate = table.get(key);
    table.set(key, i);
    if (candidate !== undefined && i - candidate < 65536) {
      let len = 4;
      while (i + len < src.length && src[candidate + len] === src[i + len]) len++;
      emitLiteral(literalStart, i);
      emitCopy(i - candidate, len);
      i += len;
      literalStart = i;
    } else {
      i++;
    }
  }
  emitLiteral(literalStart, src.length);
  return Uint8Array.from(out);
}
