/**
 * The real OpenTelemetry JS SDK (`@opentelemetry/sdk-metrics`) exporting to trainwatch's OTLP endpoint with
 * the official OTLP/HTTP exporters, JSON (`exporter-metrics-otlp-http`) and protobuf
 * (`exporter-metrics-otlp-proto`), authenticated with an ingest token: counters, gauges, up-down counters
 * and histograms, cumulative and delta, read back through the query API with the values recorded.
 */
import { metrics as otelApi } from '@opentelemetry/api';
import {
  AggregationTemporalityPreference,
  OTLPMetricExporter as JsonExporter,
} from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as ProtoExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { MetaStore, TokenStore } from '../../src/meta/index.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { tempDir, waitFor } from '../support/helpers.js';

let tw: Trainwatch;
let ingestToken: string;
let readToken: string;

beforeAll(async () => {
  const dataDir = tempDir('tw-otel-');
  const meta = new MetaStore(`${dataDir}/meta.db`);
  const tokens = new TokenStore(meta);
  ingestToken = tokens.create({ tenant: 'ml-team', scope: 'ingest', name: 'otel sdk' }).token;
  readToken = tokens.create({ tenant: 'ml-team', scope: 'read' }).token;
  meta.close();
  tw = await startTrainwatch(
    loadConfig({
      flags: { listen: '127.0.0.1:0', data_dir: dataDir, processor: { checkpoint_interval_ms: 100 } },
    }),
    pino({ level: 'silent' }),
  );
});

afterAll(async () => {
  otelApi.disable();
  await tw?.stop();
});

interface Series {
  labels: Record<string, string>;
  t: number[];
  v: (number | string)[];
}

async function read(metric: string, extra = ''): Promise<Series[]> {
  const res = await fetch(
    `${tw.url}/api/tw/v1/series?metric=${metric}${extra}&start=${Date.now() - 600_000}`,
    {
      headers: { authorization: `Bearer ${readToken}` },
    },
  );
  const body = (await res.json()) as { data: { series: Series[] } };
  if (!res.ok) throw new Error(JSON.stringify(body));
  return body.data.series;
}

function last(s: Series | undefined): number | string | undefined {
  return s?.v[s.v.length - 1];
}

describe.each([
  ['JSON', (o: ConstructorParameters<typeof JsonExporter>[0]) => new JsonExporter(o)],
  ['protobuf', (o: ConstructorParameters<typeof ProtoExporter>[0]) => new ProtoExporter(o)],
] as const)('OpenTelemetry JS SDK → OTLP/HTTP %s', (encoding, makeExporter) => {
  it('stores counters, gauges, up-down counters and histograms with the recorded values', async () => {
    const run = `run-${encoding.toLowerCase()}`;
    const provider = new MeterProvider({
      resource: resourceFromAttributes({ 'service.name': 'trainer', job_id: run, 'process.pid': 1234 }),
      readers: [
        new PeriodicExportingMetricReader({
          exporter: makeExporter({
            url: `${tw.url}/v1/metrics`,
            headers: { Authorization: `Bearer ${ingestToken}` },
          }),
          exportIntervalMillis: 60_000,
        }),
      ],
    });
    const meter = provider.getMeter('trainer-meter', '1.2.3');
    const steps = meter.createCounter('train.steps', { description: 'optimizer steps' });
    const loss = meter.createGauge('train.loss');
    const inflight = meter.createUpDownCounter('data.loader.queue');
    const latency = meter.createHistogram('step.duration', {
      unit: 's',
      advice: { explicitBucketBoundaries: [0.1, 0.5, 1] },
    });
    const gpuMem = meter.createGauge('gpu.memory.used', { unit: 'By' });
    steps.add(5, { rank: '0' });
    steps.add(2, { rank: '0' });
    steps.add(1, { rank: '1' });
    loss.record(2.5, { rank: '0' });
    loss.record(1.75, { rank: '0' });
    inflight.add(4);
    inflight.add(-1);
    for (const v of [0.05, 0.2, 0.3, 0.7, 2]) latency.record(v);
    gpuMem.record(8_000_000_000, { gpu: '0' });
    await provider.forceFlush();

    const counter = await waitFor(`train_steps_total of ${run}`, async () => {
      const s = await read('train_steps_total', `&job_id=${run}`);
      return s.length === 2 ? s : undefined;
    });
    const byRank = Object.fromEntries(counter.map((s) => [s.labels.rank, last(s)]));
    expect(byRank).toEqual({ '0': 7, '1': 1 });
    expect(counter[0]!.labels).toMatchObject({
      service_name: 'trainer',
      job_id: run,
      otel_scope_name: 'trainer-meter',
      otel_scope_version: '1.2.3',
      tenant: 'ml-team',
    });
    // The sending process's identity is not part of series identity; nothing becomes `job`.
    expect(counter[0]!.labels.process_pid).toBeUndefined();
    expect(counter[0]!.labels.job).toBeUndefined();

    expect(last((await read('train_loss', `&job_id=${run}`))[0])).toBe(1.75);
    expect(last((await read('data_loader_queue', `&job_id=${run}`))[0])).toBe(3);
    expect(last((await read('gpu_memory_used_bytes', `&job_id=${run}`))[0])).toBe(8_000_000_000);

    const buckets = await read('step_duration_seconds_bucket', `&job_id=${run}`);
    expect(Object.fromEntries(buckets.map((s) => [s.labels.le, last(s)]))).toEqual({
      '0.1': 1,
      '0.5': 3,
      '1': 4,
      '+Inf': 5,
    });
    expect(last((await read('step_duration_seconds_count', `&job_id=${run}`))[0])).toBe(5);
    expect(last((await read('step_duration_seconds_sum', `&job_id=${run}`))[0])).toBeCloseTo(3.25, 10);
    await provider.shutdown();
  });

  it('turns delta counters into cumulative counters', async () => {
    const run = `delta-${encoding.toLowerCase()}`;
    const provider = new MeterProvider({
      resource: resourceFromAttributes({ job_id: run }),
      readers: [
        new PeriodicExportingMetricReader({
          exporter: makeExporter({
            url: `${tw.url}/v1/metrics`,
            headers: { Authorization: `Bearer ${ingestToken}` },
            temporalityPreference: AggregationTemporalityPreference.DELTA,
          }),
          exportIntervalMillis: 60_000,
        }),
      ],
    });
    const tokens = provider.getMeter('m').createCounter('tokens.processed');
    tokens.add(100);
    await provider.forceFlush();
    // The second point needs a later millisecond than the first (same timestamp = same sample): wait until the
    // first is stored and the clock has passed its timestamp.
    await waitFor('the first point of the delta counter, and the clock past it', async () => {
      const r = await read('tokens_processed_total', `&job_id=${run}`);
      const t = r[0]?.t[0];
      return t !== undefined && Date.now() > t ? true : undefined;
    });
    tokens.add(50);
    await provider.forceFlush();
    const s = await waitFor('two points of the delta counter', async () => {
      const r = await read('tokens_processed_total', `&job_id=${run}`);
      return r[0]?.v.length === 2 ? r[0] : undefined;
    });
    expect(s.v).toEqual([100, 150]);
    await provider.shutdown();
  });
});

describe('OTLP endpoint authentication', () => {
  it('refuses an exporter without a token (401), and one with a read-only token (403)', async () => {
    const body = JSON.stringify({ resourceMetrics: [] });
    const none = await fetch(`${tw.url}/v1/metrics`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(none.status).toBe(401);
    const ro = await fetch(`${tw.url}/v1/metrics`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${readToken}` },
      body,
    });
    expect(ro.status).toBe(403);
  });
});
