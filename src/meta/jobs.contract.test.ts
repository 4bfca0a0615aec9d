/**
 * The job-metadata contract, one data-driven suite run against both stores: SQLite (two connections to one
 * file stand for two processes) and a real PostgreSQL (two pools). Every test uses its own tenant, so the
 * tests of one backend share one database.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeWithPostgres, startPostgres, type TestPostgres } from '../../test/support/postgres.js';
import type { JobEvent, JobInfo } from '../model/job.js';
import { type JobDelta, type JobRowStore, JobStore, mergeJobDelta } from './jobs.js';
import { MetaStore } from './meta-store.js';
import { PgJobRepository, PgMeta } from './postgres/index.js';
import { SqliteJobRows } from './sqlite-jobs.js';

const SILENT_AFTER_MS = 60_000;

/** One backend: `writer()` opens a repository on a new connection (pool), as another process would. */
interface Harness {
  writer(): JobStore;
  close(): Promise<void>;
}

interface Backend {
  readonly name: string;
  readonly describe: (name: string, body: () => void) => void;
  open(): Promise<Harness>;
}

const backends: Backend[] = [
  {
    name: 'sqlite',
    describe,
    async open() {
      const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'tw-jobs-contract-')), 'meta.db');
      const stores: MetaStore[] = [];
      return {
        writer() {
          const meta = new MetaStore(file);
          stores.push(meta);
          return new JobStore(meta, SILENT_AFTER_MS);
        },
        async close() {
          for (const m of stores) m.close();
        },
      };
    },
  },
  {
    name: 'postgres',
    describe: describeWithPostgres,
    async open() {
      const server: TestPostgres = await startPostgres();
      const pools: PgMeta[] = [];
      // Migrate once up front: writers then open without racing the migration.
      pools.push(await PgMeta.open({ url: server.url, poolSize: 2 }));
      return {
        writer() {
          const db = new PgMeta({ url: server.url, poolSize: 2 });
          pools.push(db);
          return new JobStore(new PgJobRepository(db, SILENT_AFTER_MS));
        },
        async close() {
          for (const p of pools) await p.close();
          await server.stop();
        },
      };
    },
  },
];

let tenantSeq = 0;
const freshTenant = () => `t${++tenantSeq}`;

const start = (jobId: string, timeMs: number, fields: Partial<JobEvent> = {}): JobEvent => ({
  kind: 'start',
  jobId,
  timeMs,
  ...fields,
});

for (const backend of backends) {
  backend.describe(`job repository contract (${backend.name})`, () => {
    let h: Harness;
    beforeAll(async () => {
      h = await backend.open();
    }, 60_000);
    afterAll(async () => {
      await h?.close();
    });

    it('merges start events from every rank: earliest start, config by key, tags a union', async () => {
      const t = freshTenant();
      const jobs = h.writer();
      jobs.applyEvent(t, start('j', 2000, { name: 'bert', config: { lr: 1 }, tags: ['a'] }));
      jobs.applyEvent(t, start('j', 1000, { config: { layers: 2 }, tags: ['b', 'a'], worldSize: 8 }));
      await jobs.flush();
      expect(await jobs.get(t, 'j', 3000)).toEqual<JobInfo>({
        tenant: t,
        jobId: 'j',
        name: 'bert',
        project: '',
        owner: '',
        framework: '',
        worldSize: 8,
        config: { lr: 1, layers: 2 },
        tags: ['a', 'b'],
        status: 'running',
        startMs: 1000,
        endMs: null,
        lastSampleMs: null,
        metricKeys: {},
      });
    });

    // Each case: batches of operations, one flush after each batch (same writer), and what `get` returns.
    type Op = { ev: JobEvent } | { samples: [number, number] };
    const cases: { name: string; batches: Op[][]; nowMs: number; expected: Partial<JobInfo> }[] = [
      {
        name: 'samples alone create a running job named by its id',
        batches: [[{ samples: [100, 200] }]],
        nowMs: 300,
        expected: { name: 'j', status: 'running', startMs: 100, lastSampleMs: 200 },
      },
      {
        name: 'samples turn a queued job running, in one flush or across flushes',
        batches: [
          [{ ev: { kind: 'update', jobId: 'j', timeMs: 0, status: 'queued' } }],
          [{ samples: [10, 20] }],
        ],
        nowMs: 30,
        expected: { status: 'running', startMs: 0, lastSampleMs: 20 },
      },
      {
        name: 'a final status and its end are never left (later start, update, finish, samples)',
        batches: [
          [{ ev: { kind: 'finish', jobId: 'j', timeMs: 30, status: 'failed' } }],
          [
            { ev: start('j', 40) },
            { ev: { kind: 'update', jobId: 'j', timeMs: 41, status: 'stalled' } },
            { ev: { kind: 'finish', jobId: 'j', timeMs: 50, status: 'completed' } },
            { samples: [45, 60] },
          ],
        ],
        nowMs: 70,
        expected: { status: 'failed', endMs: 30, startMs: 30, lastSampleMs: 60 },
      },
      {
        name: 'an update status stays when only samples follow',
        batches: [
          [{ ev: { kind: 'update', jobId: 'j', timeMs: 5, status: 'stalled' } }],
          [{ samples: [6, 7] }],
        ],
        nowMs: 8,
        expected: { status: 'stalled', lastSampleMs: 7 },
      },
      {
        name: 'a finish without a final status completes the job',
        batches: [[{ ev: start('j', 1) }, { ev: { kind: 'finish', jobId: 'j', timeMs: 9 } }]],
        nowMs: 10,
        expected: { status: 'completed', endMs: 9 },
      },
      {
        name: 'newest non-empty scalars win; an empty or placeholder name keeps the announced one',
        batches: [
          [
            {
              ev: start('j', 1, { name: 'a', owner: 'ann', project: 'p', framework: 'torch', worldSize: 4 }),
            },
          ],
          [{ ev: { kind: 'update', jobId: 'j', timeMs: 2, name: 'j', owner: '', worldSize: 0 } }],
          [
            {
              ev: {
                kind: 'update',
                jobId: 'j',
                timeMs: 3,
                owner: 'bob',
                metricKeys: { train_loss: 'train/loss' },
              },
            },
          ],
        ],
        nowMs: 4,
        expected: { name: 'a', owner: 'bob', project: 'p', framework: 'torch', worldSize: 4 },
      },
      {
        name: 'replaying a batch is harmless',
        batches: [
          [{ ev: start('j', 5, { config: { a: 1 }, tags: ['x'] }) }, { samples: [5, 9] }],
          [{ ev: start('j', 5, { config: { a: 1 }, tags: ['x'] }) }, { samples: [5, 9] }],
        ],
        nowMs: 10,
        expected: { config: { a: 1 }, tags: ['x'], startMs: 5, lastSampleMs: 9, status: 'running' },
      },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const t = freshTenant();
        const jobs = h.writer();
        for (const batch of c.batches) {
          for (const op of batch)
            if ('ev' in op) jobs.applyEvent(t, op.ev);
            else jobs.noteSamples(t, 'j', op.samples[0], op.samples[1]);
          await jobs.flush();
        }
        expect(await jobs.get(t, 'j', c.nowMs)).toMatchObject(c.expected);
      });
    }

    it('a writer that never read the job (a partition handoff) cannot undo what another stored', async () => {
      const t = freshTenant();
      const first = h.writer();
      first.applyEvent(t, start('j', 1000, { name: 'bert', owner: 'ann', config: { lr: 1 }, tags: ['a'] }));
      first.noteSamples(t, 'j', 1000, 2000);
      await first.flush();
      // The partition moves: the new owner only sees samples and a rank's late start.
      const second = h.writer();
      second.noteSamples(t, 'j', 2500, 3000);
      second.applyEvent(t, start('j', 1500, { config: { layers: 2 } }));
      await second.flush();
      expect(await second.get(t, 'j', 3000)).toMatchObject({
        name: 'bert',
        owner: 'ann',
        config: { lr: 1, layers: 2 },
        tags: ['a'],
        startMs: 1000,
        lastSampleMs: 3000,
        status: 'running',
      });
      // The new owner finishes the job; the old one, whose memory of it is stale, keeps writing late data.
      second.applyEvent(t, { kind: 'finish', jobId: 'j', timeMs: 4000, status: 'completed' });
      second.applyEvent(t, { kind: 'update', jobId: 'j', timeMs: 3900, config: { lr: 2 } });
      await second.flush();
      first.applyEvent(t, start('j', 1200));
      first.applyEvent(t, { kind: 'update', jobId: 'j', timeMs: 3950, status: 'stalled' });
      first.noteSamples(t, 'j', 1100, 2900);
      await first.flush();
      expect(await first.get(t, 'j', 5000)).toMatchObject({
        name: 'bert',
        config: { lr: 2, layers: 2 },
        status: 'completed',
        endMs: 4000,
        startMs: 1000,
        lastSampleMs: 3000,
      });
    });

    it('two writers flushing the same job at once lose neither one’s fields', async () => {
      const t = freshTenant();
      const [a, b] = [h.writer(), h.writer()];
      a.applyEvent(t, start('j', 10, { name: 'seed' }));
      await a.flush();
      for (let i = 0; i < 5; i++) {
        a.applyEvent(t, {
          kind: 'update',
          jobId: 'j',
          timeMs: 20 + i,
          config: { [`a${i}`]: i },
          tags: [`a${i}`],
        });
        b.applyEvent(t, {
          kind: 'update',
          jobId: 'j',
          timeMs: 20 + i,
          config: { [`b${i}`]: i },
          tags: [`b${i}`],
        });
        b.noteSamples(t, 'j', 5, 100 + i);
        await Promise.all([a.flush(), b.flush()]);
      }
      const job = (await a.get(t, 'j', 200))!;
      expect(Object.keys(job.config).sort()).toEqual([
        'a0',
        'a1',
        'a2',
        'a3',
        'a4',
        'b0',
        'b1',
        'b2',
        'b3',
        'b4',
      ]);
      expect([...job.tags].sort()).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'b0', 'b1', 'b2', 'b3', 'b4']);
      expect(job).toMatchObject({ name: 'seed', startMs: 5, lastSampleMs: 104 });
    });

    it('lists by tenant, most recently active first, with search, status (unknown included) and limit', async () => {
      const [t, other] = [freshTenant(), freshTenant()];
      const jobs = h.writer();
      jobs.applyEvent(t, start('x_1', 1, { name: 'Vision', owner: 'ann' }));
      jobs.noteSamples(t, 'x_1', 1, 100_000);
      jobs.applyEvent(t, start('old', 1, { name: 'old' }));
      jobs.noteSamples(t, 'old', 1, 1000);
      jobs.applyEvent(t, start('done', 1));
      jobs.applyEvent(t, { kind: 'finish', jobId: 'done', timeMs: 50 });
      jobs.applyEvent(other, start('x_1', 1, { name: 'theirs' }));
      await jobs.flush();
      const now = 100_500; // `old` is silent for longer than SILENT_AFTER_MS: unknown
      expect((await jobs.list(t, now)).map((j) => [j.jobId, j.status])).toEqual([
        ['x_1', 'running'],
        ['old', 'unknown'],
        ['done', 'completed'],
      ]);
      expect((await jobs.list(t, now, { search: 'VISION' })).map((j) => j.jobId)).toEqual(['x_1']);
      expect((await jobs.list(t, now, { search: 'ANN' })).map((j) => j.jobId)).toEqual(['x_1']);
      expect(await jobs.list(t, now, { search: '%' })).toHaveLength(0);
      expect((await jobs.list(t, now, { search: '_' })).map((j) => j.jobId)).toEqual(['x_1']);
      expect((await jobs.list(t, now, { status: 'unknown' })).map((j) => j.jobId)).toEqual(['old']);
      // The status filter applies before the limit.
      expect((await jobs.list(t, now, { status: 'completed', limit: 1 })).map((j) => j.jobId)).toEqual([
        'done',
      ]);
      expect((await jobs.list(t, now, { limit: 2 })).map((j) => j.jobId)).toEqual(['x_1', 'old']);
      const all = (await jobs.list(null, now)).filter((j) => j.tenant === t || j.tenant === other);
      expect(all.map((j) => `${j.tenant}/${j.jobId}`).sort()).toEqual(
        [`${other}/x_1`, `${t}/done`, `${t}/old`, `${t}/x_1`].sort(),
      );
      expect((await jobs.get(other, 'x_1', now))!.name).toBe('theirs');
      expect(await jobs.get(t, 'nope', now)).toBeUndefined();
      expect((await jobs.get(t, 'old', 1500))!.status).toBe('running');
    });

    it('keeps the deltas of a failed flush and writes them with the next one', async () => {
      const t = freshTenant();
      const real = h.writer().rows;
      let failNext = true;
      const flaky: JobRowStore = {
        upsert: (deltas: readonly JobDelta[], signal?: AbortSignal) => {
          if (failNext) {
            failNext = false;
            return Promise.reject(new Error('store unreachable'));
          }
          return real.upsert(deltas, signal);
        },
        get: (...args) => real.get(...args),
        list: (...args) => real.list(...args),
      };
      const jobs = new JobStore(flaky);
      jobs.applyEvent(t, start('j', 10, { name: 'n', config: { a: 1 } }));
      jobs.applyEvent(t, { kind: 'finish', jobId: 'j', timeMs: 30, status: 'failed' });
      await expect(jobs.flush()).rejects.toThrow('store unreachable');
      jobs.applyEvent(t, { kind: 'update', jobId: 'j', timeMs: 40, config: { b: 2 }, status: 'running' });
      jobs.noteSamples(t, 'j', 5, 50);
      await jobs.flush();
      expect(await jobs.get(t, 'j', 60)).toMatchObject({
        name: 'n',
        config: { a: 1, b: 2 },
        status: 'failed',
        endMs: 30,
        startMs: 5,
        lastSampleMs: 50,
      });
    });
  });
}

describe('mergeJobDelta', () => {
  it('keeps the older final status and end, and says nothing about status when neither does', () => {
    const base = {
      tenant: 't',
      jobId: 'j',
      name: 'j',
      project: '',
      owner: '',
      framework: '',
      worldSize: null,
      config: {},
      tags: [],
      startMs: null,
      endMs: null,
      lastSampleMs: null,
      metricKeys: {},
    };
    expect(
      mergeJobDelta({ ...base, status: 'failed', endMs: 3 }, { ...base, status: 'completed', endMs: 9 }),
    ).toMatchObject({ status: 'failed', endMs: 3 });
    expect(mergeJobDelta({ ...base, status: null }, { ...base, status: null, startMs: 4 })).toMatchObject({
      status: null,
      startMs: 4,
    });
  });
});

// The SQLite row store is also usable on its own (the embedded form `new JobStore(meta, silentAfterMs)` wraps it).
describe('SqliteJobRows', () => {
  it('is what `new JobStore(meta, silentAfterMs)` writes through', () => {
    const meta = new MetaStore(path.join(mkdtempSync(path.join(os.tmpdir(), 'tw-jobs-rows-')), 'meta.db'));
    expect(new JobStore(meta, 1000).rows).toBeInstanceOf(SqliteJobRows);
    meta.close();
  });
});
