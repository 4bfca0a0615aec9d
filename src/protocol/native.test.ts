import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SeriesBatchBuilder, STALE_NAN } from '../model/batch.js';
import type { JobEvent } from '../model/job.js';
import { decodeFrame, decodeFrameHeader, decodePayload, NativeEncoder, type NativeFrame } from './native.js';

const VECTORS = path.resolve(import.meta.dirname, '../../testdata/native');

function bits(v: number): string {
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, v);
  return dv.getBigUint64(0).toString(16).padStart(16, '0');
}

/** Test-vector JSON values: finite numbers as numbers, everything else as a named or hex bit pattern. */
function vectorValue(v: number): number | string {
  if (Object.is(v, -0)) return '-0';
  if (Number.isFinite(v)) return v;
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return `0x${bits(v)}`;
}

function fromVectorValue(v: number | string): number {
  if (typeof v === 'number') return v;
  if (v === '-0') return -0;
  if (v === '+Inf') return Number.POSITIVE_INFINITY;
  if (v === '-Inf') return Number.NEGATIVE_INFINITY;
  const dv = new DataView(new ArrayBuffer(8));
  dv.setBigUint64(0, BigInt(v));
  return dv.getFloat64(0);
}

interface VectorJson {
  description: string;
  sourceId: string;
  sequence: number;
  compression: 'none' | 'zlib';
  series: { labels: Record<string, string>; timestamps: number[]; values: (number | string)[] }[];
  events: JobEvent[];
}

function frameToJson(frame: NativeFrame, description: string, compression: 'none' | 'zlib'): VectorJson {
  const { batch } = frame;
  return {
    description,
    sourceId: frame.sourceId,
    sequence: frame.sequence,
    compression,
    series: batch.series.map((labels, i) => ({
      labels: { ...labels },
      timestamps: Array.from(batch.timestamps.subarray(batch.offsets[i]!, batch.offsets[i + 1]!)),
      values: Array.from(batch.values.subarray(batch.offsets[i]!, batch.offsets[i + 1]!), vectorValue),
    })),
    events: [...frame.events],
  };
}

function jsonToFrame(v: VectorJson): NativeFrame {
  const b = new SeriesBatchBuilder();
  for (const s of v.series) {
    b.addSeries(s.labels);
    s.timestamps.forEach((t, i) => {
      b.add(t, fromVectorValue(s.values[i]!));
    });
  }
  return { sourceId: v.sourceId, sequence: v.sequence, batch: b.build(), events: v.events };
}

/** The vectors shared with the Python SDK (sdk/python): regenerate with UPDATE_VECTORS=1. */
function canonicalVectors(): [string, VectorJson][] {
  const t0 = 1_700_000_000_000;
  return [
    [
      'empty',
      {
        description: 'a frame with no series and no events',
        sourceId: 'node-a',
        sequence: 0,
        compression: 'none',
        series: [],
        events: [],
      },
    ],
    [
      'gauges',
      {
        description: 'two series sharing label strings, one sample each, uncompressed',
        sourceId: 'node-a',
        sequence: 1,
        compression: 'none',
        series: [
          {
            labels: { __name__: 'gpu_utilization_ratio', job_id: 'llama-7b', node_id: 'n1', gpu: '0' },
            timestamps: [t0],
            values: [0.93],
          },
          {
            labels: { __name__: 'gpu_utilization_ratio', job_id: 'llama-7b', node_id: 'n1', gpu: '1' },
            timestamps: [t0],
            values: [0.5],
          },
        ],
        events: [],
      },
    ],
    [
      'special-values',
      {
        description:
          'NaN, the staleness marker, infinities, -0, a subnormal and integers; timestamps out of order',
        sourceId: 'node-b',
        sequence: 4_294_967_296,
        compression: 'none',
        series: [
          {
            labels: { __name__: 'train_loss', job_id: 'run-1', rank: '0' },
            timestamps: [t0, t0 + 1000, t0 + 2000, t0 + 1500, t0 + 3000, t0 + 4000, t0 + 5000, t0 + 6000],
            values: ['0x7ff8000000000000', '0x7ff0000000000002', '+Inf', '-Inf', '-0', 5e-324, 42, -1.25],
          },
        ],
        events: [],
      },
    ],
    [
      'job-events',
      {
        description: 'job events with metadata, zlib-compressed, and a unicode label value',
        sourceId: 'sdk-host1-1234',
        sequence: 7,
        compression: 'zlib',
        series: [
          {
            labels: { __name__: 'train_step', job_id: 'run-2', rank: '3', note: 'héllo ✓' },
            timestamps: [t0, t0 + 10, t0 + 20],
            values: [1, 2, 3],
          },
        ],
        events: [
          {
            kind: 'start',
            jobId: 'run-2',
            timeMs: t0,
            name: 'bert',
            project: 'nlp',
            worldSize: 8,
            config: { lr: 0.001, layers: [1, 2] },
            tags: ['a', 'b'],
            metricKeys: { train_loss: 'train/loss' },
          },
          { kind: 'finish', jobId: 'run-2', timeMs: t0 + 20, status: 'completed' },
        ],
      },
    ],
  ];
}

describe('native protocol test vectors (shared with the Python SDK)', () => {
  if (process.env.UPDATE_VECTORS === '1') {
    const enc = new NativeEncoder();
    for (const [name, v] of canonicalVectors()) {
      writeFileSync(path.join(VECTORS, `${name}.json`), `${JSON.stringify(v, null, 2)}\n`);
      writeFileSync(path.join(VECTORS, `${name}.bin`), enc.encodeFrame(jsonToFrame(v), v.compression));
    }
  }

  const names = readdirSync(VECTORS)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5));

  it('has the canonical vectors', () => {
    expect(names.sort()).toEqual(
      canonicalVectors()
        .map(([n]) => n)
        .sort(),
    );
  });

  for (const name of names) {
    it(`decodes ${name}.bin to ${name}.json, bit for bit`, () => {
      const json = JSON.parse(readFileSync(path.join(VECTORS, `${name}.json`), 'utf8')) as VectorJson;
      const frame = decodeFrame(readFileSync(path.join(VECTORS, `${name}.bin`)));
      expect(frameToJson(frame, json.description, json.compression)).toEqual(json);
    });

    it(`encodes ${name}.json to exactly ${name}.bin when uncompressed`, () => {
      const json = JSON.parse(readFileSync(path.join(VECTORS, `${name}.json`), 'utf8')) as VectorJson;
      const bin = readFileSync(path.join(VECTORS, `${name}.bin`));
      const encoded = new NativeEncoder().encodeFrame(jsonToFrame(json), json.compression);
      if (json.compression === 'none') expect(Buffer.from(encoded).equals(bin)).toBe(true);
      else expect(frameToJson(decodeFrame(encoded), json.description, json.compression)).toEqual(json);
    });
  }
});

describe('native codec', () => {
  const labelArb = fc.dictionary(
    fc.stringMatching(/^[a-z_][a-z0-9_]{0,10}$/),
    fc.string({ maxLength: 20, unit: 'grapheme' }),
    { minKeys: 1, maxKeys: 6 },
  );
  const valueArb = fc.oneof(
    fc.double(),
    fc.constantFrom(
      Number.NaN,
      STALE_NAN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      -0,
      5e-324,
      Number.MAX_VALUE,
    ),
    fc.integer().map((i) => i * 1.0),
  );
  const seriesArb = fc.record({
    labels: labelArb,
    samples: fc.array(fc.tuple(fc.integer({ min: 0, max: 2 ** 50 }), valueArb), { maxLength: 30 }),
  });

  it('round-trips any batch bit-exactly (property)', () => {
    fc.assert(
      fc.property(
        fc.array(seriesArb, { maxLength: 12 }),
        fc.constantFrom('none', 'zlib'),
        fc.nat({ max: 2 ** 40 }),
        (series, compression, seq) => {
          const b = new SeriesBatchBuilder();
          for (const s of series) {
            b.addSeries(s.labels);
            for (const [t, v] of s.samples) b.add(t, v);
          }
          const batch = b.build();
          const encoded = new NativeEncoder().encodeFrame(
            { sourceId: 'prop', sequence: seq, batch, events: [] },
            compression as 'none' | 'zlib',
          );
          const decoded = decodeFrame(encoded);
          expect(decoded.sequence).toBe(seq);
          expect(decoded.batch.series).toEqual(batch.series);
          expect(Array.from(decoded.batch.offsets)).toEqual(Array.from(batch.offsets));
          expect(Array.from(decoded.batch.timestamps)).toEqual(Array.from(batch.timestamps));
          expect(Array.from(decoded.batch.values, bits)).toEqual(Array.from(batch.values, bits));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('never throws anything but a DecodeError on mutated or truncated frames (property)', () => {
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 'x', a: 'b' }).add(1, 2).add(3, 4);
    const good = new NativeEncoder().encodeFrame(
      { sourceId: 's', sequence: 1, batch: b.build(), events: [] },
      'none',
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.nat(good.length),
        (mutations, cut) => {
          const bad = good.slice(0, cut === 0 ? good.length : cut);
          for (const [i, byte] of mutations) if (i < bad.length) bad[i] = byte;
          try {
            decodeFrame(bad);
          } catch (err) {
            expect((err as Error).name).toBe('DecodeError');
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('explains what is wrong with a frame', () => {
    expect(() => decodeFrameHeader(new Uint8Array([1, 2, 3, 4, 5]))).toThrow(/magic bytes "TWB"/);
    expect(() => decodeFrameHeader(new Uint8Array([0x54, 0x57, 0x42, 9, 0, 1, 0x61, 0]))).toThrow(
      /unsupported native protocol version 9/,
    );
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 'x' }).add(1, 2);
    const frame = new NativeEncoder().encodeFrame(
      { sourceId: 's', sequence: 1, batch: b.build(), events: [] },
      'none',
    );
    frame[frame.length - 1]! ^= 0xff;
    expect(() => decodeFrame(frame)).toThrow(/CRC mismatch/);
  });

  it('refuses a payload that claims more samples than it holds, before allocating them', () => {
    // string table: 1 string "x"; 1 series with 1 label (0,0); sample count 2^40.
    const payload = new Uint8Array([1, 1, 0x78, 1, 1, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
    expect(() => decodePayload(payload)).toThrow(/claims \d+ samples/);
  });

  it('refuses a compression bomb', () => {
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 'x' });
    for (let i = 0; i < 100_000; i++) b.add(i, 0);
    const frame = new NativeEncoder().encodeFrame(
      { sourceId: 's', sequence: 1, batch: b.build(), events: [] },
      'zlib',
    );
    expect(() =>
      decodeFrame(frame, { maxPayloadBytes: 10_000, maxLabelValueBytes: 100, maxLabelsPerSeries: 10 }),
    ).toThrow(/inflates to more than/);
  });
});
