import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { snappyCompress, snappyUncompress } from '../../test/support/wire.js';
import { SnappyDecoder, SnappyError, snappyEncode } from './snappy.js';

const LIMIT = 1 << 20;

describe('snappy', () => {
  it('decodes what an independent implementation (snappyjs) compressed, and the other way round', () => {
    const dec = new SnappyDecoder(16);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 5000 }),
          // Repetitive data exercises back-references, including overlapping ones.
          fc
            .tuple(fc.uint8Array({ minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 500 }))
            .map(([unit, n]) => {
              const out = new Uint8Array(unit.length * n);
              for (let i = 0; i < n; i++) out.set(unit, i * unit.length);
              return out;
            }),
        ),
        (data) => {
          expect(Buffer.from(dec.decode(snappyCompress(data), LIMIT))).toEqual(Buffer.from(data));
          expect(Buffer.from(snappyUncompress(snappyEncode(data)))).toEqual(Buffer.from(data));
          expect(Buffer.from(dec.decode(snappyEncode(data), LIMIT))).toEqual(Buffer.from(data));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses every truncation of a valid block, and never throws anything but SnappyError on garbage', () => {
    const dec = new SnappyDecoder();
    const data = new TextEncoder().encode('prometheus remote write '.repeat(50) + 'tail');
    const block = snappyCompress(data);
    for (let cut = 0; cut < block.length; cut++) {
      expect(() => dec.decode(block.subarray(0, cut), LIMIT)).toThrow(SnappyError);
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          dec.decode(bytes, LIMIT);
        } catch (err) {
          expect(err).toBeInstanceOf(SnappyError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('checks the declared length against the limit before allocating, and offsets against the output', () => {
    const dec = new SnappyDecoder();
    expect(() => dec.decode(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f]), LIMIT)).toThrow(
      /more than the limit/,
    );
    expect(() => dec.decode(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), LIMIT)).toThrow(
      /longer than 5 bytes/,
    );
    // Length 4, then a copy 1 byte back with nothing written yet.
    expect(() => dec.decode(Uint8Array.from([4, 0x01, 0x01]), LIMIT)).toThrow(
      /refers 1 bytes back from output position 0/,
    );
    // Length 10 but only 2 literal bytes.
    expect(() => dec.decode(Uint8Array.from([10, 0x04, 0x61, 0x62]), LIMIT)).toThrow(
      /decodes to 2 bytes but its preamble says 10/,
    );
  });
});
