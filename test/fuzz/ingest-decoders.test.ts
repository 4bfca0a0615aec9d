/**
 * Property tests of every ingest decoder, in process (issue 16: at least 10⁵ generated payloads per protocol
 * in CI time): the code each route runs from the body to the bus payload, without HTTP around it —
 * snappy + remote-write 1.0 + the tenant's series registry + the bus encoding; the native frame header, CRC,
 * both payload decoders (the fast path and the general one) and validation; OTLP protobuf and JSON with
 * their translation.
 *
 * Inputs: valid payloads mutated (bit flips, overwrites, truncation, insertions, deletions, varints that lie
 * about a length or a count, stretches repeated thousands of times), plus payloads built to hurt: label and
 * attribute bombs, huge declared counts, deep nesting.
 *
 * Invariants per case: it is accepted, or refused with a 4xx-class error (a TrainwatchError below 500 or a
 * decoder error class the route maps to 400/413); nothing else is thrown (no RangeError, TypeError, stack
 * overflow); it takes less than CASE_DEADLINE_MS. The counts are printed. FUZZ_RUNS scales them (harness.ts).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { TenantLimits } from '../../src/collector/index.js';
import { DecodePipeline, type IngestLimits } from '../../src/collector/ingest-context.js';
import { NativeRefDecoder } from '../../src/collector/native-decode.js';
import { decodeOtlpJson, decodeOtlpProtobuf } from '../../src/collector/otlp-decode.js';
import { translateOtlp } from '../../src/collector/otlp-translate.js';
import { RefBatch } from '../../src/collector/ref-batch.js';
import { decodeRemoteWriteV1 } from '../../src/collector/remote-write-decode.js';
import { SeriesKeyBuilder } from '../../src/collector/series-key.js';
import { SnappyDecoder } from '../../src/collector/snappy.js';
import { validateBatch } from '../../src/collector/validate.js';
import { ByteWriter } from '../../src/protocol/bytes.js';
import { decodeFrameHeader, decodePayload, framePayload } from '../../src/protocol/native.js';
import {
  CASE_DEADLINE_MS,
  concat,
  FuzzStats,
  fcParams,
  HOSTILE_RUNS,
  mutatedArb,
  RUNS,
  restoreStackTraces,
  TEST_TIMEOUT_MS,
  varintBytes,
  withoutStackTraces,
} from '../support/fuzz-harness.js';
import { frameOf, NOW, nativeSeeds, otlpSeeds, rwSeeds } from '../support/fuzz-seeds.js';
import { PbWriter, snappyCompress } from '../support/wire.js';

vi.setConfig({ testTimeout: TEST_TIMEOUT_MS });

const TENANT = 'fuzz';
const LIMITS: IngestLimits = {
  maxBodyBytes: 16 << 20,
  maxPayloadBytes: 64 << 20,
  maxLabelsPerSeries: 40,
  maxLabelValueBytes: 2048,
  maxLabelNameBytes: 1024,
  maxSamplesPerRequest: 1_000_000,
  maxInflightBytes: 128 << 20,
};

let pipeline: DecodePipeline;
let tenants: TenantLimits;
const stats: FuzzStats[] = [];

beforeAll(async () => {
  withoutStackTraces();
  // The pipeline's dependencies as the ingest decoder builds them (the fuzz stops where the route would append
  // to the bus).
  tenants = new TenantLimits({
    maxActiveSeries: 1_000_000,
    activeSeriesTtlMs: 15 * 60_000,
    samplesPerSecond: 1e12,
    samplesBurst: 1e12,
    series: LIMITS,
    outOfOrderWindowMs: 3_600_000,
  });
  pipeline = new DecodePipeline({ tenants, limits: LIMITS });
});

afterAll(async () => {
  restoreStackTraces();
  for (const s of stats) console.log(`fuzz ${s.summary()}`);
});

/** Runs `n` cases of `arb` through `decode`, checking the invariants; returns the stats. */
function fuzz<T extends { describe: () => string }>(
  name: string,
  arb: fc.Arbitrary<T>,
  n: number,
  decode: (input: T) => void,
): FuzzStats {
  const s = new FuzzStats(name);
  stats.push(s);
  fc.assert(
    fc.property(arb, (input) => {
      s.run(input.describe, () => decode(input));
    }),
    fcParams(n),
  );
  expect(s.total).toBe(n);
  expect(s.slowestMs, `slowest case: ${s.slowestInput}`).toBeLessThan(CASE_DEADLINE_MS);
  return s;
}

// ---------------------------------------------------------------------------------------------------------
// Remote-write 1.0: snappy, then the protobuf, as /api/v1/write runs them.

const snappy = new SnappyDecoder();

function ingestRemoteWriteV1(body: Uint8Array): void {
  const raw = snappy.decode(body, LIMITS.maxPayloadBytes);
  const { ctx, state } = pipeline.begin(TENANT, NOW);
  try {
    decodeRemoteWriteV1(raw, ctx);
    pipeline.finish(TENANT, state, NOW);
  } finally {
    // The route keeps an accepted request's new series; the fuzz does not need them (and stays small).
    state.registry.rollbackRequest();
  }
}

/** Requests built to hurt: label bombs, sample floods, empty names, huge length fields. */
const rwHostile: fc.Arbitrary<{ bytes: Uint8Array; describe: () => string }> = fc
  .record({
    labels: fc.integer({ min: 0, max: 5000 }),
    samples: fc.integer({ min: 0, max: 3000 }),
    nameLength: fc.integer({ min: 0, max: 4096 }),
    lieAt: fc.option(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), { nil: undefined }),
  })
  .map((p) => {
    const w = new PbWriter();
    w.message(1, (ts) => {
      ts.message(1, (l) => l.string(1, '__name__').string(2, 'n'.repeat(p.nameLength)));
      for (let i = 0; i < p.labels; i++) ts.message(1, (l) => l.string(1, `l${i}`).string(2, 'v'));
      for (let i = 0; i < p.samples; i++) ts.message(2, (s) => s.double(1, i).int64(2, NOW - p.samples + i));
    });
    let bytes = w.finish();
    // A top-level field whose declared length is a lie.
    if (p.lieAt !== undefined) bytes = concat(bytes, Uint8Array.from([0x0a, ...varintBytes(p.lieAt)]));
    return {
      bytes,
      describe: () => `hostile remote-write ${JSON.stringify({ ...p, lieAt: String(p.lieAt) })}`,
    };
  });

describe('remote-write 1.0 (snappy + protobuf)', () => {
  it(`${RUNS} mutated and hostile requests: accepted or refused with a 4xx, none slow`, () => {
    const seeds = rwSeeds();
    const compressedSeeds = seeds.map(snappyCompress);
    const arb = fc.oneof(
      // The protobuf mutated, then compressed: reaches the protobuf decoder.
      { weight: 2, arbitrary: mutatedArb(seeds).map((m) => ({ ...m, bytes: snappyCompress(m.bytes) })) },
      // The snappy body mutated: the snappy decoder (lengths, offsets, copies past the start).
      { weight: 1, arbitrary: mutatedArb(compressedSeeds) },
    );
    const s = fuzz('remote-write 1.0', arb, RUNS, (m) => ingestRemoteWriteV1(m.bytes));
    fuzz(
      'remote-write 1.0 hostile',
      rwHostile.map((m) => ({ ...m, bytes: snappyCompress(m.bytes) })),
      HOSTILE_RUNS,
      (m) => ingestRemoteWriteV1(m.bytes),
    );
    // The generators reach both outcomes: a fuzz that only ever refuses tests nothing past the first check.
    expect(s.accepted).toBeGreaterThan(RUNS / 100);
    expect(s.refused).toBeGreaterThan(RUNS / 10);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Native frames: header, CRC, zlib, both payload decoders, validation.

const nativeDecoder = new NativeRefDecoder();
const nativeKeys = new SeriesKeyBuilder();
const nativeBatch = new RefBatch();
nativeKeys.maxLabels = LIMITS.maxLabelsPerSeries;

function ingestNative(frame: Uint8Array): void {
  const header = decodeFrameHeader(frame);
  const payload = framePayload(frame, header, LIMITS);
  // The fast path (native-decode.ts), as the route tries it first.
  const state = tenants.get(TENANT, NOW);
  state.registry.beginRequest(NOW);
  try {
    nativeDecoder.decode(payload, nativeKeys, nativeBatch, state.registry, LIMITS, NOW);
  } finally {
    state.registry.rollbackRequest();
  }
  // The general path: every payload the fast path hands over, and (here) every other one as well.
  const decoded = decodePayload(payload, LIMITS);
  validateBatch(decoded.batch, decoded.events, LIMITS, NOW);
}

/** Payloads built to hurt: huge declared counts, refs past the string table, deep job-event JSON. */
const nativeHostile: fc.Arbitrary<{ bytes: Uint8Array; describe: () => string }> = fc
  .record({
    stringCount: fc.oneof(fc.constantFrom(0, 1, 2 ** 31, 2 ** 32 - 1, Number.MAX_SAFE_INTEGER), fc.nat()),
    seriesCount: fc.oneof(fc.constantFrom(0, 1, 2 ** 31, Number.MAX_SAFE_INTEGER), fc.nat()),
    labelCount: fc.oneof(fc.constantFrom(0, 41, 5000, 2 ** 31), fc.nat(100)),
    ref: fc.oneof(fc.constantFrom(0, 1, 2, 2 ** 31), fc.nat(10)),
    sampleCount: fc.oneof(fc.constantFrom(0, 1, 2 ** 31, Number.MAX_SAFE_INTEGER), fc.nat(1000)),
    eventDepth: fc.integer({ min: 0, max: 20_000 }),
  })
  .map((p) => {
    const w = new ByteWriter(1024);
    w.uvarint(p.stringCount);
    const strings = Math.min(p.stringCount, 3);
    for (let i = 0; i < strings; i++) w.string(['__name__', 'x', 'job_id'][i]!);
    w.uvarint(p.seriesCount);
    w.uvarint(p.labelCount);
    for (let i = 0; i < Math.min(p.labelCount, 50); i++) {
      w.uvarint(p.ref);
      w.uvarint(p.ref + 1);
    }
    w.uvarint(p.sampleCount);
    for (let i = 0; i < Math.min(p.sampleCount, 16); i++) w.svarint(i === 0 ? NOW : 1);
    const events = p.eventDepth > 0 ? 1 : 0;
    w.uvarint(events);
    if (events)
      w.string(
        `{"kind":"start","jobId":"j","timeMs":1,"config":${'['.repeat(p.eventDepth)}${']'.repeat(p.eventDepth)}}`,
      );
    return { bytes: frameOf(w.toBytes()), describe: () => `hostile native ${JSON.stringify(p)}` };
  });

describe('native frames', () => {
  it(`${RUNS} mutated and hostile frames: accepted or refused with a 4xx, none slow`, () => {
    const { payloads, frames } = nativeSeeds();
    const arb = fc.oneof(
      // The payload mutated inside a frame with a correct CRC: reaches both payload decoders.
      { weight: 4, arbitrary: mutatedArb(payloads).map((m) => ({ ...m, bytes: frameOf(m.bytes) })) },
      // The whole frame mutated: magic, version, compression, source id, sequence, CRC, zlib stream.
      { weight: 1, arbitrary: mutatedArb(frames) },
    );
    const s = fuzz('native', arb, RUNS, (m) => ingestNative(m.bytes));
    fuzz('native hostile', nativeHostile, HOSTILE_RUNS, (m) => ingestNative(m.bytes));
    expect(s.accepted).toBeGreaterThan(RUNS / 100);
    expect(s.refused).toBeGreaterThan(RUNS / 10);
  });
});

// ---------------------------------------------------------------------------------------------------------
// OTLP: protobuf and JSON, decoded and translated as /v1/metrics does.

function ingestOtlp(request: ReturnType<typeof decodeOtlpProtobuf>): void {
  const { ctx, state } = pipeline.begin(TENANT, NOW);
  try {
    translateOtlp(request, ctx);
    pipeline.finish(TENANT, state, NOW);
  } finally {
    state.registry.rollbackRequest();
  }
}

/** An attribute whose AnyValue nests `depth` array values: recursion in the protobuf decoder. */
function deepProtoAttribute(depth: number): Uint8Array {
  const leaf = new PbWriter().string(1, 'leaf').finish(); // AnyValue{string_value}
  // Inside out, each level is AnyValue{array_value: ArrayValue{values: <inner>}}: two length prefixes per
  // level, written once in one buffer (building it by copying each level would be quadratic).
  const prefixes: number[][] = [];
  let size = leaf.length;
  for (let i = 0; i < depth; i++) {
    const inner = [0x0a, ...varintBytes(BigInt(size))]; // ArrayValue.values (field 1)
    size += inner.length;
    const outer = [0x2a, ...varintBytes(BigInt(size))]; // AnyValue.array_value (field 5)
    size += outer.length;
    prefixes.push(inner, outer);
  }
  // Reversed: the outermost level first, and in each level the AnyValue prefix before the ArrayValue one.
  const value = concat(...prefixes.reverse().map((p) => Uint8Array.from(p)), leaf);
  const kv = new PbWriter().string(1, 'deep').bytesField(2, value).finish(); // KeyValue
  const resource = new PbWriter().bytesField(1, kv).finish(); // Resource{attributes}
  const rm = new PbWriter().bytesField(1, resource).finish(); // ResourceMetrics{resource}
  return new PbWriter().bytesField(1, rm).finish(); // ExportMetricsServiceRequest{resource_metrics}
}

const otlpProtoHostile: fc.Arbitrary<{ bytes: Uint8Array; describe: () => string }> = fc
  .record({ depth: fc.integer({ min: 0, max: 3000 }), attributes: fc.integer({ min: 0, max: 20_000 }) })
  .map((p) => {
    let bytes: Uint8Array;
    if (p.attributes > 0 && p.depth % 2 === 0) {
      // An attribute bomb on one gauge point.
      const point = new PbWriter();
      for (let i = 0; i < p.attributes; i++)
        point.message(7, (kv) => kv.string(1, `a${i}`).message(2, (v) => v.string(1, 'v')));
      const time = Buffer.alloc(8);
      time.writeBigUInt64LE(BigInt(NOW) * 1_000_000n);
      point.double(4, 1).rawFixed64(3, time);
      const gauge = new PbWriter().bytesField(1, point.finish()).finish();
      const metric = new PbWriter().string(1, 'bomb').bytesField(5, gauge).finish();
      const scope = new PbWriter().bytesField(2, metric).finish();
      const rm = new PbWriter().bytesField(2, scope).finish();
      bytes = new PbWriter().bytesField(1, rm).finish();
    } else bytes = deepProtoAttribute(p.depth);
    return { bytes, describe: () => `hostile OTLP protobuf ${JSON.stringify(p)}` };
  });

const otlpJsonHostile: fc.Arbitrary<{ bytes: Uint8Array; describe: () => string }> = fc
  .record({
    depth: fc.integer({ min: 0, max: 100_000 }),
    shape: fc.constantFrom('arrays', 'kvlist', 'objects'),
    attributes: fc.integer({ min: 0, max: 20_000 }),
  })
  .map((p) => {
    let text: string;
    if (p.shape === 'arrays') text = `${'['.repeat(p.depth)}${']'.repeat(p.depth)}`;
    else if (p.shape === 'objects')
      text = `{"resourceMetrics":${'{"a":'.repeat(p.depth)}1${'}'.repeat(p.depth)}}`;
    else {
      const attrs = Array.from(
        { length: p.attributes },
        (_, i) => `{"key":"a${i}","value":{"stringValue":"v"}}`,
      ).join(',');
      const deep = `${'{"kvlistValue":{"values":[{"key":"k","value":'.repeat(Math.min(p.depth, 2000))}{"intValue":"1"}${'}]}}'.repeat(Math.min(p.depth, 2000))}`;
      text = `{"resourceMetrics":[{"resource":{"attributes":[{"key":"d","value":${deep}}]},"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[{"asDouble":1,"timeUnixNano":"${NOW}000000","attributes":[${attrs}]}]}}]}]}]}`;
    }
    return {
      bytes: new TextEncoder().encode(text),
      describe: () => `hostile OTLP JSON ${JSON.stringify(p)}`,
    };
  });

/** JSON-aware mutations on top of the byte ones: numbers, strings and types swapped in valid JSON. */
function jsonValueMutations(seed: Uint8Array): fc.Arbitrary<{ bytes: Uint8Array; describe: () => string }> {
  const doc = JSON.parse(new TextDecoder().decode(seed)) as unknown;
  const paths: (string | number)[][] = [];
  const walk = (v: unknown, p: (string | number)[]) => {
    paths.push(p);
    if (Array.isArray(v)) for (let i = 0; i < v.length; i++) walk(v[i], [...p, i]);
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...p, k]);
  };
  walk(doc, []);
  const replacement = fc.oneof(
    fc.constantFrom(
      null,
      true,
      '',
      '-1',
      '1e400',
      'NaN',
      '18446744073709551616',
      // Object.prototype's names, where a lookup table might find a function.
      'constructor',
      'toString',
      '__proto__',
      -1,
      1e308,
      [],
      {},
      [[]],
      { values: null },
    ),
    fc.string({ maxLength: 8 }),
    fc.double(),
  );
  return fc.tuple(fc.nat(paths.length - 1), replacement).map(([i, r]) => {
    const copy = structuredClone(doc) as Record<string | number, unknown>;
    const path = paths[i]!;
    if (path.length === 0)
      return {
        bytes: new TextEncoder().encode(JSON.stringify(r)),
        describe: () => `root := ${JSON.stringify(r)}`,
      };
    let at: Record<string | number, unknown> = copy;
    for (const k of path.slice(0, -1)) at = at[k] as Record<string | number, unknown>;
    at[path.at(-1)!] = r;
    return {
      bytes: new TextEncoder().encode(JSON.stringify(copy)),
      describe: () => `${path.join('.')} := ${JSON.stringify(r)}`,
    };
  });
}

describe('OTLP', () => {
  let seeds: { proto: Uint8Array[]; json: Uint8Array[] };
  beforeAll(async () => {
    seeds = await otlpSeeds();
  });

  it(`${RUNS} mutated and hostile protobuf requests: accepted or refused with a 4xx, none slow`, () => {
    const s = fuzz('OTLP protobuf', mutatedArb(seeds.proto), RUNS, (m) =>
      ingestOtlp(decodeOtlpProtobuf(m.bytes)),
    );
    fuzz('OTLP protobuf hostile', otlpProtoHostile, HOSTILE_RUNS, (m) =>
      ingestOtlp(decodeOtlpProtobuf(m.bytes)),
    );
    expect(s.accepted).toBeGreaterThan(RUNS / 100);
    expect(s.refused).toBeGreaterThan(RUNS / 100);
  });

  it('a metric whose unit is a name of Object.prototype is translated, not a 500 (found by this fuzz)', () => {
    for (const unit of ['constructor', 'toString', '__proto__', 'x/constructor', 'hasOwnProperty']) {
      const body = {
        resourceMetrics: [
          {
            scopeMetrics: [
              {
                metrics: [
                  {
                    name: 'temperature',
                    unit,
                    gauge: { dataPoints: [{ asDouble: 1, timeUnixNano: `${NOW}000000` }] },
                  },
                ],
              },
            ],
          },
        ],
      };
      expect(
        () => ingestOtlp(decodeOtlpJson(new TextEncoder().encode(JSON.stringify(body)))),
        unit,
      ).not.toThrow();
    }
  });

  it(`${RUNS} mutated and hostile JSON requests: accepted or refused with a 4xx, none slow`, () => {
    const arb = fc.oneof(
      { weight: 1, arbitrary: mutatedArb(seeds.json) },
      { weight: 1, arbitrary: jsonValueMutations(seeds.json[0]!) },
    );
    const s = fuzz('OTLP JSON', arb, RUNS, (m) => ingestOtlp(decodeOtlpJson(m.bytes)));
    fuzz('OTLP JSON hostile', otlpJsonHostile, HOSTILE_RUNS, (m) => ingestOtlp(decodeOtlpJson(m.bytes)));
    expect(s.accepted).toBeGreaterThan(RUNS / 100);
    expect(s.refused).toBeGreaterThan(RUNS / 10);
  });
});
