/**
 * Pages of jobs (issue 17), one suite against both stores: every sort key in both orders against a reference
 * sort in JavaScript, offset and cursor paging that together give each job exactly once, the filters, the
 * count, the ranked order and the facets — on SQLite and on a real PostgreSQL.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeWithPostgres, startPostgres, type TestPostgres } from '../../test/support/postgres.js';
import type { JobInfo } from '../model/job.js';
import { insertJobsBulk, JOB_SORT_KEYS, type JobPageQuery, type JobSortKey } from './job-page.js';
import { JobStore } from './jobs.js';
import { MetaStore } from './meta-store.js';
import { PgJobRepository, PgMeta } from './postgres/index.js';
import { type RunSummary, summaryToRow, summaryUpsertSql } from './run-summary.js';

const SILENT_AFTER_MS = 60_000;
const NOW = 1_800_000_000_000;
const N = 240;

interface Harness {
  readonly store: JobStore;
  seed(jobs: JobInfo[]): Promise<void>;
  /** Writes the kept live numbers of jobs (as the processor's flushes do). */
  summaries(rows: readonly { tenant: string; jobId: string; summary: RunSummary }[]): Promise<void>;
  close(): Promise<void>;
}

const backends: {
  name: string;
  describe: (name: string, body: () => void) => void;
  open(): Promise<Harness>;
}[] = [
  {
    name: 'sqlite',
    describe,
    async open() {
      const meta = new MetaStore(path.join(mkdtempSync(path.join(os.tmpdir(), 'tw-job-page-')), 'meta.db'));
      const store = new JobStore(meta, SILENT_AFTER_MS);
      return {
        store,
        async seed(jobs) {
          insertJobsBulk(meta.db, jobs);
        },
        async summaries(rows) {
          const upsert = meta.db.prepare(summaryUpsertSql('sqlite'));
          for (const r of rows) upsert.run(summaryToRow(r.tenant, r.jobId, r.summary));
        },
        async close() {
          meta.close();
        },
      };
    },
  },
  {
    name: 'postgres',
    describe: describeWithPostgres,
    async open() {
      const server: TestPostgres = await startPostgres();
      const db = await PgMeta.open({ url: server.url, poolSize: 2 });
      const repo = new PgJobRepository(db, SILENT_AFTER_MS);
      return {
        store: new JobStore(repo),
        async seed(jobs) {
          await repo.upsert(jobs);
        },
        async summaries(rows) {
          await db.query(summaryUpsertSql('pg'), [
            JSON.stringify(rows.map((r) => summaryToRow(r.tenant, r.jobId, r.summary))),
          ]);
        },
        async close() {
          await db.close();
          await server.stop();
        },
      };
    },
  },
];

/** A varied fleet: ties on every column, missing times and world sizes, silent running jobs (unknown). */
function fleet(tenant: string): JobInfo[] {
  const statuses = ['running', 'completed', 'failed', 'stalled', 'queued'] as const;
  return Array.from({ length: N }, (_, i) => ({
    tenant,
    jobId: `job-${String(i).padStart(4, '0')}`,
    name: `model-${i % 17}`,
    project: `proj-${i % 7}`,
    owner: `user-${i % 11}`,
    framework: 'pytorch',
    worldSize: i % 9 === 0 ? null : 8 * (1 + (i % 5)),
    config: {},
    tags: i % 3 === 0 ? ['nightly'] : ['adhoc', `t${i % 4}`],
    metricKeys: {},
    status: statuses[i % statuses.length]!,
    startMs: i % 13 === 0 ? null : NOW - ((i * 7919) % 1000) * 60_000,
    endMs: null,
    // Every fourth running job is silent for ten minutes: readers see it as unknown.
    lastSampleMs: i % 10 === 0 ? null : NOW - (i % 4 === 0 ? 600_000 : (i * 104_729) % 50_000),
  }));
}

/**
 * Kept live numbers of job `i`, varied: some jobs have none, ties, a NaN loss (every 11th), throughput in
 * tokens for some and samples for others.
 */
function summaryOf(i: number): RunSummary {
  const at = (v: number) => ({ lastMs: NOW - 1000, last: v, best: Number.isFinite(v) ? v : null });
  if (i % 5 === 0) return {};
  const s: RunSummary = {
    step: at((i * 3) % 100),
    loss: at(i % 11 === 0 ? Number.NaN : ((i * 7) % 23) / 10),
  };
  if (i % 4 !== 1) s.gpu_utilization = at(((i * 37) % 100) / 100);
  if (i % 3 === 0) s.tokens_per_second = at(((i * 13) % 50) * 100);
  if (i % 7 !== 2) s.samples_per_second = at((i % 7) * 10);
  return s;
}

/** The sort value of a live number in the reference: missing values last either way, a NaN loss the worst. */
function summaryValue(
  j: JobInfo,
  key: 'util' | 'throughput' | 'loss' | 'step',
  order: 'asc' | 'desc',
): number {
  const s = summaryOf(Number(j.jobId.slice(4)));
  const missing = order === 'asc' ? 1e308 : -1e308;
  if (key === 'util') return s.gpu_utilization?.last ?? missing;
  if (key === 'throughput') return s.tokens_per_second?.last ?? s.samples_per_second?.last ?? missing;
  if (key === 'step') return s.step?.last ?? missing;
  if (!s.loss) return missing;
  return Number.isNaN(s.loss.last) ? 1e307 : s.loss.last;
}

const live = (j: JobInfo): JobInfo =>
  j.status === 'running' && j.lastSampleMs !== null && NOW - j.lastSampleMs > SILENT_AFTER_MS
    ? { ...j, status: 'unknown' }
    : j;

function sortValue(
  j: JobInfo,
  key: JobSortKey,
  ranked: readonly string[],
  order: 'asc' | 'desc',
): string | number {
  switch (key) {
    case 'util':
    case 'throughput':
    case 'loss':
    case 'step':
      return summaryValue(j, key, order);
    case 'last_sample':
      return j.lastSampleMs ?? j.startMs ?? 0;
    case 'start':
      return j.startMs ?? 0;
    case 'gpus':
      return j.worldSize ?? 0;
    case 'job_id':
      return j.jobId;
    case 'ranked': {
      const at = ranked.indexOf(`${j.tenant}/${j.jobId}`);
      return (at < 0 ? 0 : ranked.length - at) * 1e13 + (j.lastSampleMs ?? j.startMs ?? 0);
    }
    default:
      return j[key];
  }
}

/** The reference order: sort value, then tenant, then job id, all in the same direction. */
function reference(jobs: JobInfo[], key: JobSortKey, order: 'asc' | 'desc', ranked: string[] = []): string[] {
  const cmp = (a: string | number, b: string | number) => (a < b ? -1 : a > b ? 1 : 0);
  const sign = order === 'asc' ? 1 : -1;
  return [...jobs]
    .sort(
      (a, b) =>
        sign *
        (cmp(sortValue(a, key, ranked, order), sortValue(b, key, ranked, order)) ||
          cmp(a.tenant, b.tenant) ||
          cmp(a.jobId, b.jobId)),
    )
    .map((j) => j.jobId);
}

let tenantSeq = 0;

for (const backend of backends) {
  backend.describe(`job pages (${backend.name})`, () => {
    let h: Harness;
    const tenant = `pages${++tenantSeq}`;
    const jobs = fleet(tenant).map(live);
    beforeAll(async () => {
      h = await backend.open();
      await h.seed(fleet(tenant));
      await h.summaries(fleet(tenant).map((j, i) => ({ tenant, jobId: j.jobId, summary: summaryOf(i) })));
      // Another tenant's jobs must never show.
      await h.seed(fleet('other').slice(0, 30));
    }, 60_000);
    afterAll(async () => {
      await h?.close();
    });

    const page = (q: Partial<JobPageQuery>) =>
      h.store.page(tenant, NOW, { sort: 'last_sample', order: 'desc', limit: 50, ...q });

    it('sorts by every key in both orders, as the reference sort does', async () => {
      for (const sort of JOB_SORT_KEYS)
        for (const order of ['asc', 'desc'] as const) {
          const ranked =
            sort === 'ranked' ? [`${tenant}/job-0007`, `${tenant}/job-0100`, `${tenant}/job-0003`] : [];
          const p = await page({ sort, order, limit: N, ranked });
          expect(
            p.jobs.map((j) => j.jobId),
            `${sort} ${order}`,
          ).toEqual(reference(jobs, sort, order, ranked));
          expect(p.total).toBe(N);
        }
    });

    it('pages by offset and by cursor: every job once, in order, and the same pages both ways', async () => {
      for (const sort of ['name', 'gpus', 'status', 'last_sample', 'loss', 'util'] as const) {
        const byOffset: string[] = [];
        const byCursor: string[] = [];
        for (let offset = 0; offset < N; offset += 50) {
          const p = await page({ sort, order: 'asc', offset });
          expect(p.total).toBe(N);
          byOffset.push(...p.jobs.map((j) => j.jobId));
        }
        let after: JobPageQuery['after'];
        for (let i = 0; i < 10; i++) {
          const p = await page({ sort, order: 'asc', ...(after ? { after } : {}) });
          byCursor.push(...p.jobs.map((j) => j.jobId));
          if (!p.next) break;
          after = p.next;
        }
        expect(byOffset, sort).toEqual(reference(jobs, sort, 'asc'));
        expect(byCursor, sort).toEqual(byOffset);
      }
    });

    it('filters by status (as readers see it), search, project, owner, name, start time, tag and job keys, and counts the matches', async () => {
      const check = async (q: Partial<JobPageQuery>, expected: JobInfo[]) => {
        const p = await page({ ...q, sort: 'job_id', order: 'asc', limit: 1000 });
        expect(
          p.jobs.map((j) => j.jobId),
          JSON.stringify(q),
        ).toEqual(expected.map((j) => j.jobId).sort());
        expect(p.total).toBe(expected.length);
        const small = await page({ ...q, limit: 3 });
        expect(small.total).toBe(expected.length);
        expect(small.jobs.length).toBe(Math.min(3, expected.length));
      };
      await check(
        { status: 'unknown' },
        jobs.filter((j) => j.status === 'unknown'),
      );
      await check(
        { status: 'running' },
        jobs.filter((j) => j.status === 'running'),
      );
      await check(
        { status: 'stalled' },
        jobs.filter((j) => j.status === 'stalled'),
      );
      await check(
        { search: 'JOB-01' },
        jobs.filter((j) => j.jobId.startsWith('job-01')),
      );
      await check({ search: '100%' }, []);
      await check(
        { project: 'proj-3' },
        jobs.filter((j) => j.project === 'proj-3'),
      );
      await check(
        { owner: 'user-2', status: 'failed' },
        jobs.filter((j) => j.owner === 'user-2' && j.status === 'failed'),
      );
      await check(
        { tag: 'nightly' },
        jobs.filter((j) => j.tags.includes('nightly')),
      );
      await check(
        { tag: 't1' },
        jobs.filter((j) => j.tags.includes('t1')),
      );
      await check(
        { name: 'model-4' },
        jobs.filter((j) => j.name === 'model-4'),
      );
      // Compare's previous runs: started at or before a time (jobs without a start time are not).
      const cut = NOW - 400 * 60_000;
      await check(
        { name: 'model-4', startedBefore: cut },
        jobs.filter((j) => j.name === 'model-4' && j.startMs !== null && j.startMs <= cut),
      );
      const some = [jobs[5]!, jobs[77]!, jobs[200]!];
      await check({ ids: [...some.map((j) => `${tenant}/${j.jobId}`), 'other/job-0005'] }, some);
      await check({ ids: [] }, []);
      await check(
        { project: 'proj-1', exclude: [`${tenant}/job-0001`] },
        jobs.filter((j) => j.project === 'proj-1' && j.jobId !== 'job-0001'),
      );
    });

    it('answers the status counts and filter menus over the whole tenant', async () => {
      const f = await h.store.facets(tenant, NOW);
      const counts: Record<string, number> = {};
      for (const j of jobs) counts[j.status] = (counts[j.status] ?? 0) + 1;
      expect(f.byStatus).toEqual(counts);
      expect(f.projects).toEqual([...new Set(jobs.map((j) => j.project))].sort());
      expect(f.owners).toEqual([...new Set(jobs.map((j) => j.owner))].sort());
      expect(f.tags).toEqual(['adhoc', 'nightly', 't0', 't1', 't2', 't3']);
      expect(f.tenants).toEqual([tenant]);
      expect((await h.store.facets(null, NOW)).tenants).toEqual(['other', tenant].sort());
    });

    it('keeps the facet counts as jobs are written: new jobs, merges that change them, rows written again', async () => {
      const t = `${tenant}-writes`;
      const s = h.store;
      s.applyEvent(t, {
        kind: 'start',
        jobId: 'a',
        timeMs: NOW - 5000,
        project: 'p1',
        owner: 'u1',
        tags: ['x'],
      });
      s.applyEvent(t, {
        kind: 'start',
        jobId: 'b',
        timeMs: NOW - 5000,
        project: 'p1',
        owner: 'u2',
        tags: ['x', 'y'],
      });
      s.noteSamples(t, 'a', NOW - 2000, NOW - 1000);
      await s.flush();
      expect(await s.facets(t, NOW)).toEqual({
        byStatus: { running: 2 },
        owners: ['u1', 'u2'],
        projects: ['p1'],
        tags: ['x', 'y'],
        tenants: [t],
      });
      // a fails; b changes owner and project and gains a tag: the old values' counts go down to nothing.
      s.applyEvent(t, { kind: 'finish', jobId: 'a', timeMs: NOW, status: 'failed' });
      s.applyEvent(t, { kind: 'update', jobId: 'b', timeMs: NOW, owner: 'u3', project: 'p2', tags: ['z'] });
      s.noteSamples(t, 'b', NOW - 1000, NOW - 500);
      await s.flush();
      expect(await s.facets(t, NOW)).toEqual({
        byStatus: { failed: 1, running: 1 },
        owners: ['u1', 'u3'],
        projects: ['p1', 'p2'],
        tags: ['x', 'y', 'z'],
        tenants: [t],
      });
      // Rows written whole (an import): a again with another owner, and c, running but silent (unknown).
      const row = (jobId: string, over: Partial<JobInfo>): JobInfo => ({
        ...fleet(t)[0]!,
        jobId,
        project: 'p1',
        tags: ['x'],
        status: 'failed',
        startMs: NOW - 5000,
        lastSampleMs: NOW - 1000,
        ...over,
      });
      await h.seed([
        row('a', { owner: 'u9', endMs: NOW }),
        row('c', { owner: 'u3', project: 'p2', tags: ['y'], status: 'running', lastSampleMs: NOW - 120_000 }),
      ]);
      expect(await s.facets(t, NOW)).toEqual({
        byStatus: { failed: 1, running: 1, unknown: 1 },
        owners: ['u3', 'u9'],
        projects: ['p1', 'p2'],
        tags: ['x', 'y', 'z'],
        tenants: [t],
      });
      expect((await s.facets(null, NOW)).tenants).toContain(t);
    });

    it('lists the identity and groups of every matching job, unpaged', async () => {
      const rows = await h.store.groups(tenant, NOW, { project: 'proj-2' });
      expect(rows.map((r) => r.job_id).sort()).toEqual(
        jobs.filter((j) => j.project === 'proj-2').map((j) => j.jobId),
      );
      expect(rows.every((r) => r.project === 'proj-2' && r.owner.startsWith('user-'))).toBe(true);
    });
  });
}
