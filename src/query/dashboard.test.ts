/**
 * The dashboard endpoints over a real storage and job store: matrices whose cells are checked against
 * hand-computed means, straggler scoring, the fleet summaries against summarizeJob, curves with steps, tenant
 * scoping, bad parameters, and the tick stream.
 */
import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/helpers.js';
import {
  AnonymousAuthenticator,
  type Authenticator,
  installAccessControl,
  type Principal,
  TokenAuthenticator,
} from '../auth/index.js';
import { JobStore, MetaStore, TokenStore } from '../meta/index.js';
import { SeriesBatchBuilder, STALE_NAN } from '../model/batch.js';
import { TrainwatchError } from '../model/errors.js';
import { MemoryStorage } from '../storage/index.js';
import { registerDashboardApi } from './dashboard.js';
import { NO_DATA_BYTE } from './dashboard-matrix.js';
import { summarizeJob } from './job-summary.js';
import { LiveStreams } from './live-streams.js';

const T0 = 1_699_999_200_000; // a whole hour, so that every nice step aligns on it
const SECOND = 1000;

function makeStore() {
  const meta = new MetaStore(path.join(mkdtempSync(path.join(os.tmpdir(), 'tw-dash-')), 'meta.db'));
  return new JobStore(meta, 24 * 3600_000 * 365 * 100);
}

function app(storage: MemoryStorage, jobs: JobStore, auth: Authenticator = new AnonymousAuthenticator('t1')) {
  const a = Fastify();
  a.setErrorHandler((err, _req, reply) => {
    if (err instanceof TrainwatchError)
      return reply.code(err.status).send({ status: 'error', errorType: err.kind.code, error: err.message });
    return reply.code(500).send({ status: 'error', error: String(err) });
  });
  installAccessControl(a, auth);
  registerDashboardApi(a, { auth, storage, jobs, livePollMs: 20 });
  return a;
}

/**
 * A 4-GPU job `j1` on two nodes for 10 minutes at 1 s: rank 3 (node n1, gpu 1) straggles — its step time is
 * 1.3 s against 1.0 s, its utilization 0.99 against 0.70. Job `j2` has one idle GPU. Tenant t2 has a job too.
 */
async function fixture() {
  const storage = new MemoryStorage();
  const jobs = makeStore();
  const b = new SeriesBatchBuilder();
  for (let rank = 0; rank < 4; rank++) {
    const node = `n${rank >> 1}`;
    const gpu = String(rank & 1);
    const labels = { job_id: 'j1', node_id: node, gpu, rank: String(rank) };
    const u = b.addSeries({ __name__: 'gpu_utilization_ratio', ...labels });
    for (let s = 0; s < 600; s++) u.add(T0 + s * SECOND, rank === 3 ? 0.99 : 0.7 + 0.005 * rank);
    const st = b.addSeries({
      __name__: 'train_step_duration_seconds',
      job_id: 'j1',
      node_id: node,
      rank: String(rank),
      local_rank: gpu,
    });
    for (let s = 0; s < 600; s++)
      st.add(T0 + s * SECOND, rank === 3 ? 1.3 : 1 + 0.002 * rank + 0.001 * ((s + rank) % 5));
    const steps = b.addSeries({ __name__: 'train_step', job_id: 'j1', node_id: node, rank: String(rank) });
    for (let s = 0; s < 600; s += 10) steps.add(T0 + s * SECOND, s / 10);
    const loss = b.addSeries({ __name__: 'train_loss', job_id: 'j1', node_id: node, rank: String(rank) });
    for (let s = 0; s < 600; s += 10) loss.add(T0 + s * SECOND + 5, 10 - s / 100 + rank);
  }
  b.addSeries({ __name__: 'eval_accuracy', job_id: 'j1', rank: '0', node_id: 'n0' })
    .add(T0 + 300 * SECOND, 0.5)
    .add(T0 + 590 * SECOND, 0.6);
  // A recording rule's output carries the job's label but is not one of its curves.
  b.addSeries({ __name__: 'job_id:train_loss:avg', job_id: 'j1' }).add(T0 + 60 * SECOND, 9);
  b.addSeries({ __name__: 'train_tokens_per_second', job_id: 'j1', rank: '0' }).add(T0 + 599 * SECOND, 1000);
  b.addSeries({ __name__: 'train_tokens_per_second', job_id: 'j1', rank: '1' }).add(T0 + 599 * SECOND, 1500);
  for (let g = 0; g < 2; g++) {
    const u = b.addSeries({ __name__: 'gpu_utilization_ratio', job_id: 'j2', node_id: 'm0', gpu: String(g) });
    for (let s = 0; s < 600; s++) u.add(T0 + s * SECOND, g === 0 ? 0 : 0.5);
  }
  storage.appender.append('t1', b.build());
  const other = new SeriesBatchBuilder();
  other.addSeries({ __name__: 'gpu_utilization_ratio', job_id: 'secret', node_id: 'x', gpu: '0' }).add(T0, 1);
  storage.appender.append('t2', other.build());
  jobs.applyEvent('t1', {
    kind: 'start',
    jobId: 'j1',
    timeMs: T0,
    name: 'llama',
    owner: 'ann',
    config: { lr: 0.1 },
  });
  jobs.noteSamples('t1', 'j1', T0, T0 + 599 * SECOND);
  jobs.applyEvent('t1', { kind: 'start', jobId: 'j2', timeMs: T0, name: 'bert' });
  jobs.noteSamples('t1', 'j2', T0, T0 + 599 * SECOND);
  jobs.applyEvent('t2', { kind: 'start', jobId: 'secret', timeMs: T0 });
  jobs.noteSamples('t2', 'secret', T0, T0);
  await jobs.flush();
  return { storage, jobs };
}

function decode(values: string): Uint8Array {
  return new Uint8Array(Buffer.from(values, 'base64'));
}

let f: Awaited<ReturnType<typeof fixture>>;
let a: FastifyInstance;
beforeAll(async () => {
  f = await fixture();
  a = app(f.storage, f.jobs);
  await a.ready();
});
afterAll(async () => {
  await a.close();
});

async function get(url: string, expected = 200) {
  const res = await a.inject({ method: 'GET', url });
  expect(res.statusCode, res.body).toBe(expected);
  return res.json();
}

describe('GET /api/tw/v1/heatmap', () => {
  it('folds GPUs into rows × aligned columns of per-cell means, quantized to bytes', async () => {
    const body = await get(
      `/api/tw/v1/heatmap?metric=gpu_utilization_ratio&by=job_id&start=${T0 + 5 * SECOND}&end=${T0 + 599 * SECOND}&step=60000&idle_below=0.05`,
    );
    const d = body.data;
    expect(d.start).toBe(T0); // aligned down to the step
    expect(d.step).toBe(60_000);
    expect(d.cols).toBe(10);
    expect(d.rows.map((r: { labels: Record<string, string> }) => r.labels.job_id)).toEqual(['j1', 'j2']);
    expect([d.lo, d.hi]).toEqual([0, 1]); // ratios have a fixed scale
    const bytes = decode(d.values);
    expect(bytes.length).toBe(20);
    // j1: GPUs at 0.7, 0.705, 0.71 and 0.99 → 0.77625 per cell; the first column only from start (5 s on).
    expect(bytes[0]).toBe(Math.round(((0.7 + 0.705 + 0.71 + 0.99) / 4) * 254));
    expect(bytes[9]).toBe(Math.round(((0.7 + 0.705 + 0.71 + 0.99) / 4) * 254));
    // j2: 0 and 0.5 → 0.25.
    expect(bytes[10]).toBe(Math.round(0.25 * 254));
    const j2 = d.rows[1];
    expect(j2.series).toBe(2);
    expect(j2.mean).toBeCloseTo(0.25);
    // A one-minute step reads the storage's 1-minute rollup windows: idle time counts whole windows, and
    // the GPU was idle in all ten.
    expect(j2.idleSeconds).toBeCloseTo(600);
    expect(d.rows[0].idleSeconds).toBe(0);
  });

  it('reads raw samples below a 10 s step, and counts idle time between samples', async () => {
    const d = (
      await get(
        `/api/tw/v1/heatmap?metric=gpu_utilization_ratio&by=job_id&start=${T0 + 5 * SECOND}&end=${T0 + 599 * SECOND}&step=5000&idle_below=0.05`,
      )
    ).data;
    expect(d.start).toBe(T0 + 5 * SECOND);
    expect(d.cols).toBe(119);
    // One GPU idle from 5 s to 599 s: 594 GPU-seconds.
    expect(d.rows[1].idleSeconds).toBeCloseTo(594);
    const bytes = decode(d.values);
    expect(bytes[119]).toBe(Math.round(0.25 * 254));
  });

  it('gives the same cells from rollup windows as from raw samples', async () => {
    const range = `metric=gpu_utilization_ratio&job_id=j1&by=rank&start=${T0}&end=${T0 + 599 * SECOND}`;
    const rolled = (await get(`/api/tw/v1/heatmap?${range}&step=60000`)).data;
    const raw = (await get(`/api/tw/v1/heatmap?${range}&step=5000`)).data;
    // Twelve raw columns of 5 s make one rollup column of a minute; the means agree.
    const rb = decode(raw.values);
    const ob = decode(rolled.values);
    for (let row = 0; row < 4; row++) {
      for (let c = 0; c < 10; c++) {
        let sum = 0;
        for (let k = 0; k < 12; k++) sum += rb[row * raw.cols + c * 12 + k]!;
        expect(Math.abs(ob[row * rolled.cols + c]! - sum / 12)).toBeLessThanOrEqual(1);
      }
      expect(rolled.rows[row].mean).toBeCloseTo(raw.rows[row].mean, 9);
    }
  });

  it('draws a long range at the finest rollup resolution (10 s) rather than finer, with the same means', async () => {
    // An hour asked in 720 columns would be 5 s columns; it is drawn in 10 s columns, each the exact mean.
    const range = `metric=gpu_utilization_ratio&job_id=j1&by=rank&start=${T0}&end=${T0 + 3600 * SECOND - 1}`;
    const d = (await get(`/api/tw/v1/heatmap?${range}&cols=720`)).data;
    expect(d.step).toBe(10_000);
    expect(d.cols).toBe(360);
    const raw = (await get(`/api/tw/v1/heatmap?${range}&step=10000`)).data;
    expect(d.values).toBe(raw.values);
    const bytes = decode(d.values);
    expect(bytes[3 * d.cols]).toBe(Math.round(0.99 * 254));
    expect(bytes[3 * d.cols + 60]).toBe(NO_DATA_BYTE);
    // A short range keeps its finer columns.
    const short = (
      await get(
        `/api/tw/v1/heatmap?metric=gpu_utilization_ratio&job_id=j1&by=rank&start=${T0}&end=${T0 + 599 * SECOND}&cols=120`,
      )
    ).data;
    expect(short.step).toBe(5000);
  });

  it('marks cells without samples as no data and keeps labels common to a row', async () => {
    const d = (
      await get(
        `/api/tw/v1/heatmap?metric=gpu_utilization_ratio&job_id=j1&by=node_id,gpu&keep=rank&start=${T0}&end=${T0 + 20 * 60_000}&step=60000`,
      )
    ).data;
    expect(d.rows.map((r: { labels: object }) => r.labels)).toEqual([
      { node_id: 'n0', gpu: '0', rank: '0' },
      { node_id: 'n0', gpu: '1', rank: '1' },
      { node_id: 'n1', gpu: '0', rank: '2' },
      { node_id: 'n1', gpu: '1', rank: '3' },
    ]);
    const bytes = decode(d.values);
    expect(d.cols).toBe(21);
    expect(bytes[3 * 21 + 0]).toBe(Math.round(0.99 * 254));
    expect(bytes[3 * 21 + 9]).toBe(Math.round(0.99 * 254));
    expect(bytes[3 * 21 + 10]).toBe(NO_DATA_BYTE);
    // The straggler's row is the outlier: a large positive robust z-score, the others near 0.
    const z = d.rows.map((r: { z: number }) => r.z);
    expect(z[3]).toBeGreaterThan(3.5);
    for (const x of z.slice(0, 3)) expect(Math.abs(x)).toBeLessThan(1.5);
  });

  it('uses the data range for other metrics, or the given scale, and caps columns', async () => {
    const d = (
      await get(
        `/api/tw/v1/heatmap?metric=train_step_duration_seconds&by=rank&start=${T0}&end=${T0 + 599 * SECOND}&cols=3`,
      )
    ).data;
    expect(d.lo).toBeCloseTo(1, 2);
    expect(d.hi).toBeCloseTo(1.3);
    expect(d.step).toBe(300_000); // the nice step for 3 columns over 10 minutes
    const bytes = decode(d.values);
    expect(bytes[3 * d.cols]).toBe(254);
    const scaled = (
      await get(
        `/api/tw/v1/heatmap?metric=train_step_duration_seconds&by=rank&start=${T0}&end=${T0 + 599 * SECOND}&cols=3&lo=0&hi=2`,
      )
    ).data;
    expect(decode(scaled.values)[3 * scaled.cols]).toBe(Math.round((1.3 / 2) * 254));
  });

  it('scales bytes from zero, so that allocator noise does not fill the colour range', async () => {
    const storage = new MemoryStorage();
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 'gpu_memory_used_bytes', job_id: 'm', gpu: '0' }).add(T0, 70e9);
    b.addSeries({ __name__: 'gpu_memory_used_bytes', job_id: 'm', gpu: '1' }).add(T0, 71e9);
    storage.appender.append('t1', b.build());
    const res = await app(storage, makeStore()).inject({
      method: 'GET',
      url: `/api/tw/v1/heatmap?metric=gpu_memory_used_bytes&by=gpu&start=${T0}&end=${T0 + 1000}&step=1000`,
    });
    const d = res.json().data;
    expect([d.lo, d.hi]).toEqual([0, 71e9]);
    expect([...decode(d.values)].filter((_, i) => i % d.cols === 0)).toEqual([
      Math.round((70 / 71) * 254),
      254,
    ]);
  });

  it('answers bad parameters with a 400 that names them', async () => {
    const cases: [string, RegExp][] = [
      ['', /parameter metric is required/],
      ['metric=bad-name', /not a valid metric name/],
      ['metric=m&cols=0', /cols="0" must be an integer from 1 to 4000/],
      ['metric=m&lo=1', /give both lo and hi/],
      ['metric=m&lo=2&hi=1', /hi \(1\) must be greater than lo \(2\)/],
      ['metric=m&start=yesterday', /start="yesterday" is not a time/],
      ['metric=m&start=10&end=5', /start \(10\) is after end \(5\)/],
      ['metric=m&by=a-b', /by="a-b" is not a label name/],
      ['metric=m&not-a-label=1', /"not-a-label" is neither an option nor a label name/],
      ['metric=m&start=0&end=86400000&step=1000', /step=1000 gives 86401 columns/],
    ];
    for (const [qs, re] of cases) {
      const body = await get(`/api/tw/v1/heatmap?${qs}`, 400);
      expect(body.error).toMatch(re);
    }
  });

  it("reads only the caller's tenant; another tenant needs the admin scope", async () => {
    const range = `start=${T0}&end=${T0 + 599 * SECOND}&step=60000`;
    const mine = (await get(`/api/tw/v1/heatmap?metric=gpu_utilization_ratio&${range}`)).data;
    expect(mine.rows.map((r: { labels: { job_id: string } }) => r.labels.job_id)).toEqual(['j1', 'j2']);
    const reader: Authenticator = {
      authenticate: (): Principal => ({ tenant: 't1', scopes: new Set(['read']), via: 'test' }),
    };
    const limited = app(f.storage, f.jobs, reader);
    const res = await limited.inject({
      method: 'GET',
      url: `/api/tw/v1/heatmap?metric=gpu_utilization_ratio&tenant=t2&${range}`,
    });
    expect(res.statusCode).toBe(403);
    expect(res.json().error).toMatch(/needs the admin scope/);
    // The anonymous principal of a single-user install holds every scope, so it may look at every tenant.
    const all = (await get(`/api/tw/v1/heatmap?metric=gpu_utilization_ratio&tenant=*&${range}`)).data;
    expect(all.rows.map((r: { labels: { job_id: string } }) => r.labels.job_id)).toEqual([
      'j1',
      'j2',
      'secret',
    ]);
  });
});

describe('GET /api/tw/v1/spread', () => {
  it('gives per-column min, max, mean and sum across series', async () => {
    const d = (
      await get(
        `/api/tw/v1/spread?metric=gpu_utilization_ratio&job_id=j1&start=${T0}&end=${T0 + 599 * SECOND}&step=300000`,
      )
    ).data;
    expect(d.t).toEqual([T0, T0 + 300_000]);
    expect(d.series).toBe(4);
    expect(d.min[0]).toBeCloseTo(0.7);
    expect(d.max[1]).toBeCloseTo(0.99);
    expect(d.sum[0]).toBeCloseTo(3.105);
    expect(d.mean[0]).toBeCloseTo(3.105 / 4);
    expect(d.count).toEqual([4, 4]);
    const empty = (
      await get(
        `/api/tw/v1/spread?metric=gpu_utilization_ratio&job_id=j1&start=${T0 + 3600_000}&end=${T0 + 3900_000}&step=300000`,
      )
    ).data;
    expect(empty.min).toEqual([null, null]);
  });
});

describe('GET /api/tw/v1/spread?stragglers=1', () => {
  it('scores the ranks in the same pass as the band, as /stragglers does', async () => {
    const range = `start=${T0}&end=${T0 + 599 * SECOND}`;
    const d = (
      await get(
        `/api/tw/v1/spread?metric=train_step_duration_seconds&job_id=j1&${range}&step=5000&stragglers=1`,
      )
    ).data;
    const alone = (await get(`/api/tw/v1/jobs/j1/stragglers?${range}`)).data;
    expect(d.max[0]).toBeCloseTo(1.3);
    expect(d.stragglers.straggler.labels).toEqual(alone.straggler.labels);
    expect(d.stragglers.straggler.z).toBeCloseTo(alone.straggler.z, 6);
    expect(d.stragglers.ranks.map((r: { mean: number }) => r.mean)).toEqual(
      alone.ranks.map((r: { mean: number }) => r.mean),
    );
  });
});

describe('GET /api/tw/v1/jobs/:id/stragglers', () => {
  it('finds the slow rank by robust z-score and how much slower it is', async () => {
    const d = (await get(`/api/tw/v1/jobs/j1/stragglers?start=${T0}&end=${T0 + 599 * SECOND}`)).data;
    expect(d.ranks).toHaveLength(4);
    expect(d.straggler.labels).toEqual({ rank: '3', local_rank: '1', node_id: 'n1' });
    expect(d.straggler.z).toBeGreaterThan(3.5);
    expect(d.straggler.slowdown).toBeCloseTo(0.3, 1);
  });

  it('reports no straggler when ranks differ by noise only', async () => {
    const storage = new MemoryStorage();
    const jobs = makeStore();
    const b = new SeriesBatchBuilder();
    for (let rank = 0; rank < 64; rank++) {
      const s = b.addSeries({ __name__: 'train_step_duration_seconds', job_id: 'ok', rank: String(rank) });
      // Deterministic spread of ±2%, with one rank at the edge: an outlier by z, but not 10% slower.
      for (let i = 0; i < 100; i++)
        s.add(T0 + i * SECOND, 1 + 0.02 * Math.sin(rank * 7.3 + i) + (rank === 5 ? 0.05 : 0));
    }
    storage.appender.append('t1', b.build());
    jobs.applyEvent('t1', { kind: 'start', jobId: 'ok', timeMs: T0 });
    jobs.noteSamples('t1', 'ok', T0, T0 + 99 * SECOND);
    await jobs.flush();
    const res = await app(storage, jobs).inject({
      method: 'GET',
      url: `/api/tw/v1/jobs/ok/stragglers?start=${T0}`,
    });
    const d = res.json().data;
    expect(d.ranks.find((r: { labels: { rank: string } }) => r.labels.rank === '5').z).toBeGreaterThan(3.5);
    expect(d.straggler).toBeNull();
  });

  it('answers 404 for an unknown job', async () => {
    expect((await get('/api/tw/v1/jobs/nope/stragglers', 404)).error).toMatch(/no job "nope" in tenant t1/);
  });
});

describe('GET /api/tw/v1/jobs/:id/curves', () => {
  it("gives rank 0's curve of each training metric with the step at each point", async () => {
    const d = (await get('/api/tw/v1/jobs/j1/curves')).data;
    expect(d.start).toBe(T0);
    const metrics = d.curves.map((c: { metric: string }) => c.metric).sort();
    expect(metrics).toEqual(['eval_accuracy', 'train_loss']); // GPU, step-loop and recorded metrics are not curves
    const loss = d.curves.find((c: { metric: string }) => c.metric === 'train_loss');
    expect(loss.labels.rank).toBe('0');
    expect(loss.t).toHaveLength(60);
    expect(loss.v[0]).toBe(10);
    expect(loss.step.slice(0, 3)).toEqual([0, 1, 2]);
    const acc = d.curves.find((c: { metric: string }) => c.metric === 'eval_accuracy');
    expect(acc.step).toEqual([30, 59]);
  });

  it('decimates to the requested points and serves requested metrics only', async () => {
    const d = (await get('/api/tw/v1/jobs/j1/curves?metric=train_loss&points=10')).data;
    expect(d.curves).toHaveLength(1);
    expect(d.curves[0].t.length).toBeLessThanOrEqual(20); // min and max per bucket
    expect((await get('/api/tw/v1/jobs/j1/curves?rank=1', 400)).error).toMatch(/unknown parameter "rank"/);
  });
});

describe('GET /api/tw/v1/fleet', () => {
  it('summarizes every job as summarizeJob does, plus busy and idle GPUs', async () => {
    const d = (await get('/api/tw/v1/fleet')).data;
    expect(d.tenants).toEqual(['t1']);
    const byId = new Map(d.jobs.map((j: { jobId: string }) => [j.jobId, j]));
    expect([...byId.keys()].sort()).toEqual(['j1', 'j2']);
    for (const job of await f.jobs.list('t1', Date.now())) {
      const expected = summarizeJob(f.storage, job);
      expect(byId.get(job.jobId)).toMatchObject(JSON.parse(JSON.stringify(expected)));
    }
    expect(byId.get('j1')).toMatchObject({
      gpus: 4,
      busyGpus: 4,
      idleGpus: 0,
      tokensPerSecond: 2500,
      loss: 4.1,
    });
    expect(byId.get('j2')).toMatchObject({ gpus: 2, busyGpus: 1, idleGpus: 1 });
    const all = (await get('/api/tw/v1/fleet?tenant=*')).data;
    expect(all.tenants).toEqual(['t1', 't2']);
  });

  it('treats a series whose newest sample is a staleness marker as gone', async () => {
    const storage = new MemoryStorage();
    const jobs = makeStore();
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 'gpu_utilization_ratio', job_id: 's', gpu: '0' })
      .add(T0, 0.5)
      .add(T0 + 1000, STALE_NAN);
    b.addSeries({ __name__: 'gpu_utilization_ratio', job_id: 's', gpu: '1' }).add(T0, 0.5);
    storage.appender.append('t1', b.build());
    jobs.noteSamples('t1', 's', T0, T0 + 1000);
    jobs.flush();
    const res = await app(storage, jobs).inject({ method: 'GET', url: '/api/tw/v1/fleet' });
    expect(res.json().data.jobs[0]).toMatchObject({ gpus: 1, meanGpuUtilization: 0.5 });
  });
});

describe('GET /api/tw/v1/ticks', () => {
  it('streams the newest sample time of the selection as it advances', async () => {
    const storage = new MemoryStorage();
    const jobs = makeStore();
    const now = Date.now();
    const first = new SeriesBatchBuilder();
    first.addSeries({ __name__: 'train_loss', job_id: 'live' }).add(now - 5000, 1);
    storage.appender.append('t1', first.build());
    const server = app(storage, jobs);
    await server.listen({ host: '127.0.0.1', port: 0 });
    try {
      const { port } = server.server.address() as AddressInfo;
      const events: number[] = [];
      const req = http.get(`http://127.0.0.1:${port}/api/tw/v1/ticks?job_id=live`);
      const done = new Promise<void>((resolve, reject) => {
        req.on('error', reject);
        req.on('response', (res) => {
          expect(res.headers['content-type']).toBe('text/event-stream');
          let buf = '';
          res.on('data', (chunk: Buffer) => {
            buf += chunk.toString();
            for (const m of buf.matchAll(/^data: (.*)$/gm)) {
              const t = JSON.parse(m[1]!).t as number;
              if (!events.includes(t)) events.push(t);
            }
            if (events.length === 1 && events[0] === now - 5000) {
              const more = new SeriesBatchBuilder();
              more.addSeries({ __name__: 'train_loss', job_id: 'live' }).add(now - 1000, 2);
              storage.appender.append('t1', more.build());
            }
            if (events.length >= 2) resolve();
          });
        });
      });
      await done;
      req.destroy();
      expect(events).toEqual([now - 5000, now - 1000]);
    } finally {
      await server.close();
    }
  });

  it('refuses to watch everything', async () => {
    expect((await get('/api/tw/v1/ticks', 400)).error).toMatch(/select what to watch/);
  });
});

describe('live streams: revoked tokens and caps (issue 16, item 8)', () => {
  async function withServer(
    deps: Partial<Parameters<typeof registerDashboardApi>[1]>,
    run: (port: number) => Promise<void>,
  ) {
    const storage = new MemoryStorage();
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 'train_loss', job_id: 'live' }).add(Date.now() - 5000, 1);
    storage.appender.append('t1', b.build());
    const a = Fastify();
    a.setErrorHandler((err, _req, reply) => {
      if (err instanceof TrainwatchError)
        return reply.code(err.status).send({ status: 'error', errorType: err.kind.code, error: err.message });
      return reply.code(500).send({ status: 'error', error: String(err) });
    });
    const auth = deps.auth ?? new AnonymousAuthenticator('t1');
    installAccessControl(a, auth);
    registerDashboardApi(a, {
      auth,
      storage,
      jobs: makeStore(),
      livePollMs: 20,
      ...deps,
    });
    await a.listen({ host: '127.0.0.1', port: 0 });
    try {
      await run((a.server.address() as AddressInfo).port);
    } finally {
      await a.close();
    }
  }

  /** Opens the tick stream; resolves with the status at once, and `body` with everything up to the close. */
  function openStream(port: number, headers: Record<string, string> = {}) {
    const req = http.get(`http://127.0.0.1:${port}/api/tw/v1/ticks?job_id=live`, { headers });
    let text = '';
    let firstData: () => void = () => {};
    const dataSeen = new Promise<void>((r) => {
      firstData = r;
    });
    const status = new Promise<number>((resolve, reject) => {
      req.on('error', reject);
      req.on('response', (res) => {
        resolve(res.statusCode!);
        res.on('data', (c: Buffer) => {
          text += c.toString();
          if (text.includes('data: ')) firstData();
        });
      });
    });
    const body = new Promise<string>((resolve) => req.on('close', () => resolve(text)));
    return { req, status, body, dataSeen };
  }

  it('ends a stream whose token is revoked, with an error event saying why', async () => {
    const tokens = new TokenStore(
      new MetaStore(path.join(mkdtempSync(path.join(os.tmpdir(), 'tw-sse-')), 'm.db')),
    );
    const created = tokens.create({ tenant: 't1', scope: 'read' });
    await withServer(
      { auth: new TokenAuthenticator(tokens, { tenant: null, scopes: new Set() }) },
      async (port) => {
        const s = openStream(port, { authorization: `Bearer ${created.token}` });
        expect(await s.status).toBe(200);
        await s.dataSeen;
        tokens.revoke(created.info.id);
        const body = await s.body;
        expect(body).toMatch(/event: error\ndata: \{"error":"stream closed: token \w+ was revoked"\}/);
      },
    );
  });

  it('caps open streams per tenant and in total (429 naming the limit), and frees a slot at close', async () => {
    const liveStreams = new LiveStreams({ maxStreams: 1, maxStreamsPerTenant: 1 });
    await withServer({ liveStreams }, async (port) => {
      const first = openStream(port);
      expect(await first.status).toBe(200);
      const second = openStream(port);
      expect(await second.status).toBe(429);
      expect(await second.body).toMatch(
        /limit query.max_live_streams_per_tenant exceeded: tenant t1 has 1 live streams/,
      );
      first.req.destroy();
      await waitFor('the closed stream to free its slot', () => liveStreams.count === 0 || undefined);
      const third = openStream(port);
      expect(await third.status).toBe(200);
      third.req.destroy();
    });
  });
});
