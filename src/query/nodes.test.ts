/**
 * The node endpoints over a real storage and job store: a node's GPUs (model from gpu_info, the jobs and
 * ranks each ran), the jobs that ran on it in the range, newest first, the metrics it reported, tenant scoping,
 * and bad parameters.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnonymousAuthenticator, installAccessControl } from '../auth/index.js';
import { JobStore, MetaStore } from '../meta/index.js';
import { SeriesBatchBuilder } from '../model/batch.js';
import { TrainwatchError } from '../model/errors.js';
import { MemoryStorage } from '../storage/index.js';
import { registerNodeApi } from './nodes.js';

const T0 = 1_699_999_200_000;
const MIN = 60_000;

let a: FastifyInstance;

/**
 * Node n1 (two GPUs) ran job `old` from T0 to T0+10m on both GPUs, then job `new` from T0+20m on GPU 1 only;
 * node n2 ran `other`. Series of a job id the metadata store does not know (`ghost`) sit on n1 too. Tenant t2
 * has a node n1 as well, which t1 must not see.
 */
async function fixture() {
  const storage = new MemoryStorage();
  const meta = new MetaStore(path.join(mkdtempSync(path.join(os.tmpdir(), 'tw-nodes-')), 'meta.db'));
  const jobs = new JobStore(meta, 24 * 3600_000 * 365 * 100);
  const b = new SeriesBatchBuilder();
  const gpuSeries = (node: string, gpu: string, jobId: string, rank: string, from: number, to: number) => {
    const labels = { node_id: node, gpu, gpu_uuid: `GPU-${node}-${gpu}`, job_id: jobId, rank };
    // A builder takes one series' samples at a time.
    const u = b.addSeries({ __name__: 'gpu_utilization_ratio', ...labels });
    for (let t = from; t <= to; t += MIN) u.add(t, 0.9);
    const e = b.addSeries({ __name__: 'gpu_ecc_errors_total', ...labels, type: 'corrected' });
    for (let t = from; t <= to; t += MIN) e.add(t, 0);
  };
  gpuSeries('n1', '0', 'old', '0', T0, T0 + 10 * MIN);
  gpuSeries('n1', '1', 'old', '1', T0, T0 + 10 * MIN);
  gpuSeries('n1', '1', 'new', '3', T0 + 20 * MIN, T0 + 30 * MIN);
  gpuSeries('n2', '0', 'other', '0', T0, T0 + 30 * MIN);
  b.addSeries({
    __name__: 'gpu_info',
    node_id: 'n1',
    gpu: '0',
    gpu_uuid: 'GPU-n1-0',
    name: 'NVIDIA H100 80GB HBM3',
  }).add(T0, 1);
  b.addSeries({
    __name__: 'host_network_receive_bytes_total',
    node_id: 'n1',
    device: 'eth0',
    job_id: 'ghost',
  }).add(T0 + 5 * MIN, 1e9);
  storage.appender.append('t1', b.build());
  const secret = new SeriesBatchBuilder();
  secret
    .addSeries({ __name__: 'gpu_utilization_ratio', node_id: 'n1', gpu: '7', job_id: 'secret' })
    .add(T0 + MIN, 1);
  storage.appender.append('t2', secret.build());
  jobs.applyEvent('t1', {
    kind: 'start',
    jobId: 'old',
    timeMs: T0,
    name: 'bert',
    owner: 'ann',
    worldSize: 2,
  });
  jobs.applyEvent('t1', { kind: 'finish', jobId: 'old', timeMs: T0 + 10 * MIN, status: 'failed' });
  jobs.applyEvent('t1', {
    kind: 'start',
    jobId: 'new',
    timeMs: T0 + 20 * MIN,
    name: 'llama',
    project: 'llm',
  });
  jobs.applyEvent('t1', { kind: 'start', jobId: 'other', timeMs: T0, name: 'vit' });
  jobs.applyEvent('t2', { kind: 'start', jobId: 'secret', timeMs: T0 });
  await jobs.flush();
  return { storage, jobs };
}

beforeAll(async () => {
  const { storage, jobs } = await fixture();
  a = Fastify();
  a.setErrorHandler((err, _req, reply) => {
    if (err instanceof TrainwatchError)
      return reply.code(err.status).send({ status: 'error', errorType: err.kind.code, error: err.message });
    return reply.code(500).send({ status: 'error', error: String(err) });
  });
  const auth = new AnonymousAuthenticator('t1');
  installAccessControl(a, auth);
  registerNodeApi(a, { storage, jobs });
  await a.ready();
});
afterAll(async () => {
  await a?.close();
});

async function get(url: string, expected = 200) {
  const res = await a.inject({ method: 'GET', url });
  expect(res.statusCode, res.body).toBe(expected);
  return res.json();
}

const RANGE = `start=${T0 - MIN}&end=${T0 + 40 * MIN}`;

describe('GET /api/tw/v1/nodes/:nodeId', () => {
  it('lists the GPUs with their model and the jobs and ranks each ran', async () => {
    const { data } = await get(`/api/tw/v1/nodes/n1?${RANGE}`);
    expect(data.nodeId).toBe('n1');
    expect(data.gpus).toEqual([
      { gpu: '0', uuid: 'GPU-n1-0', name: 'NVIDIA H100 80GB HBM3', jobs: [{ jobId: 'old', rank: '0' }] },
      {
        gpu: '1',
        uuid: 'GPU-n1-1',
        name: null,
        jobs: [
          { jobId: 'new', rank: '3' },
          { jobId: 'old', rank: '1' },
        ],
      },
    ]);
  });

  it('lists the jobs that ran on the node, newest first, with their metadata; unknown ids say so', async () => {
    const { data } = await get(`/api/tw/v1/nodes/n1?${RANGE}`);
    expect(data.jobs.map((j: { jobId: string }) => j.jobId)).toEqual(['new', 'old', 'ghost']);
    expect(data.jobCount).toBe(3);
    const old = data.jobs.find((j: { jobId: string }) => j.jobId === 'old');
    expect(old).toMatchObject({ known: true, name: 'bert', owner: 'ann', status: 'failed', startMs: T0 });
    expect(data.jobs.find((j: { jobId: string }) => j.jobId === 'ghost')).toMatchObject({
      known: false,
      status: 'unknown',
    });
    expect(data.metrics).toEqual([
      'gpu_ecc_errors_total',
      'gpu_info',
      'gpu_utilization_ratio',
      'host_network_receive_bytes_total',
    ]);
  });

  it("reads the caller's tenant only", async () => {
    const { data } = await get(`/api/tw/v1/nodes/n1?${RANGE}`);
    expect(data.gpus.map((g: { gpu: string }) => g.gpu)).not.toContain('7');
    expect(data.jobs.map((j: { jobId: string }) => j.jobId)).not.toContain('secret');
  });

  it('answers a node with nothing in the range with empty lists', async () => {
    const { data } = await get(`/api/tw/v1/nodes/nowhere?${RANGE}`);
    expect(data).toMatchObject({ nodeId: 'nowhere', gpus: [], jobs: [], jobCount: 0, metrics: [] });
  });

  it('refuses bad parameters with a message naming them', async () => {
    expect((await get(`/api/tw/v1/nodes/n1?start=yesterday`, 400)).error).toMatch(/start="yesterday"/);
    expect((await get(`/api/tw/v1/nodes/n1?start=${T0 + MIN}&end=${T0}`, 400)).error).toMatch(/after end/);
  });
});

describe('GET /api/tw/v1/nodes', () => {
  it('lists the nodes that reported, of one job with job_id', async () => {
    expect((await get(`/api/tw/v1/nodes?${RANGE}`)).data.nodes).toEqual(['n1', 'n2']);
    expect((await get(`/api/tw/v1/nodes?${RANGE}&job_id=other`)).data.nodes).toEqual(['n2']);
    expect((await get(`/api/tw/v1/nodes?${RANGE}&job_id=secret`)).data.nodes).toEqual([]);
  });
});
