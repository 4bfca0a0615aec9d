/**
 * The runs table's contract (runs.ts), one data-driven suite against both stores: SQLite and a real PostgreSQL.
 * Summaries are written the way the processor writes them (`noteGauge` on a `JobStore`, then `flush`), and the
 * same queries must give the same pages on both.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeWithPostgres, startPostgres, type TestPostgres } from '../../test/support/postgres.js';
import { JobStore } from './jobs.js';
import { MetaStore } from './meta-store.js';
import { PgJobRepository, PgMeta } from './postgres/index.js';
import { mergeRunSummaries, noteGaugeInto, type RunSummary, SUMMARY_GAUGES } from './run-summary.js';
import { type RunFilter, type RunPage, type RunQuery, RunQueryError } from './runs.js';

const SILENT_AFTER_MS = 10 * 60_000;
const NOW = 1_900_000;
const LOSS = SUMMARY_GAUGES.findIndex((g) => g.key === 'loss');
const STEP = SUMMARY_GAUGES.findIndex((g) => g.key === 'step');

interface Harness {
  writer(): JobStore;
  close(): Promise<void>;
}

const backends: { name: string; describe: (n: string, b: () => void) => void; open(): Promise<Harness> }[] = [
  {
    name: 'sqlite',
    describe,
    async open() {
      const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'tw-runs-contract-')), 'meta.db');
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
      const pools: PgMeta[] = [await PgMeta.open({ url: server.url, poolSize: 2 })];
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
const freshTenant = () => `r${++tenantSeq}`;

/**
 * Four runs: a (bert, lr 0.001, 8 GPUs for 30 min, completed, loss 2 best 1.5), b (gpt, lr 3e-4, running, loss 1),
 * c (bert, lr "auto", failed, no loss), d (gpt, lr 0.01, running, loss NaN after a best of 4).
 */
async function seed(jobs: JobStore, t: string): Promise<void> {
  jobs.applyEvent(t, {
    kind: 'start',
    jobId: 'a',
    timeMs: 0,
    name: 'bert-a',
    owner: 'ana',
    worldSize: 8,
    config: { model: 'bert', lr: 0.001, optimizer: 'adamw' },
  });
  jobs.noteSamples(t, 'a', 0, 200);
  jobs.noteGauge(t, 'a', LOSS, 200, 2.0, 1.5);
  jobs.noteGauge(t, 'a', STEP, 200, 900, 900);
  jobs.applyEvent(t, { kind: 'finish', jobId: 'a', timeMs: 1_800_000, status: 'completed' });
  jobs.applyEvent(t, {
    kind: 'start',
    jobId: 'b',
    timeMs: 1000,
    name: 'gpt-b',
    owner: 'bo',
    worldSize: 4,
    config: { model: 'gpt', lr: 0.0003, optimizer: 'adam' },
  });
  jobs.noteSamples(t, 'b', 1000, NOW - 1000);
  jobs.noteGauge(t, 'b', LOSS, NOW - 1000, 1.0, 1.0);
  jobs.applyEvent(t, {
    kind: 'start',
    jobId: 'c',
    timeMs: 2000,
    name: 'BERT-c',
    owner: 'ana',
    config: { model: 'bert', lr: 'auto' },
  });
  jobs.applyEvent(t, { kind: 'finish', jobId: 'c', timeMs: 3000, status: 'failed' });
  jobs.applyEvent(t, {
    kind: 'start',
    jobId: 'd',
    timeMs: 3000,
    name: 'gpt-d',
    owner: 'cy',
    config: { model: 'gpt', lr: 0.01 },
  });
  jobs.noteSamples(t, 'd', 3000, NOW - 500);
  jobs.noteGauge(t, 'd', LOSS, 300, 4.0, 4.0);
  await jobs.flush();
  // A later flush: d's loss becomes NaN (newer), a's older sample arrives late (must not replace its last).
  jobs.noteGauge(t, 'd', LOSS, NOW - 500, Number.NaN, null);
  jobs.noteGauge(t, 'a', LOSS, 100, 3.0, 3.0);
  await jobs.flush();
}

const ids = (p: RunPage) => p.runs.map((r) => r.job.jobId);
const q = (over: Partial<RunQuery> = {}): RunQuery => ({ limit: 100, offset: 0, ...over });
const f = (column: string, op: RunFilter['op'], value: string): RunFilter => ({ column, op, value });

for (const backend of backends) {
  backend.describe(`runs table contract (${backend.name})`, () => {
    let h: Harness;
    let jobs: JobStore;
    const t = freshTenant();
    beforeAll(async () => {
      h = await backend.open();
      jobs = h.writer();
      await seed(jobs, t);
      // Another tenant's run must never show.
      const other = h.writer();
      other.applyEvent('elsewhere', { kind: 'start', jobId: 'x', timeMs: 0, config: { secret: 1 } });
      other.noteGauge('elsewhere', 'x', LOSS, 10, 0.1, 0.1);
      await other.flush();
    }, 60_000);
    afterAll(async () => {
      await h?.close();
    });

    it('keeps the newest and the best of each gauge, across flushes and out of order; a NaN stays NaN', async () => {
      const page = await jobs.runs(t, NOW, q({ sort: { column: 'job_id', desc: false } }));
      const byId = new Map(page.runs.map((r) => [r.job.jobId, r]));
      expect(byId.get('a')!.summary.loss).toEqual({ lastMs: 200, last: 2.0, best: 1.5 });
      expect(byId.get('a')!.summary.step).toEqual({ lastMs: 200, last: 900, best: 900 });
      expect(byId.get('b')!.summary.loss).toEqual({ lastMs: NOW - 1000, last: 1.0, best: 1.0 });
      expect(byId.get('c')!.summary).toEqual({});
      const d = byId.get('d')!.summary.loss!;
      expect(d.lastMs).toBe(NOW - 500);
      expect(d.last).toBeNaN();
      expect(d.best).toBe(4.0);
      expect(byId.get('a')!.gpuHours).toBeCloseTo(4, 9); // 8 GPUs × 30 min
      expect(byId.get('c')!.gpuHours).toBeNull(); // world size unknown
      expect(page.total).toBe(4);
      expect(page.configKeys).toEqual(['lr', 'model', 'optimizer']);
    });

    it('sorts by a summary with missing and NaN values last, in either direction', async () => {
      expect(ids(await jobs.runs(t, NOW, q({ sort: { column: 'loss', desc: false } })))).toEqual([
        'b',
        'a',
        'c',
        'd',
      ]);
      expect(ids(await jobs.runs(t, NOW, q({ sort: { column: 'loss', desc: true } })))).toEqual([
        'a',
        'b',
        'c',
        'd',
      ]);
      expect(ids(await jobs.runs(t, NOW, q({ sort: { column: 'gpu_hours', desc: true } })))[0]).toBe('a');
    });

    it('sorts by a config key: numbers in numeric order, then strings, then runs without it', async () => {
      expect(ids(await jobs.runs(t, NOW, q({ sort: { column: 'config.lr', desc: false } })))).toEqual([
        'b',
        'a',
        'd',
        'c',
      ]);
      expect(ids(await jobs.runs(t, NOW, q({ sort: { column: 'config.lr', desc: true } })))).toEqual([
        'd',
        'a',
        'b',
        'c',
      ]);
      expect(ids(await jobs.runs(t, NOW, q({ sort: { column: 'config.optimizer', desc: false } })))).toEqual([
        'b',
        'a',
        'c',
        'd',
      ]);
    });

    it('filters by summaries, config keys, status and text; != keeps runs without the value', async () => {
      const run = async (...filters: RunFilter[]) =>
        ids(await jobs.runs(t, NOW, q({ filters, sort: { column: 'job_id', desc: false } })));
      expect(await run(f('loss', '<', '2'))).toEqual(['b']);
      expect(await run(f('loss_best', '<=', '1.5'))).toEqual(['a', 'b']);
      expect(await run(f('config.lr', '>=', '0.001'))).toEqual(['a', 'd']);
      expect(await run(f('config.lr', '=', 'auto'))).toEqual(['c']);
      expect(await run(f('config.optimizer', '!=', 'adamw'))).toEqual(['b', 'c', 'd']);
      expect(await run(f('config.optimizer', '=', ''))).toEqual(['c', 'd']);
      expect(await run(f('status', '=', 'failed'))).toEqual(['c']);
      expect(await run(f('status', '=', 'running'))).toEqual(['b', 'd']);
      expect(await run(f('name', '~', 'bert'))).toEqual(['a', 'c']);
      expect(await run(f('config.model', '=', 'gpt'), f('loss', '<', '5'))).toEqual(['b']);
      expect(await run(f('start', '>=', '1970-01-01T00:00:02Z'))).toEqual(['c', 'd']);
      expect(await run(f('owner', '~', '50%_'))).toEqual([]);
    });

    it('groups by any column, with counts and aggregates, groups in value order', async () => {
      const page = await jobs.runs(t, NOW, q({ groupBy: 'config.model' }));
      expect(page.runs).toEqual([]);
      expect(page.total).toBe(4);
      expect(page.groupTotal).toBe(2);
      expect(page.groups!.map((g) => [g.value, g.count])).toEqual([
        ['bert', 2],
        ['gpt', 2],
      ]);
      const bert = page.groups![0]!.aggregates;
      expect(bert.loss).toBe(2);
      expect(bert.loss_best).toBe(1.5);
      expect(bert.gpu_hours).toBeCloseTo(4, 9);
      const byLr = await jobs.runs(t, NOW, q({ groupBy: 'config.lr' }));
      expect(byLr.groups!.map((g) => g.value)).toEqual([0.0003, 0.001, 0.01, 'auto']);
      const byStatus = await jobs.runs(t, NOW, q({ groupBy: 'status', filters: [f('owner', '=', 'ana')] }));
      expect(byStatus.groups!.map((g) => [g.value, g.count])).toEqual([
        ['completed', 1],
        ['failed', 1],
      ]);
      const paged = await jobs.runs(t, NOW, q({ groupBy: 'config.lr', limit: 2, offset: 2 }));
      expect(paged.groups!.map((g) => g.value)).toEqual([0.01, 'auto']);
    });

    it('pages with limit and offset; total counts every match', async () => {
      const sort = { column: 'job_id', desc: false };
      const p1 = await jobs.runs(t, NOW, q({ sort, limit: 3 }));
      const p2 = await jobs.runs(t, NOW, q({ sort, limit: 3, offset: 3 }));
      expect([ids(p1), ids(p2), p1.total, p2.total]).toEqual([['a', 'b', 'c'], ['d'], 4, 4]);
    });

    it("shows a new run's config keys on its page at once, and the config column the query names", async () => {
      const t2 = freshTenant();
      const w = h.writer();
      w.applyEvent(t2, { kind: 'start', jobId: 'old', timeMs: 0, config: { lr: 0.1 } });
      await w.flush();
      // This read caches the tenant's keys (['lr']); the next run's key is newer than that cache.
      expect((await w.runs(t2, NOW, q())).configKeys).toEqual(['lr']);
      w.applyEvent(t2, { kind: 'start', jobId: 'new', timeMs: 10, config: { lr: 0.2, warmup_steps: 100 } });
      await w.flush();
      expect((await w.runs(t2, NOW, q())).configKeys).toEqual(['lr', 'warmup_steps']);
      // Sorting or grouping by a key no run has still shows that column (empty), as a user asked for it.
      const sorted = await w.runs(t2, NOW, q({ sort: { column: 'config.seed', desc: false } }));
      expect(sorted.configKeys).toContain('seed');
      const grouped = await w.runs(t2, NOW, q({ groupBy: 'config.batch' }));
      expect(grouped.configKeys).toContain('batch');
    });

    it('rejects unknown columns and operators that do not fit the column', async () => {
      await expect(jobs.runs(t, NOW, q({ sort: { column: 'nope', desc: false } }))).rejects.toThrow(
        RunQueryError,
      );
      await expect(jobs.runs(t, NOW, q({ filters: [f('loss', '~', '1')] }))).rejects.toThrow(/text columns/);
      await expect(jobs.runs(t, NOW, q({ filters: [f('config.model', '<', 'gpt')] }))).rejects.toThrow(
        /compares numbers/,
      );
      await expect(jobs.runs(t, NOW, q({ filters: [f('loss', '<', 'low')] }))).rejects.toThrow(
        /not a number/,
      );
      await expect(jobs.runs(t, NOW, q({ groupBy: 'config.a"b' }))).rejects.toThrow(/config key/);
    });
  });
}

describe('run summary merge rule', () => {
  it('is the same in one delta and across deltas, whatever the order of arrival', () => {
    const g = SUMMARY_GAUGES[LOSS]!;
    const obs: [number, number, number | null][] = [
      [300, 1.2, 1.1],
      [100, 3.0, 2.5],
      [300, 1.0, 1.0],
      [200, Number.NaN, null],
    ];
    const one: RunSummary = {};
    for (const o of obs) noteGaugeInto(one, g, ...o);
    let folded: RunSummary = {};
    for (const o of obs) {
      const d: RunSummary = {};
      noteGaugeInto(d, g, ...o);
      folded = mergeRunSummaries(folded, d);
    }
    expect(one.loss).toEqual({ lastMs: 300, last: 1.0, best: 1.0 });
    expect(folded).toEqual(one);
  });
});
