/**
 * Rollup hints pushed down to a real VictoriaMetrics (skipped with the install command when absent, required
 * under CI=true): the TSDB's `*_over_time` windows equal what folding the raw samples of the same select
 * gives, window by window; selectors without a fixed metric name fall back to raw samples; tenants stay
 * apart; the dashboard's heatmap draws the same cells from either answer.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  requireVictoriaMetrics,
  startVictoriaMetrics,
  type VictoriaMetrics,
} from '../../../test/support/victoria-metrics.js';
import { type SeriesBatch, SeriesBatchBuilder, STALE_NAN } from '../../model/batch.js';
import { LabelMatcher, type LabelSet } from '../../model/labels.js';
import { buildHeatmap } from '../../query/dashboard.js';
import { columnGrid, SpreadAccumulator } from '../../query/dashboard-matrix.js';
import { SampleBuffer } from '../codec/chunk.js';
import {
  AGG_COUNT,
  AGG_LAST,
  AGG_MAX,
  AGG_MIN,
  AGG_SUM,
  aggregateSamples,
  RollupColumns,
} from '../rollup.js';
import type { SelectedSeries, SelectHints } from '../storage.js';
import { RemoteStorage } from './remote-storage.js';

const haveVm = requireVictoriaMetrics('RemoteStorage rollup push-down tests');

/** Two hours ago, on a whole minute. */
const BASE = Math.floor((Date.now() - 7_200_000) / 60_000) * 60_000;
const SPAN = 30 * 60_000;
const LO = BASE;
const HI = BASE + SPAN - 1;

const eq = (name: string, value: string) => new LabelMatcher('=', name, value);
const re = (name: string, value: string) => new LabelMatcher('=~', name, value);

/** Deterministic irregular samples over [BASE, BASE + SPAN): gaps of 0.3..23 s, values in eighths (exact). */
function samples(seed: number, stale = false): { t: number[]; v: number[] } {
  let x = seed;
  const rnd = () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
  const t: number[] = [];
  const v: number[] = [];
  let at = BASE + Math.floor(rnd() * 5000);
  while (at < BASE + SPAN) {
    t.push(at);
    v.push(Math.floor(rnd() * 800 - 100) / 8);
    at += 300 + Math.floor(rnd() * 22_700);
  }
  // Samples on window edges: the first and the last millisecond of a 10 s and of a 60 s window.
  for (const edge of [BASE + 120_000, BASE + 129_999, BASE + 600_000, BASE + 659_999]) {
    const i = t.findIndex((u) => u >= edge);
    if (t[i] === edge) continue;
    t.splice(i, 0, edge);
    v.splice(i, 0, 17.125);
  }
  if (stale) {
    // A staleness marker (not data: left out of every aggregate) after a gap of a minute.
    const i = t.findIndex((u) => u > BASE + 900_000);
    t.splice(i, 0, t[i - 1]! + 1);
    v.splice(i, 0, STALE_NAN);
  }
  return { t, v };
}

const SERIES: { tenant: string; labels: LabelSet; seed: number; stale?: boolean }[] = [
  { tenant: 'a', labels: { __name__: 'gpu_utilization_ratio', job_id: 'j', node_id: 'n1' }, seed: 1 },
  {
    tenant: 'a',
    labels: { __name__: 'gpu_utilization_ratio', job_id: 'j', node_id: 'n2' },
    seed: 2,
    stale: true,
  },
  { tenant: 'a', labels: { __name__: 'train_loss', job_id: 'j' }, seed: 3 },
  { tenant: 'b', labels: { __name__: 'gpu_utilization_ratio', job_id: 'j', node_id: 'n1' }, seed: 4 },
  { tenant: 'b', labels: { __name__: 'gpu_utilization_ratio', job_id: 'j', node_id: 'n3' }, seed: 5 },
];

function batchOf(tenant: string): SeriesBatch {
  const b = new SeriesBatchBuilder();
  for (const s of SERIES) {
    if (s.tenant !== tenant) continue;
    b.addSeries(s.labels);
    const { t, v } = samples(s.seed, s.stale);
    for (let i = 0; i < t.length; i++) b.add(t[i]!, v[i]!);
  }
  return b.build();
}

interface Windows {
  labels: LabelSet;
  t: number[];
  cols: number[][];
}

function windowsOf(s: SelectedSeries): Windows {
  const w = new RollupColumns(4);
  const n = s.readAggregates!(w);
  return {
    labels: { ...s.labels },
    t: Array.from(w.t.subarray(0, n)),
    cols: w.cols.map((c) => Array.from(c.subarray(0, n))),
  };
}

/** The raw samples of `s` folded into windows of `step` as the embedded TSDB's rollup tiers fold them. */
function fold(s: SelectedSeries, step: number): Windows {
  const buf = new SampleBuffer(64);
  const n = s.readSamples!(buf);
  const w = new RollupColumns(4);
  aggregateSamples(buf.t, buf.v, n, step, LO, HI, w);
  return {
    labels: { ...s.labels },
    t: Array.from(w.t.subarray(0, w.n)),
    cols: w.cols.map((c) => Array.from(c.subarray(0, w.n))),
  };
}

const hintsFor = (step: number, aggregates?: SelectHints['aggregates']): SelectHints => ({
  stepMs: step,
  func: 'avg_over_time',
  rangeMs: step,
  ...(aggregates ? { aggregates } : {}),
});

describe.skipIf(!haveVm)('RemoteStorage rollup push-down on VictoriaMetrics', () => {
  let vm: VictoriaMetrics;
  let storage: RemoteStorage;

  beforeAll(async () => {
    vm = await startVictoriaMetrics();
    storage = new RemoteStorage({ writeUrl: vm.writeUrl, readUrl: vm.url, flavor: 'victoriametrics' });
    await storage.appender.append('a', batchOf('a'));
    await storage.appender.append('b', batchOf('b'));
    await storage.checkpoint(new Map());
    await vm.forceFlush();
  });

  afterAll(async () => {
    await storage?.close();
    await vm?.stop();
  });

  /** The paths and queries sent while `f` runs. */
  async function requests<T>(f: () => Promise<T>): Promise<{ result: T; sent: [string, string][] }> {
    const spy = vi.spyOn(storage, 'request');
    try {
      const result = await f();
      const sent = spy.mock.calls.map(
        ([path, form]) => [path, form.get('query') ?? form.get('match[]') ?? ''] as [string, string],
      );
      return { result, sent };
    } finally {
      spy.mockRestore();
    }
  }

  it.each([10_000, 60_000])(
    'windows of %i ms equal the fold of the raw samples, window by window',
    async (step) => {
      const q = storage.querier('a', LO, HI);
      for (const name of ['gpu_utilization_ratio', 'train_loss']) {
        const raw = await q.select([eq('__name__', name)]);
        const { result: pushed, sent } = await requests(() =>
          q.select([eq('__name__', name)], hintsFor(step)),
        );
        // One query_range per aggregate, the tenant injected.
        expect(sent.map(([p]) => p)).toEqual(Array(5).fill('/api/v1/query_range'));
        for (const [, query] of sent) expect(query).toContain(`tenant="a"`);
        expect(sent.map(([, query]) => query.slice(0, query.indexOf('(')))).toEqual([
          'min_over_time',
          'max_over_time',
          'sum_over_time',
          'count_over_time',
          'last_over_time',
        ]);
        expect(raw.series.length).toBeGreaterThan(0);
        expect(pushed.warnings).toEqual([]);
        expect(pushed.series.map((s) => s.resolutionMs)).toEqual(raw.series.map(() => step));
        const got = pushed.series.map(windowsOf);
        const want = raw.series.map((s) => fold(s, step));
        expect(got).toEqual(want);
        // Window ends on multiples of the step; no empty windows.
        for (const w of got) {
          expect(w.t.length).toBeGreaterThan(SPAN / step / 4);
          for (const t of w.t) expect((t + 1) % step).toBe(0);
          for (const c of w.cols[AGG_COUNT]!) expect(c).toBeGreaterThan(0);
        }
        // The iterators say the same: aggregates() per window, iterator() the window's average.
        const s0 = pushed.series[0]!;
        const it = s0.aggregates!();
        const avg = s0.iterator();
        let i = 0;
        while (it.next()) {
          expect(avg.next()).toBe(true);
          expect([it.t, it.min, it.max, it.sum, it.count, it.last]).toEqual([
            got[0]!.t[i],
            got[0]!.cols[AGG_MIN]![i],
            got[0]!.cols[AGG_MAX]![i],
            got[0]!.cols[AGG_SUM]![i],
            got[0]!.cols[AGG_COUNT]![i],
            got[0]!.cols[AGG_LAST]![i],
          ]);
          expect(avg.v).toBe(it.sum / it.count);
          i++;
        }
        expect(i).toBe(got[0]!.t.length);
      }
    },
  );

  it('splits a long range into requests of at most maxWindowsPerRequest windows, with the same answer', async () => {
    const small = new RemoteStorage({
      writeUrl: vm.writeUrl,
      readUrl: vm.url,
      flavor: 'victoriametrics',
      maxWindowsPerRequest: 7,
    });
    try {
      const name = [eq('__name__', 'gpu_utilization_ratio')];
      const spy = vi.spyOn(small, 'request');
      const split = await small.querier('a', LO, HI).select(name, hintsFor(60_000, ['sum', 'count']));
      // 30 windows in requests of 7: 5 per aggregate.
      expect(spy.mock.calls.length).toBe(10);
      const whole = await storage.querier('a', LO, HI).select(name, hintsFor(60_000, ['sum', 'count']));
      expect(split.series.map(windowsOf)).toEqual(whole.series.map(windowsOf));
    } finally {
      await small.close();
    }
  });

  it('the staleness marker is counted in no window (count_over_time leaves it out, as the fold does)', async () => {
    const q = storage.querier('a', LO, HI);
    const pushed = await q.select(
      [eq('__name__', 'gpu_utilization_ratio'), eq('node_id', 'n2')],
      hintsFor(10_000),
    );
    const { t, v } = samples(2, true);
    const data = v.filter((x) => !Number.isNaN(x)).length;
    expect(data).toBe(v.length - 1);
    expect(t.length).toBe(v.length);
    const counts = windowsOf(pushed.series[0]!).cols[AGG_COUNT]!;
    expect(counts.reduce((a, b) => a + b, 0)).toBe(data);
  });

  it('asks only the aggregates wanted (count always); the others are NaN', async () => {
    const q = storage.querier('a', LO, HI);
    const { result, sent } = await requests(() =>
      q.select([eq('__name__', 'train_loss')], hintsFor(60_000, ['sum'])),
    );
    expect(sent.map(([, query]) => query.slice(0, query.indexOf('(')))).toEqual([
      'sum_over_time',
      'count_over_time',
    ]);
    const w = windowsOf(result.series[0]!);
    const full = windowsOf((await q.select([eq('__name__', 'train_loss')], hintsFor(60_000))).series[0]!);
    expect(w.t).toEqual(full.t);
    expect(w.cols[AGG_SUM]).toEqual(full.cols[AGG_SUM]);
    expect(w.cols[AGG_COUNT]).toEqual(full.cols[AGG_COUNT]);
    for (const c of [AGG_MIN, AGG_MAX, AGG_LAST]) for (const x of w.cols[c]!) expect(x).toBeNaN();
  });

  it('falls back to raw samples without a fixed metric name, a step under 10 s or a range other than the step', async () => {
    const q = storage.querier('a', LO, HI);
    const cases: [LabelMatcher[], SelectHints][] = [
      [[re('__name__', 'gpu_utilization_ratio|train_loss')], hintsFor(60_000)],
      [[eq('job_id', 'j')], hintsFor(60_000)],
      [[eq('__name__', 'train_loss')], hintsFor(5_000)],
      [[eq('__name__', 'train_loss')], { ...hintsFor(60_000), rangeMs: 120_000 }],
      [[eq('__name__', 'train_loss')], { ...hintsFor(60_000), func: 'rate' }],
    ];
    for (const [matchers, hints] of cases) {
      const { result, sent } = await requests(() => q.select(matchers, hints));
      const raw = await q.select(matchers);
      expect(sent.map(([p]) => p)).toEqual(['/api/v1/export']);
      expect(result.series.length).toBeGreaterThan(0);
      for (const s of result.series) expect(s.resolutionMs).toBeUndefined();
      expect(result.series.map(fold60)).toEqual(raw.series.map(fold60));
    }
  });

  it('keeps tenants apart on the pushed-down path', async () => {
    const name = [eq('__name__', 'gpu_utilization_ratio')];
    const a = await storage.querier('a', LO, HI).select(name, hintsFor(10_000));
    const b = await storage.querier('b', LO, HI).select(name, hintsFor(10_000));
    expect(a.series.map((s) => s.labels)).toEqual([
      { __name__: 'gpu_utilization_ratio', job_id: 'j', node_id: 'n1', tenant: 'a' },
      { __name__: 'gpu_utilization_ratio', job_id: 'j', node_id: 'n2', tenant: 'a' },
    ]);
    expect(b.series.map((s) => s.labels)).toEqual([
      { __name__: 'gpu_utilization_ratio', job_id: 'j', node_id: 'n1', tenant: 'b' },
      { __name__: 'gpu_utilization_ratio', job_id: 'j', node_id: 'n3', tenant: 'b' },
    ]);
    // Same labels but the tenant: each tenant's windows are its own samples' windows.
    const rawB = await storage.querier('b', LO, HI).select(name);
    expect(b.series.map(windowsOf)).toEqual(rawB.series.map((s) => fold(s, 10_000)));
    expect(windowsOf(a.series[0]!).cols[AGG_SUM]).not.toEqual(windowsOf(b.series[0]!).cols[AGG_SUM]);
    // A matcher on another tenant answers nothing, without asking the TSDB.
    const { result, sent } = await requests(() =>
      storage.querier('a', LO, HI).select([...name, eq('tenant', 'b')], hintsFor(10_000)),
    );
    expect(result.series).toEqual([]);
    expect(sent).toEqual([]);
    const other = await storage.querier('a', LO, HI).select([...name, re('tenant', 'a|b')], hintsFor(10_000));
    expect(other.series.map((s) => s.labels.tenant)).toEqual(['a', 'a']);
  });

  it.each(['10000', '60000', undefined])(
    'buildHeatmap draws the same cells from windows as from raw samples (step %s)',
    async (step) => {
      const q = storage.querier('a', LO, HI);
      const matchers = [eq('__name__', 'gpu_utilization_ratio')];
      const params = {
        start: LO,
        end: HI,
        by: ['node_id'],
        keep: [],
        lo: undefined,
        hi: undefined,
        idleBelow: undefined,
        metric: 'gpu_utilization_ratio',
        q: step ? { step } : {},
      };
      let resolutions: (number | undefined)[] = [];
      const pushed = await buildHeatmap(async (h) => {
        const s = (await q.select(matchers, h)).series;
        resolutions = s.map((x) => x.resolutionMs);
        return s;
      }, params);
      const raw = await buildHeatmap(
        async (h) => (await q.select(matchers, { minT: h.minT!, maxT: h.maxT! })).series,
        params,
      );
      expect(resolutions).toEqual([pushed.step, pushed.step]);
      expect(pushed.step).toBeGreaterThanOrEqual(10_000);
      const strip = (rows: typeof raw.rows) =>
        rows.map(({ lastT: _t, mean, recentMean, ...r }) => ({
          ...r,
          mean: round(mean),
          recentMean: round(recentMean),
        }));
      const { rows: pr, ...pushedRest } = pushed;
      const { rows: rr, ...rawRest } = raw;
      expect(pushedRest).toEqual(rawRest);
      expect(strip(pr)).toEqual(strip(rr));
    },
  );
});

describe.skipIf(!haveVm)('RemoteStorage rollup push-down: the spread fold', () => {
  let vm: VictoriaMetrics;
  let storage: RemoteStorage;

  beforeAll(async () => {
    vm = await startVictoriaMetrics();
    storage = new RemoteStorage({ writeUrl: vm.writeUrl, readUrl: vm.url, flavor: 'victoriametrics' });
    await storage.appender.append('a', batchOf('a'));
    await storage.checkpoint(new Map());
    await vm.forceFlush();
  });

  afterAll(async () => {
    await storage?.close();
    await vm?.stop();
  });

  it.each([10_000, 60_000])(
    'the spread (min, max, sum, count per column, recent means) is the same at %i ms',
    async (step) => {
      const q = storage.querier('a', LO, HI);
      const matchers = [eq('__name__', 'gpu_utilization_ratio')];
      const grid = columnGrid(LO, HI, step);
      // On a window boundary: windows count whole toward the recent mean (as with the embedded tiers), so an
      // unaligned start would differ from raw samples by the part of one window.
      const recentFrom = BASE + 22 * 60_000;
      const pushed = new SpreadAccumulator(grid);
      const raw = new SpreadAccumulator(grid);
      const windows = new RollupColumns(4);
      const buf = new SampleBuffer(64);
      const recent: [number | null, number | null][] = [];
      const sp = (await q.select(matchers, { minT: LO, maxT: HI, ...hintsFor(step, ['sum', 'count']) }))
        .series;
      const sr = (await q.select(matchers, { minT: LO, maxT: HI })).series;
      expect(sp.map((s) => s.resolutionMs)).toEqual([step, step]);
      for (let i = 0; i < sp.length; i++) {
        sp[i]!.readAggregates!(windows);
        sr[i]!.readSamples!(buf);
        recent.push([
          pushed.addAggregateArrays(windows, step, HI, recentFrom),
          raw.addSamples(buf, HI, recentFrom),
        ]);
      }
      expect(Array.from(pushed.present)).toEqual(Array.from(raw.present));
      expect(Array.from(pushed.min)).toEqual(Array.from(raw.min));
      expect(Array.from(pushed.max)).toEqual(Array.from(raw.max));
      expect(Array.from(pushed.sum).map(round)).toEqual(Array.from(raw.sum).map(round));
      for (const [p, r] of recent) expect(round(p)).toBe(round(r));
    },
  );
});

const fold60 = (s: SelectedSeries) => fold(s, 60_000);
const round = (x: number | null) => (x === null ? null : Math.round(x * 1e9) / 1e9);
