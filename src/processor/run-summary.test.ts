/**
 * The runs table's summaries are kept by the processor as samples pass (meta/runs.ts): records through the
 * bus, a real job store on SQLite, and the summary read back as the runs API reads it — no TSDB involved.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskLogBus } from '../bus/index.js';
import { BusWriter } from '../collector/index.js';
import { JobStore, MetaStore } from '../meta/index.js';
import { SeriesBatchBuilder } from '../model/batch.js';
import type { Storage } from '../storage/index.js';
import { DetectorSettings } from './detectors/config.js';
import { DetectorEngine } from './detectors/engine.js';
import { FilePartitionStateStore } from './partition-state.js';
import { Processor } from './processor.js';

const TENANT = 'default';
const START_MS = Date.now() - 10 * 60_000;

const storage = {
  appender: { append: async () => {} },
  querier: () => {
    throw new Error('not queried');
  },
  checkpoint: async () => {},
  coveredPositions: () => new Map(),
  close: async () => {},
} as unknown as Storage;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('processor: run summaries', () => {
  it('notes the newest and best loss, the step, the throughput summed over ranks and the mean GPU utilization, per job', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tw-runsum-'));
    dirs.push(dir);
    const bus = await DiskLogBus.open({
      dir: path.join(dir, 'bus'),
      partitions: 2,
      segmentBytes: 1 << 20,
      fsync: 'never',
      fsyncIntervalMs: 50,
      maxQueuedBytes: 8 << 20,
      logger: pino({ level: 'silent' }),
    });
    const meta = new MetaStore(path.join(dir, 'meta.db'));
    const jobs = new JobStore(meta, 60 * 60_000);
    const engine = new DetectorEngine(DetectorSettings.defaults(), { transition() {} }, { derived: true });
    const stateDir = path.join(dir, 'processor');
    const processor = new Processor(bus, storage, jobs, pino({ level: 'silent' }), new Registry(), {
      checkpointIntervalMs: 60_000,
      analysis: {
        engine,
        stateDir,
        partitionStates: new FilePartitionStateStore(stateDir),
        stateIntervalMs: 0,
        tickMs: 3_600_000,
      },
    });
    await processor.start();
    await processor.caughtUp;
    try {
      const writer = new BusWriter(bus);
      // Two jobs of 4 ranks, a sample every 5 s for 3 minutes: `good` converges (loss 3 → 1.25), `nan`
      // converges to 2.5 then its last sample is NaN. Every rank logs 100 samples/s.
      let seq = 0;
      const steps = 36;
      for (let k = 0; k < steps; k++) {
        const t = START_MS + k * 5000;
        const b = new SeriesBatchBuilder();
        for (const job of ['good', 'nan']) {
          const loss = job === 'nan' && k === steps - 1 ? Number.NaN : (job === 'good' ? 3 : 4) - 0.05 * k;
          for (let r = 0; r < 4; r++) {
            const labels = { job_id: job, rank: String(r), node_id: `${job}-n0` };
            b.addSeries({ __name__: 'train_loss', ...labels }).add(t, loss);
            b.addSeries({ __name__: 'train_step', ...labels }).add(t, k * 10);
            b.addSeries({ __name__: 'train_samples_per_second', ...labels }).add(t, 100);
            // Rank r's GPU: `good` runs its GPUs at 0.9 and 0.5 (mean 0.7), `nan` at 0.3.
            const util = job === 'nan' ? 0.3 : r % 2 ? 0.5 : 0.9;
            b.addSeries({
              __name__: 'gpu_utilization_ratio',
              job_id: job,
              node_id: `${job}-n0`,
              gpu: String(r),
            }).add(t, util);
          }
        }
        await writer.write(
          { tenant: TENANT, sourceId: 'src', sequence: seq++, receivedAtMs: t },
          b.build(),
          [],
        );
      }
      const last = START_MS + (steps - 1) * 5000;
      await expect
        .poll(
          async () => {
            await jobs.flush();
            const page = await jobs.runs(TENANT, Date.now(), {
              limit: 10,
              offset: 0,
              sort: { column: 'job_id', desc: false },
            });
            return page.runs.map((r) => ({
              id: r.job.jobId,
              loss: r.summary.loss,
              step: r.summary.step?.last,
              throughput: r.summary.samples_per_second?.last,
              util: r.summary.gpu_utilization?.last,
            }));
          },
          { timeout: 15_000 },
        )
        .toEqual([
          {
            id: 'good',
            loss: {
              lastMs: last,
              last: expect.closeTo(3 - 0.05 * (steps - 1), 9),
              best: expect.closeTo(1.25, 9),
            },
            step: (steps - 1) * 10,
            throughput: 400,
            util: expect.closeTo(0.7, 9),
          },
          {
            id: 'nan',
            loss: { lastMs: last, last: Number.NaN, best: expect.closeTo(4 - 0.05 * (steps - 2), 9) },
            step: (steps - 1) * 10,
            throughput: 400,
            util: expect.closeTo(0.3, 9),
          },
        ]);
      // The fleet table sorts 100,000 jobs by these kept numbers (meta/job-page.ts).
      const sorted = async (sort: 'util' | 'loss', order: 'asc' | 'desc') =>
        (await jobs.page(TENANT, Date.now(), { sort, order, limit: 10 })).jobs.map((j) => j.jobId);
      expect(await sorted('util', 'desc')).toEqual(['good', 'nan']);
      expect(await sorted('util', 'asc')).toEqual(['nan', 'good']);
      // A NaN loss is the worst: last when the lowest loss comes first.
      expect(await sorted('loss', 'asc')).toEqual(['good', 'nan']);
    } finally {
      await processor.stop();
      meta.close();
      await bus.close();
    }
  }, 30_000);
});
