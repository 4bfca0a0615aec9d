/**
 * `GET /api/tw/v1/fleet` without paging lists every job, and compare finds a live run however large the fleet
 * (issue 17). The list used to stop at the 10,000 most recently active jobs: in a fleet of more, a live run
 * that had gone quiet (hung for 20 minutes) fell out of it while an older run of its name, active a minute
 * ago, stayed — and compare, which looked runs up in that list, could not find the live one.
 *
 * Compare now asks the server (the dashboard's own lookup, `findPreviousRuns`, over this app): the base by
 * its id and its previous runs from pages filtered by name or project and start time.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnonymousAuthenticator, installAccessControl } from '../auth/index.js';
import { insertJobsBulk, JobStore, MetaStore } from '../meta/index.js';
import type { JobSummary } from '../model/api-types.js';
import { TrainwatchError } from '../model/errors.js';
import type { JobInfo } from '../model/job.js';
import { MemoryStorage } from '../storage/index.js';
import { findPreviousRuns, type RunLookup, runPageParams } from '../ui/lib/previous-runs.js';
import { registerDashboardApi } from './dashboard.js';
import { registerRestApi } from './rest.js';

/** More jobs active in the last ten minutes than the old list held. */
const BUSY_JOBS = 10_050;
const NOW = Math.floor(Date.now() / 60_000) * 60_000;
const LLAMA = { model: 'llama-7b', learning_rate: 3e-4, precision: 'bf16' };

function job(jobId: string, over: Partial<JobInfo>): JobInfo {
  return {
    tenant: 't1',
    jobId,
    name: jobId,
    project: 'other',
    owner: 'o',
    framework: 'pytorch',
    worldSize: 8,
    config: {},
    tags: [],
    metricKeys: {},
    status: 'running',
    startMs: NOW - 3_600_000,
    endMs: null,
    lastSampleMs: NOW,
    ...over,
  };
}

/** The live run: started 50 minutes ago, hung 20 minutes ago (no sample since), still running. */
const live = job('llama-7b-pretrain-live', {
  name: 'llama-7b-pretrain',
  project: 'llm',
  config: LLAMA,
  startMs: NOW - 50 * 60_000,
  lastSampleMs: NOW - 20 * 60_000,
});
/** Its previous run: started two hours ago, finished a minute ago. */
const older = job('llama-7b-pretrain-older', {
  name: 'llama-7b-pretrain',
  project: 'llm',
  config: LLAMA,
  status: 'completed',
  startMs: NOW - 120 * 60_000,
  endMs: NOW - 60_000,
  lastSampleMs: NOW - 60_000,
});
/** Same project, another model: never a previous run of llama. */
const gpt = job('gpt-1b3-sft-a', {
  name: 'gpt-1b3-sft',
  project: 'llm',
  config: { model: 'gpt-1b3', learning_rate: 3e-4, precision: 'bf16' },
  startMs: NOW - 90 * 60_000,
});

let app: FastifyInstance;

beforeAll(async () => {
  const meta = new MetaStore(path.join(mkdtempSync(path.join(os.tmpdir(), 'tw-fleet-list-')), 'meta.db'));
  const store = new JobStore(meta, 30 * 60_000);
  insertJobsBulk(meta.db, [
    ...Array.from({ length: BUSY_JOBS }, (_, i) =>
      job(`busy-${String(i).padStart(5, '0')}`, { lastSampleMs: NOW - (i % 600) * 1000 }),
    ),
    live,
    older,
    gpt,
  ]);
  const storage = new MemoryStorage();
  const auth = new AnonymousAuthenticator('t1');
  app = Fastify();
  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof TrainwatchError)
      return reply.code(err.status).send({ status: 'error', errorType: err.kind.code, error: err.message });
    return reply.code(500).send({ status: 'error', error: String(err) });
  });
  installAccessControl(app, auth);
  registerRestApi(app, { auth, storage, jobs: store });
  registerDashboardApi(app, { auth, storage, jobs: store });
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

/** The dashboard's compare lookups, answered by this app instead of a browser's fetch. */
const lookup: RunLookup<JobSummary> = {
  job: async (id) => {
    const res = await app.inject({ method: 'GET', url: `/api/tw/v1/jobs/${encodeURIComponent(id)}` });
    if (res.statusCode === 404) return undefined;
    expect(res.statusCode, res.body).toBe(200);
    return res.json().data.job as JobSummary;
  },
  page: async (q) => (await get(`/api/tw/v1/fleet?${runPageParams(q)}`)).data.jobs as JobSummary[],
};

describe('GET /api/tw/v1/fleet without paging parameters', () => {
  it('lists every job, the live run that went quiet included', async () => {
    const d = (await get('/api/tw/v1/fleet')).data;
    const ids = new Set(d.jobs.map((j: JobSummary) => j.jobId));
    expect(d.jobs).toHaveLength(BUSY_JOBS + 3);
    expect(ids.has(live.jobId)).toBe(true);
    expect(ids.has(older.jobId)).toBe(true);
    expect(d.jobs.find((j: JobSummary) => j.jobId === live.jobId)).toMatchObject({
      name: 'llama-7b-pretrain',
      status: 'running',
    });
  });
});

describe('compare in a fleet of more than 10,000 jobs', () => {
  it('finds the live run by its id, and its previous runs of the same model', async () => {
    const r = await findPreviousRuns(lookup, live.jobId, 5);
    expect(r.ids).toEqual([live.jobId, older.jobId]);
    expect(r.how).toMatch(/1 previous run named “llama-7b-pretrain”/);
    // From the older run, the live one started later: no previous run.
    expect((await findPreviousRuns(lookup, older.jobId, 5)).ids).toEqual([older.jobId]);
    // An unknown id is named as such.
    expect(await findPreviousRuns(lookup, 'no-such-run', 5)).toEqual({
      ids: ['no-such-run'],
      how: 'nothing: there is no job no-such-run',
    });
  });

  it('filters pages by exact name and start time, and refuses a bad start time', async () => {
    const named = (await get('/api/tw/v1/fleet?name=llama-7b-pretrain&sort=start&limit=10')).data;
    expect(named.total).toBe(2);
    expect(named.jobs.map((j: JobSummary) => j.jobId)).toEqual([live.jobId, older.jobId]);
    const before = (
      await get(`/api/tw/v1/jobs?project=llm&started_before=${NOW - 60 * 60_000}&sort=start&limit=10`)
    ).data;
    expect(before.jobs.map((j: JobSummary) => j.jobId)).toEqual([gpt.jobId, older.jobId]);
    const bad = await get('/api/tw/v1/jobs?started_before=yesterday', 400);
    expect(bad.error).toMatch(/started_before="yesterday" must be an integer/);
  });
});
