/**
 * Property tests of every codec: any sequence of timestamps and float64 values — NaN with any payload (the
 * staleness marker among them), ±Inf, -0, subnormals, huge jumps — round-trips bit-exactly.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { STALE_NAN } from '../../model/batch.js';
import { ByteWriter } from '../../protocol/bytes.js';
import { decodeChunk, encodeChunk, MAX_TIMESTAMP, SampleBuffer, TsCodec, ValueCodec } from './chunk.js';
import { encodeXor, XorReader } from './xor.js';

const bitsOf = (v: number): string => {
  const b = new DataView(new ArrayBuffer(8));
  b.setFloat64(0, v);
  return b.getBigUint64(0).toString(16);
};

/** Any float64 bit pattern, biased towards the awkward ones. */
const anyFloat = fc.oneof(
  fc.double({ noDefaultInfinity: false, noNaN: false }),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((b) => {
    const d = new DataView(new ArrayBuffer(8));
    d.setBigUint64(0, b);
    return d.getFloat64(0);
  }),
  fc.constantFrom(STALE_NAN, Number.NaN, -0, 0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY),
  fc.constantFrom(Number.MIN_VALUE, -Number.MIN_VALUE, 2.2250738585072e-308, Number.MAX_VALUE),
  fc.integer({ min: -1_000_000, max: 1_000_000 }).map((i) => i / 100),
  fc.integer().map((i) => i * 1e9),
);

/** A run of the same kind of values, as real series produce: constants, decimals, counters, noise. */
const valueRuns = fc.oneof(
  fc.array(anyFloat, { minLength: 1, maxLength: 300 }),
  fc.tuple(anyFloat, fc.integer({ min: 1, max: 300 })).map(([v, n]) => new Array<number>(n).fill(v)),
  fc
    .array(fc.integer({ min: -500, max: 500 }), { minLength: 1, maxLength: 300 })
    .map((ds) => ds.map((_, i) => ds.slice(0, i + 1).reduce((a, b) => a + b, 0) / 10)),
  fc
    .tuple(
      fc.integer({ min: 0, max: 2 ** 40 }),
      fc.integer({ min: 0, max: 10_000 }),
      fc.integer({ min: 1, max: 300 }),
    )
    .map(([start, step, n]) => Array.from({ length: n }, (_, i) => start + i * step)),
  // Noisy readings around a level (GPU utilisation, power, temperature): close bit patterns, any sign.
  fc
    .tuple(
      fc.double({ min: -1e6, max: 1e6, noNaN: true }),
      fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 1, maxLength: 300 }),
    )
    .map(([level, noise]) => noise.map((x) => level + level * 0.03 * x)),
);

/** Strictly increasing timestamps: regular, jittered, or with huge jumps, anywhere in the int64-safe range. */
const timestampsOf = (n: number) =>
  fc
    .tuple(
      fc.integer({ min: -(2 ** 48), max: 2 ** 48 }),
      fc.oneof(
        fc.constant([1000]),
        fc.array(fc.integer({ min: 1, max: 20_000 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 2 ** 40 }), { minLength: 1, maxLength: 8 }),
      ),
    )
    .map(([t0, deltas]) => {
      const ts: number[] = [t0];
      for (let i = 1; i < n; i++) ts.push(ts[i - 1]! + deltas[i % deltas.length]!);
      return ts;
    })
    .filter((ts) => ts.every((t) => Math.abs(t) <= MAX_TIMESTAMP));

const samples = valueRuns.chain((vs) => timestampsOf(vs.length).map((ts) => ({ ts, vs })));

describe('Gorilla XOR chunk', () => {
  it('round-trips any samples bit-exactly', () => {
    fc.assert(
      fc.property(samples, ({ ts, vs }) => {
        const values = Float64Array.from(vs);
        const bytes = encodeXor(ts, values, 0, ts.length);
        const r = new XorReader().reset(bytes, ts.length);
        for (let i = 0; i < ts.length; i++) {
          expect(r.next()).toBe(true);
          expect(r.t).toBe(ts[i]);
          expect(bitsOf(r.v)).toBe(bitsOf(values[i]!));
        }
        expect(r.next()).toBe(false);
      }),
      { numRuns: 400 },
    );
  });
});

describe('block chunk (per-chunk codec choice)', () => {
  const buf = new SampleBuffer(4);
  it('round-trips any samples bit-exactly', () => {
    const out = new ByteWriter();
    fc.assert(
      fc.property(samples, ({ ts, vs }) => {
        const values = Float64Array.from(vs);
        out.reset();
        encodeChunk(ts, values, 0, ts.length, out);
        const n = decodeChunk(out.toBytes(), buf);
        expect(n).toBe(ts.length);
        for (let i = 0; i < n; i++) {
          expect(buf.t[i]).toBe(ts[i]);
          expect(bitsOf(buf.v[i]!)).toBe(bitsOf(values[i]!));
        }
      }),
      { numRuns: 600 },
    );
  });

  it('round-trips a sub-range of larger arrays', () => {
    const ts = Float64Array.from({ length: 50 }, (_, i) => 1000 * i);
    const vs = Float64Array.from({ length: 50 }, (_, i) => i * 0.25);
    const out = new ByteWriter();
    encodeChunk(ts, vs, 10, 30, out);
    expect(decodeChunk(out.toBytes(), buf)).toBe(20);
    expect(Array.from(buf.t.subarray(0, 20))).toEqual(Array.from(ts.subarray(10, 30)));
    expect(Array.from(buf.v.subarray(0, 20))).toEqual(Array.from(vs.subarray(10, 30)));
  });

  it('picks the cheap codecs where the data allows them', () => {
    const n = 1000;
    const ts = Float64Array.from({ length: n }, (_, i) => 1_700_000_000_000 + 15_000 * i);
    const codecsOf = (vs: Float64Array) => {
      const out = new ByteWriter();
      const c = encodeChunk(ts, vs, 0, n, out);
      return { ts: c >>> 4, v: c & 15, bytes: out.length };
    };
    const constant = codecsOf(new Float64Array(n).fill(80 * 2 ** 30));
    expect(constant).toMatchObject({ ts: TsCodec.constDelta, v: ValueCodec.const });
    expect(constant.bytes).toBeLessThan(24);
    // A counter growing by a fixed amount: delta of deltas are all zero.
    const counter = codecsOf(Float64Array.from({ length: n }, (_, i) => 2.4e9 * i));
    expect(counter.v).toBe(ValueCodec.decimal);
    expect(counter.bytes / n).toBeLessThan(0.3);
    // Percentages with two decimals.
    const pct = codecsOf(
      Float64Array.from({ length: n }, (_, i) => Math.round(9000 + 300 * Math.sin(i)) / 100),
    );
    expect(pct.v).toBe(ValueCodec.decimal);
    expect(pct.bytes / n).toBeLessThan(1.5);
    // Full-precision noise: bit-pattern deltas beat XOR's control bits, and nothing is lost.
    let seed = 7;
    const noise = codecsOf(
      Float64Array.from({ length: n }, () => {
        seed = (seed * 16807) % 2147483647;
        return 0.93 + 0.03 * (seed / 2147483647);
      }),
    );
    expect(noise.v).toBe(ValueCodec.bits);
    expect(noise.bytes / n).toBeLessThan(7);
    // Jittered timestamps use the dod codecs.
    const jittered = new ByteWriter();
    const jts = Float64Array.from({ length: n }, (_, i) => 1_700_000_000_000 + 1000 * i + (i % 3));
    expect(encodeChunk(jts, new Float64Array(n), 0, n, jittered) >>> 4).not.toBe(TsCodec.constDelta);
  });
});
