/**
 * The job lists at fleet scale (issue 17) over a real job store and storage: `GET /api/tw/v1/jobs` and
 * `GET /api/tw/v1/fleet` page, sort, filter and count in the store and summarize only the page;
 * `GET /api/tw/v1/heatmap` keeps the page's filters and groups jobs by project when more have data than fit.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnonymousAuthenticator, installAccessControl } from '../auth/index.js';
import { insertJobsBulk, JobStore, MetaStore } from '../meta/index.js';
import { SeriesBatchBuilder } from '../model/batch.js';
import { TrainwatchError } from '../model/errors.js';
import type { JobInfo } from '../model/job.js';
import { MemoryStorage } from '../storage/index.js';
import { registerDashboardApi } from './dashboard.js';
import { registerRestApi } from './rest.js';

const JOBS = 2000;
/** Jobs 0..59 report GPU utilization (two GPUs each, one idle in every fifth job), in 6 projects. */
const WITH_DATA = 60;
const NOW = Math.floor(Date.now() / 60_000) * 60_000;

let app: FastifyInstance;
let storage: MemoryStorage;
let querierCalls = 0;
let jobs: JobInfo[];

function jobAt(i: number): JobInfo {
  return {
    tenant: 't1',
    jobId: `j${String(i).padStart(5, '0')}`,
    name: `run-${i % 97}`,
    project: `proj-${i % 6}`,
    owner: `owner-${i % 13}`,
    framework: 'pytorch',
    worldSize: 2 + (i % 8),
    config: {},
    tags: i % 2 ? ['odd'] : ['even'],
    metricKeys: {},
    status: i < WITH_DATA ? 'running' : i % 3 === 0 ? 'failed' : 'completed',
    startMs: NOW - 3_600_000 - i * 60_000,
    endMs: null,
    // Jobs with data are the most recently active; the others ended over the last weeks.
    lastSampleMs: i < WITH_DATA ? NOW - i * 1000 : NOW - 3_600_000 - i * 600_000,
  };
}

beforeAll(async () => {
  const meta = new MetaStore(path.join(mkdtempSync(path.join(os.tmpdir(), 'tw-job-list-')), 'meta.db'));
  const store = new JobStore(meta, 5 * 60_000);
  jobs = Array.from({ length: JOBS }, (_, i) => jobAt(i));
  insertJobsBulk(meta.db, jobs);
  insertJobsBulk(meta.db, [{ ...jobAt(1), tenant: 't2', jobId: 'secret' }]);
  storage = new MemoryStorage();
  const b = new SeriesBatchBuilder();
  for (let i = 0; i < WITH_DATA; i++)
    for (let gpu = 0; gpu < 2; gpu++) {
      const s = b.addSeries({
        __name__: 'gpu_utilization_ratio',
        job_id: jobs[i]!.jobId,
        node_id: `n${i}`,
        gpu: String(gpu),
      });
      for (let t = NOW - 600_000; t <= NOW - i * 1000; t += 10_000)
        s.add(t, gpu === 1 && i % 5 === 0 ? 0 : 0.8);
    }
  storage.appender.append('t1', b.build());
  const counted = Object.create(storage) as MemoryStorage;
  counted.querier = (...args: Parameters<MemoryStorage['querier']>) => {
    querierCalls++;
    return storage.querier(...args);
  };
  const auth = new AnonymousAuthenticator('t1');
  app = Fastify();
  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof TrainwatchError)
      return reply.code(err.status).send({ status: 'error', errorType: err.kind.code, error: err.message });
    return reply.code(500).send({ status: 'error', error: String(err) });
  });
  installAccessControl(app, auth);
  registerRestApi(app, { auth, storage: counted, jobs: store });
  registerDashboardApi(app, { auth, storage: counted, jobs: store });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
});

async function get(url: string, expected = 200) {
  const res = await app.inject({ method: 'GET', url });
  expect(res.statusCode, `${url}: ${res.body}`).toBe(expected);
  return res.json();
}

const ids = (d: { jobs: { jobId: string }[] }) => d.jobs.map((j) => j.jobId);

describe('GET /api/tw/v1/jobs', () => {
  it('answers one page (100 by default) of the most recently active jobs, with the count, summarizing only the page', async () => {
    querierCalls = 0;
    const d = (await get('/api/tw/v1/jobs')).data;
    expect(d.total).toBe(JOBS);
    expect(d.jobs).toHaveLength(100);
    expect(ids(d)).toEqual(jobs.slice(0, 100).map((j) => j.jobId));
    // The page's live numbers: job 0 has two GPUs reporting.
    expect(d.jobs[0]).toMatchObject({ jobId: 'j00000', gpus: 2, owner: 'owner-0' });
    expect(querierCalls).toBeLessThanOrEqual(100);
    expect(d.next_cursor).toEqual(expect.any(String));
  });

  it('pages by offset and by cursor to the same jobs, sorted by a column in either order', async () => {
    const byName = [...jobs].sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0,
    );
    const second = (await get('/api/tw/v1/jobs?sort=name&order=asc&limit=50&offset=50')).data;
    expect(ids(second)).toEqual(byName.slice(50, 100).map((j) => j.jobId));
    const first = (await get('/api/tw/v1/jobs?sort=name&order=asc&limit=50')).data;
    const next = (await get(`/api/tw/v1/jobs?sort=name&order=asc&limit=50&cursor=${first.next_cursor}`)).data;
    expect(ids(next)).toEqual(ids(second));
    const desc = (await get('/api/tw/v1/jobs?sort=gpus&order=desc&limit=5')).data;
    expect(desc.jobs.map((j: JobInfo) => j.worldSize)).toEqual([9, 9, 9, 9, 9]);
    const last = (await get(`/api/tw/v1/jobs?sort=name&order=asc&limit=1000&offset=${JOBS - 10}`)).data;
    expect(last.jobs).toHaveLength(10);
    expect(last.next_cursor).toBeNull();
  });

  it('filters by status, search, project, owner and tag, and keeps the old parameters working', async () => {
    const failed = (await get('/api/tw/v1/jobs?status=failed&project=proj-3&limit=1000')).data;
    const expected = jobs.filter((j) => j.status === 'failed' && j.project === 'proj-3');
    expect(failed.total).toBe(expected.length);
    expect(ids(failed).sort()).toEqual(expected.map((j) => j.jobId).sort());
    const search = (await get('/api/tw/v1/jobs?search=J0012&limit=1000')).data;
    // Case-insensitive substring of id, name, project or owner: j00120..j00129.
    expect(ids(search).sort()).toEqual(jobs.filter((j) => j.jobId.includes('j0012')).map((j) => j.jobId));
    expect(search.total).toBe(10);
    const owner = (await get('/api/tw/v1/jobs?owner=owner-4&tag=odd&limit=3')).data;
    expect(owner.total).toBe(jobs.filter((j) => j.owner === 'owner-4' && j.tags.includes('odd')).length);
    expect(owner.jobs).toHaveLength(3);
    // Before paging, callers passed status, search and limit only.
    const old = (await get('/api/tw/v1/jobs?status=running&search=j0000&limit=5')).data;
    expect(ids(old)).toEqual(['j00000', 'j00001', 'j00002', 'j00003', 'j00004']);
    expect(ids((await get('/api/tw/v1/jobs?search=secret')).data)).toEqual([]);
  });

  it('refuses bad parameters with a 400 naming them', async () => {
    const first = (await get('/api/tw/v1/jobs?sort=name&limit=2')).data;
    for (const [qs, says] of [
      ['limit=1001', /limit.*1 to 1000/],
      ['limit=0', /limit/],
      ['offset=-1', /offset/],
      ['sort=loudness', /sort="loudness" is not one of/],
      ['order=up', /order="up" must be asc or desc/],
      ['status=sleeping', /status="sleeping"/],
      ['cursor=%%%', /cursor/],
      [`cursor=${first.next_cursor}`, /cursor belongs to sort=name/],
      [`sort=name&cursor=${first.next_cursor}&offset=5`, /offset or cursor/],
      ['ids=j1', /not a job key/],
      ['ranked=t1/j1', /sort=ranked/],
      ['colour=red', /unknown parameter "colour"/],
    ] as const) {
      const body = await get(`/api/tw/v1/jobs?${qs}`, 400);
      expect(body.error, qs).toMatch(says);
    }
  });
});

describe('GET /api/tw/v1/fleet with paging', () => {
  it('answers a page with live numbers, the count, the filter menus, status counts and the fleet’s GPUs now', async () => {
    const d = (await get('/api/tw/v1/fleet?limit=20&sort=last_sample')).data;
    expect(d.total).toBe(JOBS);
    expect(d.jobs).toHaveLength(20);
    expect(d.jobs[0]).toMatchObject({ jobId: 'j00000', gpus: 2, busyGpus: 1, idleGpus: 1 });
    expect(d.jobs[1]).toMatchObject({ jobId: 'j00001', busyGpus: 2, idleGpus: 0 });
    expect(d.facets.projects).toEqual(['proj-0', 'proj-1', 'proj-2', 'proj-3', 'proj-4', 'proj-5']);
    expect(d.facets.owners).toHaveLength(13);
    expect(d.facets.tags).toEqual(['even', 'odd']);
    expect(d.facets.status.running).toBe(WITH_DATA);
    expect(d.tenants).toEqual(['t1']);
    // 60 jobs × 2 GPUs report; every fifth job has one idle GPU.
    expect(d.gpus).toMatchObject({ gpus: 120, idleGpus: 12, busyGpus: 108 });
    // The health order: the listed jobs first, in the given order, then by activity.
    const ranked = (await get('/api/tw/v1/fleet?limit=4&sort=ranked&ranked=t1/j01500,t1/j00007')).data;
    expect(ids(ranked)).toEqual(['j01500', 'j00007', 'j00000', 'j00001']);
    const only = (await get('/api/tw/v1/fleet?ids=t1/j01500,t1/j00007&sort=job_id')).data;
    expect(ids(only)).toEqual(['j00007', 'j01500']);
  });
});

describe('GET /api/tw/v1/heatmap of a large fleet', () => {
  const base = `/api/tw/v1/heatmap?metric=gpu_utilization_ratio&by=tenant,job_id&start=${NOW - 600_000}&end=${NOW}&cols=60`;

  it('groups the jobs by project when more have data than rows fit, and by job when they fit', async () => {
    const grouped = (await get(`${base}&group_by=project&max_rows=40`)).data;
    expect(grouped.grouped).toBe('project');
    expect(grouped.by).toEqual(['project']);
    expect(grouped.jobs).toBe(WITH_DATA);
    expect(grouped.rows.map((r: { labels: { project: string } }) => r.labels.project)).toEqual([
      'proj-0',
      'proj-1',
      'proj-2',
      'proj-3',
      'proj-4',
      'proj-5',
    ]);
    expect(grouped.row_jobs).toEqual([10, 10, 10, 10, 10, 10]);
    // Each group's row holds its jobs' GPUs: 10 jobs × 2.
    expect(grouped.rows[0].series).toBe(20);
    const fits = (await get(`${base}&group_by=project&max_rows=100`)).data;
    expect(fits.grouped).toBeNull();
    expect(fits.rows).toHaveLength(WITH_DATA);
  });

  it('keeps the page’s job filters: a drill-down into a project shows its jobs', async () => {
    const drill = (await get(`${base}&group_by=project&max_rows=40&job.project=proj-2`)).data;
    expect(drill.grouped).toBeNull();
    expect(drill.rows.map((r: { labels: { job_id: string } }) => r.labels.job_id)).toEqual(
      jobs
        .slice(0, WITH_DATA)
        .filter((j) => j.project === 'proj-2')
        .map((j) => j.jobId),
    );
    const searched = (await get(`${base}&job.search=j0001`)).data;
    expect(searched.rows).toHaveLength(10);
    const none = (await get(`${base}&job.status=failed`)).data;
    expect(none.rows).toHaveLength(0);
    // Node rows keep the filters too.
    const nodes = (
      await get(`${base.replace('by=tenant,job_id', 'by=tenant,node_id')}&job.ids=t1/j00003,t1/j00004`)
    ).data;
    expect(nodes.rows.map((r: { labels: { node_id: string } }) => r.labels.node_id)).toEqual(['n3', 'n4']);
  });

  it('refuses grouping it cannot do', async () => {
    expect((await get(`${base}&group_by=colour`, 400)).error).toMatch(
      /group_by="colour" must be project or owner/,
    );
    expect((await get(`${base}&max_rows=5`, 400)).error).toMatch(/max_rows needs group_by/);
    expect(
      (await get(base.replace('by=tenant,job_id', 'by=node_id') + '&group_by=owner', 400)).error,
    ).toMatch(/group_by needs rows by job_id/);
  });
});
