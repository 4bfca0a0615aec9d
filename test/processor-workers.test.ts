/**
 * The processor on several worker threads (`processor.workers: 3`), the whole program in this process:
 * every acknowledged sample is stored once, in the shard of its job; a query pinned to one job reads one shard
 * and a fleet query reads them all; each worker reports its lag and event-loop delay; detectors and job
 * metadata cross to the main thread; and the shard count stays what the data directory holds.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { SeriesBatchBuilder } from '../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../src/protocol/native.js';
import { startTrainwatch, type Trainwatch } from '../src/server/index.js';
import { workerConfig } from '../src/server/processor-workers.js';
import { tempDir, waitFor } from './support/helpers.js';

const encoder = new NativeEncoder();
const T0 = Date.now() - 600_000;
const JOBS = 12;
const SERIES_PER_JOB = 4;
const BATCHES = 5;
const SAMPLES_PER_BATCH = 10;

const running: Trainwatch[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((t) => t.stop()));
});

async function start(dataDir: string, workers: number): Promise<Trainwatch> {
  const config = loadConfig({
    flags: {
      listen: '127.0.0.1:0',
      data_dir: dataDir,
      processor: { checkpoint_interval_ms: 100, workers },
      auth: { anonymous_scopes: ['ingest', 'read', 'admin'] },
    },
  });
  const tw = await startTrainwatch(config, pino({ level: 'silent' }));
  running.push(tw);
  return tw;
}

/** Batch b of job j: SERIES_PER_JOB series, SAMPLES_PER_BATCH samples each, values a function of (j, s, t). */
function frame(j: number, b: number): Buffer {
  const batch = new SeriesBatchBuilder();
  for (let s = 0; s < SERIES_PER_JOB; s++) {
    batch.addSeries({ __name__: 'wm_value', job_id: `job-${j}`, rank: String(s) });
    for (let k = 0; k < SAMPLES_PER_BATCH; k++) {
      const t = T0 + (b * SAMPLES_PER_BATCH + k) * 1000;
      batch.add(t, j * 1000 + s * 100 + (t - T0) / 1000);
    }
  }
  return Buffer.from(
    encoder.encodeFrame({ sourceId: `node-${j}`, sequence: b, batch: batch.build(), events: [] }),
  );
}

async function ingestAll(tw: Trainwatch): Promise<void> {
  const sends: Promise<void>[] = [];
  for (let j = 0; j < JOBS; j++)
    for (let b = 0; b < BATCHES; b++)
      sends.push(
        tw.app
          .inject({
            method: 'POST',
            url: '/api/v1/ingest',
            headers: { 'content-type': NATIVE_CONTENT_TYPE },
            payload: frame(j, b),
          })
          .then((res) => expect(res.statusCode, res.body).toBe(200)),
      );
  await Promise.all(sends);
}

type Series = { labels: Record<string, string>; t: number[]; v: (number | string)[] };

async function series(tw: Trainwatch, query: string): Promise<Series[]> {
  const res = await tw.app.inject({ method: 'GET', url: `/api/tw/v1/series?${query}` });
  expect(res.statusCode, res.body).toBe(200);
  return res.json().data.series as Series[];
}

async function metrics(tw: Trainwatch): Promise<string> {
  const res = await tw.app.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  return res.body;
}

/** Selections each worker served so far, from `/metrics`. */
async function selectsByWorker(tw: Trainwatch, workers: number): Promise<number[]> {
  const text = await metrics(tw);
  return Array.from({ length: workers }, (_, w) => {
    const m = text.match(
      new RegExp(
        `trainwatch_worker_storage_requests_total\\{[^}]*worker="${w}"[^}]*op="select"[^}]*\\} (\\d+)`,
      ),
    );
    return m ? Number(m[1]) : 0;
  });
}

const range = `start=${T0 - 1}&end=${T0 + 3_600_000}`;

describe('processor worker threads', () => {
  it('stores every acknowledged sample once across the shards and reads one shard for one job', async () => {
    const dataDir = tempDir('tw-workers-');
    const tw = await start(dataDir, 3);
    expect(tw.processorWorkers?.size).toBe(3);
    await ingestAll(tw);
    await tw.processor!.caughtUp;

    const all = await waitFor('every series stored', async () => {
      const s = await series(tw, `metric=wm_value&points=20000&${range}`);
      const n = s.reduce((a, x) => a + x.t.length, 0);
      return n === JOBS * SERIES_PER_JOB * BATCHES * SAMPLES_PER_BATCH ? s : undefined;
    });
    expect(all).toHaveLength(JOBS * SERIES_PER_JOB);
    for (const s of all) {
      const j = Number(s.labels.job_id!.slice(4));
      const r = Number(s.labels.rank);
      expect(s.t).toEqual(Array.from({ length: BATCHES * SAMPLES_PER_BATCH }, (_, i) => T0 + i * 1000));
      expect(s.v.map(Number)).toEqual(s.t.map((t) => j * 1000 + r * 100 + (t - T0) / 1000));
    }

    // The jobs are spread over more than one shard, and a job-pinned read asks exactly one of them.
    const before = await selectsByWorker(tw, 3);
    const one = await series(tw, `metric=wm_value&job_id=job-7&${range}`);
    expect(one).toHaveLength(SERIES_PER_JOB);
    const after = await selectsByWorker(tw, 3);
    const touched = after.map((n, w) => n - before[w]!).filter((d) => d > 0);
    expect(touched).toHaveLength(1);

    // Lag is polled a few times a second: once the workers' figures arrived, every worker is caught up.
    const m = await waitFor('every worker reporting no lag', async () => {
      const text = await metrics(tw);
      return [0, 1, 2].every((w) => text.includes(`trainwatch_worker_lag_records{worker="${w}"} 0`))
        ? text
        : undefined;
    });
    for (let w = 0; w < 3; w++) {
      expect(m).toMatch(new RegExp(`trainwatch_worker_lag_records\\{worker="${w}"\\} 0`));
      expect(m).toMatch(new RegExp(`trainwatch_worker_event_loop_delay_seconds\\{worker="${w}"\\} `));
    }
    // The workers' processor metrics, summed: every sample appended once.
    const appended = m.match(/^trainwatch_processor_samples_total (\d+)/m);
    expect(Number(appended?.[1])).toBeGreaterThanOrEqual(JOBS * SERIES_PER_JOB * BATCHES * SAMPLES_PER_BATCH);

    const detectors = await tw.app.inject({ method: 'GET', url: '/api/tw/v1/detectors' });
    expect(detectors.json().data.running).toBe(true);
    expect(detectors.json().data.detectors.length).toBeGreaterThan(0);

    // Job metadata written by the main thread from the workers' deltas.
    const jobs = await tw.app.inject({ method: 'GET', url: '/api/tw/v1/jobs' });
    expect(jobs.statusCode).toBe(200);
    expect(JSON.stringify(jobs.json())).toContain('job-7');
  });

  // Two servers of three workers each start and stop: over 30 s on a loaded two-core machine.
  it('keeps the shard count of the data directory, and everything in it, across a restart', async () => {
    const dataDir = tempDir('tw-workers-restart-');
    let tw = await start(dataDir, 3);
    await ingestAll(tw);
    await tw.processor!.caughtUp;
    await tw.processor!.checkpoint();
    await tw.stop();
    running.length = 0;

    tw = await start(dataDir, 2);
    expect(tw.processorWorkers?.size).toBe(3);
    await tw.processor!.caughtUp;
    const all = await series(tw, `metric=wm_value&points=20000&${range}`);
    expect(all.reduce((a, x) => a + x.t.length, 0)).toBe(JOBS * SERIES_PER_JOB * BATCHES * SAMPLES_PER_BATCH);
  }, 120_000);
});

describe('the configuration given to processor workers', () => {
  it('can be cloned into a worker with a regex matcher in the routing tree, and keeps the rest', () => {
    const config = loadConfig({
      flags: {
        alerting: {
          route: { receiver: 'hook', routes: [{ matchers: ['job_id=~".+"'], receiver: 'hook' }] },
          receivers: [{ name: 'hook', webhook_configs: [{ url: 'http://127.0.0.1:1/hook' }] }],
          actions: [{ name: 'requeue', matchers: ['alertname=~"GPU.*"'], command: { path: '/bin/true' } }],
        },
      },
    });
    // The compiled matchers hold functions: the whole configuration cannot go to a worker.
    expect(() => structuredClone(config)).toThrow(/could not be cloned/);
    const cloned = structuredClone(workerConfig(config));
    expect(cloned.detectors).toEqual(config.detectors);
    expect(cloned.processor).toEqual(config.processor);
    expect(cloned.alerting.receivers).toEqual(config.alerting.receivers);
  });
});
