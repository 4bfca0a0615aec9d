/**
 * Snappy block-format compression into caller-owned buffers, for the remote-write send path: one encoder per
 * queue keeps its hash table and is reused for every request, so compressing a request allocates nothing.
 * (collector/snappy.ts `snappyEncode` builds a number[] and a Map: fine for tests, not for a send loop.)
 *
 * The format is the one Prometheus's remote-write uses (`snappy.Encode`, not the framed stream format): a
 * varint of the uncompressed length, then literals and copies. The matcher is Snappy's own greedy scheme over
 * 4-byte hashes, in 64 KiB fragments so that every copy offset fits two bytes.
 */

const FRAGMENT = 1 << 16;
const HASH_BITS = 14;
const HASH_SHIFT = 32 - HASH_BITS;
/** Inputs shorter than this are emitted as one literal: matching cannot pay for itself. */
const MIN_MATCH_INPUT = 17;

/** Upper bound of the compressed size of `n` bytes (snappy's MaxEncodedLen). */
export function snappyMaxEncodedLength(n: number): number {
  return 32 + n + Math.floor(n / 6);
}

export class SnappyBlockEncoder {
  /** Position (within the fragment) + 1 of the last 4-byte sequence with each hash; 0 = none. */
  private readonly table = new Uint32Array(1 << HASH_BITS);

  /**
   * Compresses `src[0..srcLength)` into `dst`, which must hold {@link snappyMaxEncodedLength} bytes; returns
   * the compressed length.
   */
  encode(src: Uint8Array, srcLength: number, dst: Uint8Array): number {
    let d = 0;
    let n = srcLength;
    while (n >= 0x80) {
      dst[d++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    dst[d++] = n;
    for (let start = 0; start < srcLength; start += FRAGMENT) {
      d = this.fragment(src, start, Math.min(start + FRAGMENT, srcLength), dst, d);
    }
    return d;
  }

  private fragment(src: Uint8Array, start: number, end: number, dst: Uint8Array, d: number): number {
    if (end - start < MIN_MATCH_INPUT) return emitLiteral(src, start, end, dst, d);
    const table = this.table;
    table.fill(0);
    // Unaligned 32-bit loads: V8 compiles DataView reads to single loads, four times fewer than by bytes.
    const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
    let literalStart = start;
    let i = start;
    const limit = end - 4;
    while (i <= limit) {
      const word = view.getUint32(i, true);
      const h = Math.imul(word, 0x1e35a7bd) >>> HASH_SHIFT;
      const candidate = table[h]! - 1 + start;
      table[h] = i - start + 1;
      if (candidate < start || candidate >= i || view.getUint32(candidate, true) !== word) {
        // Snappy's skipping heuristic: the longer nothing matched, the bigger the steps (incompressible data).
        i += 1 + ((i - literalStart) >>> 5);
        continue;
      }
      let len = 4;
      while (i + len <= limit && view.getUint32(candidate + len, true) === view.getUint32(i + len, true))
        len += 4;
      while (i + len < end && src[candidate + len] === src[i + len]) len++;
      if (literalStart < i) d = emitLiteral(src, literalStart, i, dst, d);
      d = emitCopy(i - candidate, len, dst, d);
      i += len;
      literalStart = i;
    }
    if (literalStart < end) d = emitLiteral(src, literalStart, end, dst, d);
    return d;
  }
}

function emitLiteral(src: Uint8Array, from: number, to: number, dst: Uint8Array, d: number): number {
  const len = to - from;
  const l = len - 1;
  if (l < 60) dst[d++] = l << 2;
  else if (l < 256) {
    dst[d++] = 60 << 2;
    dst[d++] = l;
  } else {
    // Fragments are at most 64 KiB: two length bytes always suffice.
    dst[d++] = 61 << 2;
    dst[d++] = l & 0xff;
    dst[d++] = l >>> 8;
  }
  if (len < 16) for (let k = 0; k < len; k++) dst[d + k] = src[from + k]!;
  else dst.set(src.subarray(from, to), d);
  return d + len;
}

function emitCopy(offset: number, len: number, dst: Uint8Array, d: number): number {
  // Copies of 68+ bytes go out 64 at a time, keeping at least 4 for the last (the 1-byte-offset form needs 4).
  while (len >= 68) {
    dst[d++] = 2 | (63 << 2);
    dst[d++] = offset & 0xff;
    dst[d++] = offset >>> 8;
    len -= 64;
  }
  if (len > 64) {
    dst[d++] = 2 | (59 << 2);
    dst[d++] = offset & 0xff;
    dst[d++] = offset >>> 8;
    len -= 60;
  }
  if (len >= 4 && len <= 11 && offset < 2048) {
    dst[d++] = 1 | ((len - 4) << 2) | ((offset >>> 8) << 5);
    dst[d++] = offset & 0xff;
  } else {
    dst[d++] = 2 | ((len - 1) << 2);
    dst[d++] = offset & 0xff;
    dst[d++] = offset >>> 8;
  }
  return d;
}
