/**
 * Valid payloads of every ingest protocol for the fuzz tests to mutate: remote-write 1.0 requests, native
 * payloads and frames (with job events), and OTLP requests made by the OpenTelemetry SDK itself.
 */
import { crc32 } from 'node:zlib';
import { JsonMetricsSerializer, ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import type { JobEvent } from '../../src/model/job.js';
import { ByteWriter } from '../../src/protocol/bytes.js';
import { NATIVE_MAGIC, NATIVE_VERSION, NativeEncoder } from '../../src/protocol/native.js';
import { type RwSeries, writeRequestV1 } from './wire.js';

/** Sample timestamps are near this (the test's start), inside every acceptance window. */
export const NOW = Date.now();

/** Remote-write 1.0 requests (uncompressed): several series, a stale NaN, non-ASCII values, empty ones. */
export function rwSeeds(): Uint8Array[] {
  const series = (i: number): RwSeries => ({
    labels: { __name__: `metric_${i}`, job: 'node', instance: `h${i}:9100`, job_id: `job-${i % 3}` },
    samples: [
      [NOW - 2000, i],
      [NOW - 1000, i + 0.5],
      [NOW, Number.NaN],
    ],
  });
  const stale = new Uint8Array([0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x7f]); // Prometheus's stale NaN
  return [
    writeRequestV1([series(1)]),
    writeRequestV1([series(1), series(2), series(3)]),
    writeRequestV1([{ labels: { __name__: 'up', a: 'é✓' }, samples: [[NOW, stale]] }]),
    writeRequestV1([{ labels: { __name__: 'x' }, samples: [] }]),
    new Uint8Array(0),
  ];
}

/** A frame around `payload` with a correct CRC and no compression, so mutations reach the payload decoders. */
export function frameOf(payload: Uint8Array, sourceId = 'fuzzer', sequence = 1): Uint8Array {
  const w = new ByteWriter(payload.length + 64);
  w.bytes(Uint8Array.from(NATIVE_MAGIC));
  w.u8(NATIVE_VERSION);
  w.u8(0);
  w.string(sourceId);
  w.uvarint(sequence);
  w.u32le(crc32(payload));
  w.bytes(payload);
  return w.toBytes();
}

export function nativeSeeds(): { payloads: Uint8Array[]; frames: Uint8Array[] } {
  const enc = new NativeEncoder();
  const one = new SeriesBatchBuilder();
  one
    .addSeries({ __name__: 'train_loss', job_id: 'j1', rank: '0' })
    .add(NOW - 1000, 1.5)
    .add(NOW, 1.25);
  const many = new SeriesBatchBuilder();
  for (let i = 0; i < 8; i++)
    many
      .addSeries({ __name__: 'gpu_util', job_id: `j${i % 2}`, gpu: String(i), node_id: 'n1' })
      .add(NOW, i / 8);
  const sender = new SeriesBatchBuilder();
  sender.addSeries({ __name__: 'host_load' }).add(NOW, 0.5);
  const events: JobEvent[] = [
    {
      kind: 'start',
      jobId: 'j1',
      timeMs: NOW,
      name: 'run',
      config: { lr: 0.1, layers: [1, 2, { a: 'b' }] },
      tags: ['x'],
    },
    { kind: 'finish', jobId: 'j1', timeMs: NOW, status: 'completed' },
  ];
  const payloads = [
    enc.encodePayload(one.build()),
    enc.encodePayload(many.build()),
    enc.encodePayload(sender.build()),
    enc.encodePayload(one.build(), events),
    enc.encodePayload(new SeriesBatchBuilder().build(), events.slice(0, 1)),
  ];
  const frames = [
    enc.encodeFrame({ sourceId: 'fuzzer', sequence: 7, batch: many.build(), events: [] }, 'zlib'),
    enc.encodeFrame({ sourceId: 'fuzzer', sequence: 8, batch: one.build(), events }, 'none'),
  ];
  return { payloads, frames };
}

class CollectingReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

/** Real SDK requests: a counter, a gauge, a histogram, a UpDownCounter, with attributes of every kind. */
export async function otlpSeeds(): Promise<{ proto: Uint8Array[]; json: Uint8Array[] }> {
  const reader = new CollectingReader();
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ job_id: 'otlp-fuzz', 'service.name': 'trainer', 'host.cpus': 8 }),
    readers: [reader],
  });
  const meter = provider.getMeter('fuzz', '1.0');
  meter.createCounter('requests').add(3, { route: '/a', ok: true });
  meter.createGauge('temperature', { unit: 'Cel' }).record(41.5, { gpu: 0 });
  meter.createHistogram('latency', { unit: 'ms' }).record(12, { route: '/b' });
  meter.createUpDownCounter('queue_depth').add(-2);
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  const proto = ProtobufMetricsSerializer.serializeRequest(resourceMetrics)!;
  const json = JsonMetricsSerializer.serializeRequest(resourceMetrics)!;
  return { proto: [proto, new Uint8Array(0)], json: [json, new TextEncoder().encode('{}')] };
}
