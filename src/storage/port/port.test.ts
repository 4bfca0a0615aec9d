/**
 * The storage port protocol: a reader over ports answers exactly what the storages behind them answer —
 * the same series in the same order, bit-exact values (staleness markers included) — merges a series found
 * in several shards, keeps the memory budget, cancels, and carries errors with their kind.
 */
import { MessageChannel } from 'node:worker_threads';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { SeriesBatchBuilder, STALE_NAN } from '../../model/batch.js';
import { Errors, TrainwatchError, twError } from '../../model/errors.js';
import { LabelMatcher, type LabelSet } from '../../model/labels.js';
import { RollupColumns } from '../rollup.js';
import type { Querier, SelectedSeries, Storage } from '../storage.js';
import { seriesSet } from '../storage.js';
import { MemoryStorage } from '../tsdb.js';
import { localQueryEndpoints, PortStorageReader, type ServedStorage, serveStorageQueries } from './index.js';

const all = [new LabelMatcher('=~', '__name__', '.+')];
const bits = new BigUint64Array(1);
const f64 = new Float64Array(bits.buffer);
const bitsOf = (v: number) => {
  f64[0] = v;
  return bits[0]!;
};

function samplesOf(s: SelectedSeries): [number, bigint][] {
  const out: [number, bigint][] = [];
  const it = s.iterator();
  while (it.next()) out.push([it.t, bitsOf(it.v)]);
  return out;
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function readerOver(storages: readonly ServedStorage[]): PortStorageReader {
  const ports = storages.map((s) => {
    const { port1, port2 } = new MessageChannel();
    const stop = serveStorageQueries(port1, s);
    cleanups.push(() => {
      stop();
      port1.close();
    });
    return port2;
  });
  const reader = new PortStorageReader(ports);
  cleanups.push(() => reader.close());
  return reader;
}

/** A series' samples: [t, value] pairs; values may be staleness markers. */
const seriesArb = fc.record({
  name: fc.constantFrom('gpu_utilization_ratio', 'train_loss', 'up'),
  job: fc.constantFrom('a', 'b', 'c'),
  rank: fc.integer({ min: 0, max: 3 }),
  samples: fc.uniqueArray(
    fc.tuple(fc.integer({ min: 0, max: 200 }), fc.oneof(fc.double({ noNaN: true }), fc.constant(STALE_NAN))),
    { selector: ([t]) => t, minLength: 1, maxLength: 30 },
  ),
  shards: fc.uniqueArray(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 3 }),
});

describe('storage over a port', () => {
  it('answers what the storages answer, merging a series kept by several shards', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(seriesArb, { minLength: 1, maxLength: 12 }), async (specs) => {
        const whole = new MemoryStorage();
        const shards = [new MemoryStorage(), new MemoryStorage(), new MemoryStorage()];
        const seen = new Set<string>();
        for (const spec of specs) {
          const labels: LabelSet = { __name__: spec.name, job_id: spec.job, rank: String(spec.rank) };
          const key = JSON.stringify(labels);
          if (seen.has(key)) continue;
          seen.add(key);
          const b = new SeriesBatchBuilder().addSeries(labels);
          for (const [t, v] of [...spec.samples].sort((x, y) => x[0] - y[0])) b.add(t * 1000, v);
          const batch = b.build();
          await whole.appender.append('t', batch);
          // Each shard holding the series gets all of it (a replay after a move re-appends the same samples).
          for (const i of spec.shards) await shards[i]!.appender.append('t', batch);
        }
        const reader = readerOver(shards);
        for (const matchers of [
          all,
          [new LabelMatcher('=', 'job_id', 'a')],
          [new LabelMatcher('=~', 'rank', '[02]')],
        ]) {
          const expected = (await whole.querier('t', 0, 300_000).select(matchers)).series;
          const got = (await reader.querier('t', 0, 300_000).select(matchers)).series;
          expect(got.map((s) => s.labels)).toEqual(expected.map((s) => s.labels));
          for (let i = 0; i < got.length; i++) expect(samplesOf(got[i]!)).toEqual(samplesOf(expected[i]!));
        }
        expect(await reader.querier('t', 0, 300_000).labelValues('job_id')).toEqual(
          await whole.querier('t', 0, 300_000).labelValues('job_id'),
        );
        expect(await reader.querier('t', 0, 300_000).labelNames()).toEqual(
          await whole.querier('t', 0, 300_000).labelNames(),
        );
        for (const c of cleanups.splice(0)) c();
      }),
      { numRuns: 40 },
    );
  });

  it('refuses a selection over its sample budget with a 422, and takes appends', async () => {
    const db = new MemoryStorage();
    const reader = readerOver([db]);
    const b = new SeriesBatchBuilder();
    for (let s = 0; s < 50; s++) {
      b.addSeries({ __name__: 'm', s: String(s) });
      for (let t = 0; t < 100; t++) b.add(t * 1000, t);
    }
    const stats = await reader.append(0, 't', b.build());
    expect(stats.samples).toBe(5000);
    const q = reader.querier('t', 0, 1e9);
    expect((await q.select(all, { maxSamples: 5000 })).series).toHaveLength(50);
    const refused = await q.select(all, { maxSamples: 4999 }).catch((e) => e);
    expect(refused).toBeInstanceOf(TrainwatchError);
    expect((refused as TrainwatchError).status).toBe(422);
    expect((refused as TrainwatchError).message).toMatch(/more than 4999 samples/);
  });

  it('cancels a selection on every shard when its signal aborts, and carries errors with their kind', async () => {
    let started!: () => void;
    const selecting = new Promise<void>((r) => {
      started = r;
    });
    let cancelled = false;
    const slow: Pick<Storage, 'querier'> = {
      querier: (): Querier => ({
        select: (_m, _h, signal) => {
          started();
          return new Promise((_, reject) =>
            signal!.addEventListener('abort', () => {
              cancelled = true;
              reject(signal!.reason);
            }),
          );
        },
        labelNames: async () => {
          throw twError(Errors.unavailable, 'shard is busy', 2);
        },
        labelValues: async () => [],
      }),
    };
    const reader = readerOver([slow]);
    const abort = new AbortController();
    const pending = reader.querier('t', 0, 1).select(all, undefined, abort.signal);
    await selecting;
    abort.abort(new Error('client went away'));
    await expect(pending).rejects.toThrow('client went away');
    await expect.poll(() => cancelled).toBe(true);
    const err = await reader
      .querier('t', 0, 1)
      .labelNames()
      .catch((e) => e);
    expect(err).toBeInstanceOf(TrainwatchError);
    expect((err as TrainwatchError).kind).toBe(Errors.unavailable);
    expect((err as TrainwatchError).retryAfterSeconds).toBe(2);
  });

  it('carries rollup answers: resolution, the function value and every aggregate', async () => {
    // A storage answering from a rollup tier (the embedded TSDB does once blocks have rollups): two windows.
    const cols = new RollupColumns(2);
    cols.push(59_999, 1, 3, 4, 2, 3);
    cols.push(119_999, 5, 5, 5, 1, 5);
    const rolled: SelectedSeries = {
      labels: { __name__: 'm' },
      resolutionMs: 60_000,
      iterator: () => {
        let i = -1;
        const it = {
          t: 0,
          v: 0,
          next: () => {
            if (++i >= cols.n) return false;
            it.t = cols.t[i]!;
            it.v = cols.cols[1]![i]!;
            return true;
          },
          seek: () => false,
        };
        return it;
      },
      readAggregates: (out) => {
        out.reset();
        for (let i = 0; i < cols.n; i++)
          out.push(
            cols.t[i]!,
            cols.cols[0]![i]!,
            cols.cols[1]![i]!,
            cols.cols[2]![i]!,
            cols.cols[3]![i]!,
            cols.cols[4]![i]!,
          );
        return out.n;
      },
    };
    const storage: Pick<Storage, 'querier'> = {
      querier: () => ({
        select: async () => seriesSet([rolled]),
        labelNames: async () => [],
        labelValues: async () => [],
      }),
    };
    const endpoints = localQueryEndpoints(storage);
    cleanups.push(() => endpoints.close());
    const reader = new PortStorageReader(endpoints.connect());
    cleanups.push(() => reader.close());
    const [s] = (
      await reader
        .querier('t', 0, 1e6)
        .select(all, { stepMs: 60_000, rangeMs: 60_000, func: 'max_over_time' })
    ).series;
    expect(s!.resolutionMs).toBe(60_000);
    expect(samplesOf(s!)).toEqual([
      [59_999, bitsOf(3)],
      [119_999, bitsOf(5)],
    ]);
    const it = s!.aggregates!();
    const windows: number[][] = [];
    while (it.next()) windows.push([it.t, it.min, it.max, it.sum, it.count, it.last]);
    expect(windows).toEqual([
      [59_999, 1, 3, 4, 2, 3],
      [119_999, 5, 5, 5, 1, 5],
    ]);
  });
});
