/**
 * murmur3 (x86, 32-bit), the one copy: the collector's series keys and string registry, and the processor's
 * series table and record-shape cache hash label bytes with it. Every use is an in-memory hash table (nothing
 * on disk, no bus partition depends on it: partitions use FNV-1a of the key, bus.ts hashPartitionKey), so the
 * exact variant is free to choose.
 *
 * The variant: the tail (1 to 3 bytes) is mixed in as a full round, not just xored in as reference murmur3
 * does, so that rounds over ranges can be continued ({@link murmur3Rounds} from a previous `h`) and ranges
 * stay distinguishable when concatenated. It costs one rotate and multiply-add per range; bench/murmur3.ts
 * measures both.
 */

/** murmur3's finalizer: every input bit affects every output bit (the low bits pick a hash table slot). */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

/**
 * murmur3 rounds over `b[start..start+len)`, continuing from `h` (not finalized). Twin: murmur3RoundsView (the
 * same rounds over a DataView); the round is written out in each, as a shared `round(h, k)` measured ~25% slower.
 */
export function murmur3Rounds(b: Uint8Array, start: number, len: number, h: number): number {
  let i = start;
  const whole = start + (len & ~3);
  for (; i < whole; i += 4) {
    let k = b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = len & 3;
  if (tail !== 0) {
    let k = b[i]!;
    if (tail > 1) k ^= b[i + 1]! << 8;
    if (tail > 2) k ^= b[i + 2]! << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  return h;
}

/**
 * {@link murmur3Rounds} over a DataView (the same result: its words are the same little-endian reads). Written
 * out again rather than shared (twin: murmur3Rounds): one loop over both kinds of source would make the word
 * read polymorphic in the collector's hottest loop (series keys are hashed per sample batch), and a shared
 * round function measured ~25% slower in bench/murmur3.ts (V8 did not inline it there).
 */
export function murmur3RoundsView(v: DataView, start: number, len: number, h: number): number {
  let i = start;
  const whole = start + (len & ~3);
  for (; i < whole; i += 4) {
    let k = v.getInt32(i, true);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = len & 3;
  if (tail !== 0) {
    let k = v.getUint8(i);
    if (tail > 1) k ^= v.getUint8(i + 1) << 8;
    if (tail > 2) k ^= v.getUint8(i + 2) << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  return h;
}

/** The finalized hash of `b[start..start+len)`, seeded with its length. */
export function murmur3(b: Uint8Array, start: number, len: number): number {
  return fmix32(murmur3Rounds(b, start, len, len));
}
