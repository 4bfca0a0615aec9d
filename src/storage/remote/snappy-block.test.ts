import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SnappyDecoder } from '../../collector/snappy.js';
import { SnappyBlockEncoder, snappyMaxEncodedLength } from './snappy-block.js';

function roundTrip(enc: SnappyBlockEncoder, src: Uint8Array): { out: Uint8Array; compressed: number } {
  const dst = new Uint8Array(snappyMaxEncodedLength(src.length));
  const n = enc.encode(src, src.length, dst);
  const out = new SnappyDecoder(16).decode(dst.subarray(0, n), src.length + 1);
  return { out: out.slice(), compressed: n };
}

/** Byte equality without vitest's element-by-element diffing (slow on 200 KB arrays). */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

describe('SnappyBlockEncoder', () => {
  const enc = new SnappyBlockEncoder();

  it('round-trips through the collector decoder: empty, tiny, repetitive, 64 KiB fragment edges', () => {
    const cases: Uint8Array[] = [
      new Uint8Array(0),
      Uint8Array.of(7),
      new TextEncoder().encode('abcdabcdabcdabcdabcdabcd'),
      new Uint8Array(70_000).fill(3),
      Uint8Array.from({ length: 200_000 }, (_, i) => (i * 7919) % 251),
      Uint8Array.from({ length: (1 << 16) + 5 }, (_, i) => (i % 100 === 0 ? i & 0xff : 9)),
    ];
    for (const src of cases) expect(same(roundTrip(enc, src).out, src)).toBe(true);
  });

  it('compresses label-like repetition well', () => {
    const line = new TextEncoder().encode(
      'gpu_utilization_ratio{tenant="a",job_id="j1",node_id="n1",gpu="0"}',
    );
    const src = new Uint8Array(line.length * 500);
    for (let i = 0; i < 500; i++) src.set(line, i * line.length);
    const { out, compressed } = roundTrip(enc, src);
    expect(same(out, src)).toBe(true);
    expect(compressed).toBeLessThan(src.length / 20);
  });

  it('round-trips arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 3000 }),
          // Low-entropy input makes many overlapping copies.
          fc.array(fc.constantFrom(0, 1, 2), { maxLength: 5000 }).map((a) => Uint8Array.from(a)),
        ),
        (src) => {
          expect(roundTrip(enc, src).out).toEqual(src);
        },
      ),
      { numRuns: 300 },
    );
  });
});
