/**
 * Fuzz and property tests for every ingest decoder, through the whole program in this process (real routes,
 * disk bus, processor, storage): random bytes, mutations of valid requests (bit flips, truncations,
 * insertions), truncated snappy, gigantic varints, wrong content types and deeply nested JSON.
 *
 * Invariants: every request is answered (no hang) with a status below 500; garbage and truncations get a
 * 4xx; a refused request adds nothing to the bus; the data stored before the fuzzing reads back unchanged.
 */
import { JsonMetricsSerializer, ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DiskLogBus } from '../../src/bus/index.js';
import { loadConfig } from '../../src/config/index.js';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { tempDir } from '../support/helpers.js';
import {
  PbWriter,
  RW1_HEADERS,
  RW2_HEADERS,
  type RwSeries,
  snappyCompress,
  writeRequestV1,
  writeRequestV2,
} from '../support/wire.js';

let tw: Trainwatch;
const NOW = Date.now();
const RUNS = 150;

class CollectingReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

async function otlpRequests(): Promise<{ proto: Uint8Array; json: Uint8Array }> {
  const reader = new CollectingReader();
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ job_id: 'otlp-fuzz' }),
    readers: [reader],
  });
  const meter = provider.getMeter('fuzz');
  meter.createCounter('requests').add(3, { route: '/a' });
  meter.createGauge('temperature', { unit: 'Cel' }).record(41.5);
  meter.createHistogram('latency', { unit: 'ms' }).record(12);
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  return {
    proto: ProtobufMetricsSerializer.serializeRequest(resourceMetrics)!,
    json: JsonMetricsSerializer.serializeRequest(resourceMetrics)!,
  };
}

const nativeEncoder = new NativeEncoder();
function nativeFrame(seq: number): Uint8Array {
  const b = new SeriesBatchBuilder();
  b.addSeries({ __name__: 'train_loss', job_id: 'native-fuzz' })
    .add(NOW - 1000, 1.5)
    .add(NOW, 1.25);
  return nativeEncoder.encodeFrame({ sourceId: 'fuzzer', sequence: seq, batch: b.build(), events: [] });
}

const rwSeries: RwSeries[] = [
  { labels: { __name__: 'up', instance: 'a:1', job: 'node' }, samples: [[NOW, 1]] as [number, number][] },
  {
    labels: { __name__: 'node_load1', instance: 'a:1' },
    samples: [
      [NOW, 0.5],
      [NOW + 1, 0.25],
    ] as [number, number][],
  },
];

interface Endpoint {
  readonly name: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  /** A valid body. */
  readonly valid: Uint8Array;
  /** The uncompressed protobuf inside a snappy body, to mutate before compressing again. */
  readonly inner?: Uint8Array;
}

let endpoints: Endpoint[];

async function send(url: string, headers: Record<string, string>, body: Uint8Array | string) {
  const res = await Promise.race([
    tw.app.inject({
      method: 'POST',
      url,
      headers,
      payload: typeof body === 'string' ? body : Buffer.from(body),
    }),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`${url} did not answer within 5 s`)), 5000),
    ),
  ]);
  return res;
}

async function readBaseline() {
  const res = await tw.app.inject({
    method: 'GET',
    url: `/api/tw/v1/series?metric=baseline_value&start=${NOW - 100_000}&end=${NOW + 100_000}`,
  });
  return res.json().data.series;
}

beforeAll(async () => {
  tw = await startTrainwatch(
    loadConfig({
      flags: {
        listen: '127.0.0.1:0',
        data_dir: tempDir('tw-fuzz-'),
        bus: { fsync: 'never' },
        processor: { checkpoint_interval_ms: 50 },
        auth: { anonymous_scopes: ['ingest', 'read'] },
        ingest: { max_body_bytes: 4 << 20 },
      },
    }),
    pino({ level: 'silent' }),
  );
  const otlp = await otlpRequests();
  const rw1 = writeRequestV1(rwSeries);
  const rw2 = writeRequestV2(rwSeries);
  endpoints = [
    {
      name: 'remote-write 1.0',
      url: '/api/v1/write',
      headers: RW1_HEADERS,
      valid: snappyCompress(rw1),
      inner: rw1,
    },
    {
      name: 'remote-write 2.0',
      url: '/api/v1/write',
      headers: RW2_HEADERS,
      valid: snappyCompress(rw2),
      inner: rw2,
    },
    {
      name: 'OTLP protobuf',
      url: '/v1/metrics',
      headers: { 'content-type': 'application/x-protobuf' },
      valid: otlp.proto,
    },
    {
      name: 'OTLP JSON',
      url: '/v1/metrics',
      headers: { 'content-type': 'application/json' },
      valid: otlp.json,
    },
    {
      name: 'native',
      url: '/api/v1/ingest',
      headers: { 'content-type': NATIVE_CONTENT_TYPE },
      valid: nativeFrame(1),
    },
  ];
  // Data stored before the fuzzing, read back at the end.
  const baseline = writeRequestV1([
    {
      labels: { __name__: 'baseline_value', k: 'a' },
      samples: [
        [NOW - 2000, 1],
        [NOW - 1000, 2],
      ],
    },
    { labels: { __name__: 'baseline_value', k: 'b' }, samples: [[NOW - 1000, 3]] },
  ]);
  expect((await send('/api/v1/write', RW1_HEADERS, snappyCompress(baseline))).statusCode).toBe(204);
  for (const e of endpoints) {
    const res = await send(e.url, e.headers, e.valid);
    expect(res.statusCode, `${e.name}: ${res.body}`).toBeLessThan(300);
  }
});

afterAll(async () => {
  await tw?.stop();
});

/** Mutations of a valid byte string: flips, overwrites, truncations, insertions, duplications. */
const mutation = (valid: Uint8Array) =>
  fc
    .array(
      fc.oneof(
        fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
        fc.record({
          kind: fc.constant('set' as const),
          at: fc.nat(),
          byte: fc.integer({ min: 0, max: 255 }),
        }),
        fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
        fc.record({
          kind: fc.constant('insert' as const),
          at: fc.nat(),
          bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }),
        }),
      ),
      { minLength: 1, maxLength: 4 },
    )
    .map((ops) => {
      let b = Uint8Array.from(valid);
      for (const op of ops) {
        const at = b.length === 0 ? 0 : op.at % b.length;
        if (op.kind === 'flip' && b.length) b[at] = b[at]! ^ (1 << op.bit);
        else if (op.kind === 'set' && b.length) b[at] = op.byte;
        else if (op.kind === 'cut') b = b.subarray(0, at);
        else if (op.kind === 'insert')
          b = Uint8Array.from([...b.subarray(0, at), ...op.bytes, ...b.subarray(at)]);
      }
      return b;
    });

async function busSize(): Promise<number> {
  let n = 0;
  const bus = tw.bus as DiskLogBus;
  for (let p = 0; p < bus.partitionCount; p++) n += bus.endOffset(p);
  return n;
}

describe('every decoder survives hostile input', () => {
  it('answers random bytes with 4xx and stores nothing', async () => {
    for (const e of endpoints) {
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 2000 }), async (bytes) => {
          const before = await busSize();
          const res = await send(e.url, e.headers, bytes);
          // A random body that happens to be a valid, empty request may be accepted; nothing else.
          if (res.statusCode < 300) return;
          expect(res.statusCode, `${e.name}: ${res.body}`).toBeGreaterThanOrEqual(400);
          expect(res.statusCode, `${e.name}: ${res.body}`).toBeLessThan(500);
          expect(await busSize()).toBe(before);
        }),
        { numRuns: RUNS },
      );
    }
  });

  it('answers mutated valid requests below 500, storing nothing when it refuses', async () => {
    for (const e of endpoints) {
      const mutateInner = e.inner !== undefined;
      await fc.assert(
        fc.asyncProperty(mutation(mutateInner ? e.inner! : e.valid), fc.boolean(), async (mutated, outer) => {
          const body = mutateInner && !outer ? snappyCompress(mutated) : mutated;
          const before = await busSize();
          const res = await send(e.url, e.headers, body);
          expect(res.statusCode, `${e.name}: ${res.body}`).toBeLessThan(500);
          if (res.statusCode >= 400) expect(await busSize()).toBe(before);
        }),
        { numRuns: RUNS },
      );
    }
  });

  it('refuses every truncation of a snappy body with 400', async () => {
    for (const e of endpoints.slice(0, 2)) {
      for (let cut = 0; cut < e.valid.length; cut++) {
        const res = await send(e.url, e.headers, e.valid.subarray(0, cut));
        expect(res.statusCode, `${e.name} cut at ${cut}: ${res.body}`).toBe(400);
      }
    }
  });

  it('refuses gigantic varints and lengths', async () => {
    const elevenByteVarint = Uint8Array.from([0x0a, ...new Array(10).fill(0xff), 0x01]);
    const hugeLength = new PbWriter()
      .tag(1, 2)
      .varint(2n ** 60n)
      .finish();
    const hugeTimestamp = new PbWriter()
      .message(1, (ts) => {
        ts.message(1, (l) => l.string(1, '__name__').string(2, 'm'));
        ts.message(2, (s) => s.double(1, 1).int64(2, 2n ** 62n));
      })
      .finish();
    for (const body of [elevenByteVarint, hugeLength, hugeTimestamp]) {
      // (For 2.0, field 1 of the request is reserved and skipped: the timestamp case is a valid empty request.)
      for (const e of endpoints.slice(0, body === hugeTimestamp ? 1 : 2)) {
        const res = await send(e.url, e.headers, snappyCompress(body));
        expect(res.statusCode, res.body).toBe(400);
      }
      const otlp = await send('/v1/metrics', { 'content-type': 'application/x-protobuf' }, body);
      expect(otlp.statusCode, otlp.body).toBe(400);
    }
  });

  it('refuses deeply nested JSON quickly, without parsing it', async () => {
    const depth = 1_000_000;
    const nested = `{"resourceMetrics":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    const started = performance.now();
    const res = await send('/v1/metrics', { 'content-type': 'application/json' }, nested);
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(/JSON nesting deeper than 64 levels/);
    expect(performance.now() - started).toBeLessThan(5000);
    const wrongShape = await send(
      '/v1/metrics',
      { 'content-type': 'application/json' },
      '{"resourceMetrics": 7}',
    );
    expect(wrongShape.statusCode).toBe(400);
    expect(wrongShape.json().error).toMatch(/resourceMetrics must be an array/);
  });

  it('refuses wrong content types with 415 on every endpoint', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...endpoints),
        fc.oneof(
          fc.constantFrom('text/plain', 'application/octet-stream', 'multipart/form-data', 'application/xml'),
          fc.string({ maxLength: 30 }),
        ),
        async (e, type) => {
          if (type.trim().toLowerCase().startsWith(e.headers['content-type']!.split(';')[0]!)) return;
          const res = await send(e.url, { ...e.headers, 'content-type': type }, e.valid);
          expect([400, 415], `${e.name} with ${JSON.stringify(type)}: ${res.body}`).toContain(res.statusCode);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('leaves the data stored before unchanged', async () => {
    await tw.processor!.checkpoint();
    const series = await readBaseline();
    expect(series).toEqual([
      {
        labels: { __name__: 'baseline_value', k: 'a', tenant: 'default' },
        t: [NOW - 2000, NOW - 1000],
        v: [1, 2],
      },
      { labels: { __name__: 'baseline_value', k: 'b', tenant: 'default' }, t: [NOW - 1000], v: [3] },
    ]);
    expect((await tw.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});
