/**
 * The whole program in this process (every role, embedded defaults), driven through its HTTP API with
 * Fastify's inject: ingest, validation errors, idempotency, job metadata, queries and self-reporting.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { SeriesBatchBuilder } from '../src/model/batch.js';
import type { JobEvent } from '../src/model/job.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../src/protocol/native.js';
import { startTrainwatch, type Trainwatch } from '../src/server/index.js';
import { tempDir, waitFor } from './support/helpers.js';

let tw: Trainwatch;
const encoder = new NativeEncoder();
const T0 = Date.now() - 60_000;

beforeAll(async () => {
  const config = loadConfig({
    flags: {
      listen: '127.0.0.1:0',
      data_dir: tempDir(),
      processor: { checkpoint_interval_ms: 100 },
      // Sending without a token must be allowed explicitly (docs/ingest.md, "Authentication").
      auth: { anonymous_scopes: ['ingest', 'read'] },
    },
  });
  tw = await startTrainwatch(config, pino({ level: 'silent' }));
});

afterAll(async () => {
  await tw?.stop();
});

function frame(
  sourceId: string,
  sequence: number,
  build: (b: SeriesBatchBuilder) => void,
  events: JobEvent[] = [],
): Buffer {
  const b = new SeriesBatchBuilder();
  build(b);
  return Buffer.from(encoder.encodeFrame({ sourceId, sequence, batch: b.build(), events }));
}

function ingest(body: Buffer, contentType = NATIVE_CONTENT_TYPE) {
  return tw.app.inject({
    method: 'POST',
    url: '/api/v1/ingest',
    headers: { 'content-type': contentType },
    payload: body,
  });
}

async function series(query: string) {
  const res = await tw.app.inject({ method: 'GET', url: `/api/tw/v1/series?${query}` });
  expect(res.statusCode).toBe(200);
  return res.json().data.series as { labels: Record<string, string>; t: number[]; v: (number | string)[] }[];
}

describe('ingest → bus → processor → storage → query', () => {
  it('stores an acknowledged batch and serves it back', async () => {
    const res = await ingest(
      frame(
        'node-1',
        1,
        (b) => {
          b.addSeries({ __name__: 'train_loss', job_id: 'job-a', rank: '0' })
            .add(T0, 2.5)
            .add(T0 + 1000, 2.25);
          b.addSeries({ __name__: 'gpu_utilization_ratio', job_id: 'job-a', node_id: 'n1', gpu: '0' }).add(
            T0,
            0.9,
          );
        },
        [
          {
            kind: 'start',
            jobId: 'job-a',
            timeMs: T0,
            name: 'bert',
            project: 'nlp',
            owner: 'ann',
            worldSize: 1,
            config: { lr: 0.1 },
          },
        ],
      ),
    );
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      status: 'success',
      data: { series: 2, samples: 3, events: 1, duplicate: false },
    });

    const loss = await waitFor('the loss to be queryable', async () => {
      const s = await series(`metric=train_loss&job_id=job-a&start=${T0 - 1}&end=${T0 + 2000}`);
      return s.length ? s : undefined;
    });
    expect(loss).toEqual([
      {
        labels: { __name__: 'train_loss', job_id: 'job-a', rank: '0', tenant: 'default' },
        t: [T0, T0 + 1000],
        v: [2.5, 2.25],
      },
    ]);
  });

  it('lists the job with its metadata and live numbers', async () => {
    const job = await waitFor('job-a in the job list', async () => {
      const res = await tw.app.inject({ method: 'GET', url: '/api/tw/v1/jobs' });
      return (res.json().data.jobs as { jobId: string }[]).find((j) => j.jobId === 'job-a');
    });
    expect(job).toMatchObject({
      jobId: 'job-a',
      name: 'bert',
      project: 'nlp',
      owner: 'ann',
      status: 'running',
      config: { lr: 0.1 },
      gpus: 1,
      loss: 2.25,
      meanGpuUtilization: 0.9,
    });
    const one = await tw.app.inject({ method: 'GET', url: '/api/tw/v1/jobs/job-a' });
    expect(one.json().data.metrics).toEqual(['gpu_utilization_ratio', 'train_loss']);
    const missing = await tw.app.inject({ method: 'GET', url: '/api/tw/v1/jobs/nope' });
    expect(missing.statusCode).toBe(404);
  });

  it('stores a retried batch once', async () => {
    const body = frame('node-2', 7, (b) =>
      b.addSeries({ __name__: 'train_step', job_id: 'job-b' }).add(T0, 1),
    );
    expect((await ingest(body)).json().data.duplicate).toBe(false);
    const again = await ingest(body);
    expect(again.statusCode).toBe(200);
    expect(again.json().data.duplicate).toBe(true);
    const s = await waitFor('job-b step', async () => {
      const r = await series(`metric=train_step&job_id=job-b&start=${T0 - 1}&end=${T0 + 1}`);
      return r.length ? r : undefined;
    });
    expect(s[0]!.t).toEqual([T0]);
  });

  it('keeps NaN, infinities and decimates with min and max', async () => {
    await ingest(
      frame('node-3', 1, (b) => {
        b.addSeries({ __name__: 'train_loss', job_id: 'job-c' });
        for (let i = 0; i < 100; i++) b.add(T0 + i * 1000, i === 50 ? 100 : 1 + (i % 3));
        b.add(T0 + 100_000, Number.NaN).add(T0 + 101_000, Number.POSITIVE_INFINITY);
      }),
    );
    const full = await waitFor('job-c', async () => {
      const r = await series(`metric=train_loss&job_id=job-c&start=${T0}&end=${T0 + 200_000}`);
      return r.length ? r : undefined;
    });
    expect(full[0]!.v.slice(-2)).toEqual(['NaN', '+Inf']);
    const dec = await series(`metric=train_loss&job_id=job-c&start=${T0}&end=${T0 + 101_000}&points=10`);
    expect(dec[0]!.t.length).toBeLessThanOrEqual(2 * 10 + 2);
    expect(dec[0]!.v).toContain(100);
    expect(dec[0]!.v).toContain('NaN');
  });
});

describe('bad input gets a clear 4xx and harms nothing', () => {
  it('refuses a wrong content type', async () => {
    const res = await ingest(Buffer.from('{}'), 'application/json');
    expect(res.statusCode).toBe(415);
    expect(res.json().error).toMatch(/Content-Type must be application\/x-trainwatch-batch/);
  });

  it('refuses garbage, naming the problem', async () => {
    const res = await ingest(Buffer.from('hello world'));
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ status: 'error', errorType: 'bad_payload' });
    expect(res.json().error).toMatch(/magic bytes/);
  });

  it('refuses an invalid metric name, naming the series, and stores nothing of that batch', async () => {
    const res = await ingest(
      frame('node-4', 1, (b) => {
        b.addSeries({ __name__: 'fine_metric', job_id: 'job-d' }).add(T0, 1);
        b.addSeries({ __name__: 'train/loss', job_id: 'job-d' }).add(T0, 1);
      }),
    );
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(
      /series train\/loss\{job_id="job-d"\}: metric name "train\/loss" is invalid/,
    );
    await tw.processor!.checkpoint();
    expect(await series(`metric=fine_metric&start=${T0 - 1}&end=${T0 + 1}`)).toEqual([]);
  });

  it('refuses reserved label names and timestamps far in the future', async () => {
    const reserved = await ingest(
      frame('node-5', 1, (b) => b.addSeries({ __name__: 'x', __secret: '1' }).add(T0, 1)),
    );
    expect(reserved.json().error).toMatch(/label name "__secret" is reserved/);
    const future = await ingest(
      frame('node-5', 2, (b) => b.addSeries({ __name__: 'x' }).add(Date.now() + 86_400_000, 1)),
    );
    expect(future.statusCode).toBe(400);
    expect(future.json().error).toMatch(/more than 10 minutes in the future/);
  });

  it('refuses an oversized body while reading it', async () => {
    const res = await ingest(Buffer.alloc(17 << 20));
    expect(res.statusCode).toBe(413);
    expect(res.json().error).toMatch(/larger than the limit of \d+ bytes/);
  });

  it('answers unknown API paths with a JSON 404', async () => {
    const res = await tw.app.inject({ method: 'GET', url: '/api/nope' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ status: 'error', errorType: 'not_found' });
  });

  it('refuses bad query parameters', async () => {
    const res = await tw.app.inject({ method: 'GET', url: '/api/tw/v1/series?metric=x&start=yesterday' });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(/start="yesterday" is not a time/);
    const noMetric = await tw.app.inject({ method: 'GET', url: '/api/tw/v1/series' });
    expect(noMetric.json().error).toMatch(/parameter metric is required/);
  });
});

describe('self-reporting', () => {
  it('serves health, readiness and Prometheus metrics', async () => {
    expect((await tw.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    await waitFor(
      'ready',
      async () => (await tw.app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200 || undefined,
    );
    const metrics = await tw.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.headers['content-type']).toMatch(/text\/plain/);
    expect(metrics.body).toMatch(/trainwatch_ingest_samples_total\{protocol="native",tenant="default"\} \d+/);
    expect(metrics.body).toMatch(
      /trainwatch_ingest_rejected_requests_total\{protocol="native",reason="invalid_series"\} \d+/,
    );
    expect(metrics.body).toMatch(/trainwatch_ingest_dedup_hits_total\{protocol="native"\} 1/);
    expect(metrics.body).toMatch(/trainwatch_processor_samples_total \d+/);
    expect(metrics.body).toMatch(/trainwatch_process_resident_memory_bytes/);
  });
});
