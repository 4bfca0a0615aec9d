import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fmix32, murmur3, murmur3Rounds, murmur3RoundsView } from './murmur3.js';

describe('murmur3', () => {
  it('gives the same rounds over a DataView as over bytes, from any start and length', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(), fc.nat(), fc.integer(), (bytes, a, b, seed) => {
        const start = bytes.length === 0 ? 0 : a % bytes.length;
        const len = bytes.length === 0 ? 0 : b % (bytes.length - start + 1);
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        expect(murmur3RoundsView(view, start, len, seed | 0)).toBe(
          murmur3Rounds(bytes, start, len, seed | 0),
        );
      }),
    );
  });

  it('matches reference murmur3 x86_32 for whole words (seed = length, without the final length xor)', () => {
    // Reference: MurmurHash3_x86_32("abcd", seed 4) body, then fmix32 — computed by the reference algorithm's
    // steps written out here independently of the implementation.
    const bytes = new TextEncoder().encode('abcdefgh');
    let h = bytes.length;
    for (let i = 0; i < 8; i += 4) {
      let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
      k = Math.imul(k, 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      k = Math.imul(k, 0x1b873593);
      h ^= k;
      h = (h << 13) | (h >>> 19);
      h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    }
    expect(murmur3(bytes, 0, 8)).toBe(fmix32(h));
  });

  it('tells apart ranges that differ only in their tail bytes or their split', () => {
    const enc = new TextEncoder();
    const seen = new Set<number>();
    for (const s of ['a', 'b', 'ab', 'ba', 'abc', 'abd', 'abcde', 'abcdf', 'gpu', 'gpv', 'node-1', 'node-2'])
      seen.add(murmur3(enc.encode(s), 0, s.length));
    expect(seen.size).toBe(12);
    // Continuing rounds: "ab" + "c" differs from "a" + "bc".
    const abc = enc.encode('abc');
    expect(murmur3Rounds(abc, 2, 1, murmur3Rounds(abc, 0, 2, 0))).not.toBe(
      murmur3Rounds(abc, 1, 2, murmur3Rounds(abc, 0, 1, 0)),
    );
  });
});
