/**
 * Property tests of every codec: any sequence of timestamps and float64 values — NaN with any payload (the
 * staleness marker among them), ±Inf, -0, subnormals, huge jumps — round-trips bit-exactly.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { STALE_NAN } from '../../model/batch.js';
import { ByteWriter } from '../../protocol/bytes.js';
import { chunkBytes, Head, newHeadAppendStats } from '../head.js';
import { decodeChunk, encodeChunk, MAX_TIMESTAMP, SampleBuffer, TsCodec, ValueCodec } from './chunk.js';
import { decodeXorInto, encodeXor, XorReader } from './xor.js';

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

describe('Gorilla XOR chunk, as the head writes it', () => {
  it('round-trips any samples appended through Head, each chunk byte for byte what encodeXor writes', () => {
    const reader = new XorReader();
    fc.assert(
      fc.property(samples, fc.integer({ min: 2, max: 400 }), ({ ts, vs }, maxChunkSamples) => {
        // A chunk range beyond every timestamp's reach: chunks are sealed by sample count and byte size only.
        const head = new Head({ oooWindowMs: 0, chunkRangeMs: 2 ** 52, maxChunkSamples });
        const stats = newHeadAppendStats();
        const ref = head.getOrCreate('t', head.symbols.intern('t'), { __name__: 'x' }, stats);
        for (let i = 0; i < ts.length; i++) head.appendSample(ref, ts[i]!, vs[i]!, stats);
        expect(stats.samples).toBe(ts.length);
        const snap = head.snapshot(ref);
        const chunks = snap.open ? [...snap.sealed, snap.open] : [...snap.sealed];
        let i = 0;
        for (const c of chunks) {
          const bytes = chunkBytes(c);
          expect(bytes).toEqual(encodeXor(ts, vs, i, i + c.count));
          reader.reset(bytes, c.count);
          while (reader.next()) {
            expect(reader.t).toBe(ts[i]);
            expect(bitsOf(reader.v)).toBe(bitsOf(vs[i]!));
            i++;
          }
        }
        expect(i).toBe(ts.length);
      }),
      { numRuns: 300 },
    );
  });
});

describe('Gorilla bulk decoder', () => {
  it('decodes whole chunks exactly as the sample reader does', () => {
    const t = new Float64Array(400);
    const vb = new Uint32Array(800);
    const v = new Float64Array(vb.buffer);
    fc.assert(
      fc.property(samples, fc.integer({ min: 0, max: 50 }), ({ ts, vs }, at) => {
        const values = Float64Array.from(vs);
        const bytes = encodeXor(ts, values, 0, ts.length);
        decodeXorInto(bytes, ts.length, t, vb, at);
        for (let i = 0; i < ts.length; i++) {
          expect(t[at + i]).toBe(ts[i]);
          expect(bitsOf(v[at + i]!)).toBe(bitsOf(values[i]!));
        }
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
        const n = decodeChunk(out.toBytes(), buf, ts[0]);
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
    expect(decodeChunk(out.toBytes(), buf, ts[10])).toBe(20);
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
    expect(constant).toMatchObject({ ts: TsCodec.constDelta, v: ValueCodec.constDecimal });
    expect(constant.bytes).toBeLessThan(16);
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

  it('codes readings around a level as offsets from their centre, Rice-coded, within a bit of their entropy', () => {
    // Gaussian noise of σ = 2^20 units of the last place around a level: entropy ≈ 20 + 2.05 bits.
    let seed = 11;
    const gauss = () => {
      seed = (seed * 16807) % 2147483647;
      const u = seed / 2147483647;
      seed = (seed * 16807) % 2147483647;
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * (seed / 2147483647));
    };
    const n = 1024;
    const ts = Float64Array.from({ length: n }, (_, i) => 1_700_000_000_000 + 1000 * i);
    const vs = Float64Array.from({ length: n }, () => Math.round(5e9 + 2 ** 20 * gauss()));
    const out = new ByteWriter();
    const codecs = encodeChunk(ts, vs, 0, n, out);
    expect(codecs & 15).toBe(ValueCodec.decimal);
    // After codecs, n, delta, scale and m0: order 0 (around the centre) and form 3 (Rice).
    const bytes = out.toBytes();
    const header = 1 + 2 + 2 + 1 + 5;
    expect([bytes[header], bytes[header + 1]]).toEqual([0, 3]);
    expect((out.length * 8) / n).toBeLessThan(20 + 2.05 + 1);
    const buf2 = new SampleBuffer(4);
    decodeChunk(bytes, buf2, ts[0]);
    expect(Array.from(buf2.v.subarray(0, n))).toEqual(Array.from(vs));
  });

  it('escapes outliers of a Rice-coded stream to the full width', () => {
    const n = 300;
    const ts = Float64Array.from({ length: n }, (_, i) => 1000 * i);
    // Small steps with a few enormous jumps: q of the jumps is far beyond 32.
    const vs = Float64Array.from({ length: n }, (_, i) => (i % 97 === 50 ? 2 ** 45 : 0) + ((i * 7919) % 13));
    const out = new ByteWriter();
    encodeChunk(ts, vs, 0, n, out);
    const buf2 = new SampleBuffer(4);
    expect(decodeChunk(out.toBytes(), buf2, 0)).toBe(n);
    expect(Array.from(buf2.v.subarray(0, n))).toEqual(Array.from(vs));
  });
});
