/**
 * The job page's hooks, as their pure logic (src/ui/lib/job-facts.ts, job-panels.ts, job-view.ts): the job's
 * facts handed to loads that started before the job answered; the panels' loader driven with answers that
 * arrive in any order — a newer load aborts the older, a live tail never overwrites the finer memory heatmap
 * or the second phase's charts, a live reload waits for the load in flight; and what the page derives from
 * panels and alerts (the NaN step, the rows to outline, the order of alert groups).
 */
import { describe, expect, it, vi } from 'vitest';
import type { AlertGroup } from '../../src/ui/lib/alert-groups.js';
import type { JobCause } from '../../src/ui/lib/causes.js';
import { JobFactsCell, jobFactsOf, MAX_GPU_LINES } from '../../src/ui/lib/job-facts.js';
import {
  EMPTY_PANELS,
  INITIAL_PANELS_STATE,
  type JobPanelsApi,
  JobPanelsLoader,
  type JobPanelsState,
  reduceJobPanels,
  type TimeWindow,
} from '../../src/ui/lib/job-panels.js';
import {
  nanStepOf,
  orderAlertGroups,
  remapHighlights,
  stragglerHighlights,
} from '../../src/ui/lib/job-view.js';
import type { HeatmapResponse, Matrix } from '../../src/ui/lib/matrix.js';
import type { Alert, Curve, Series, SpreadResponse } from '../../src/ui/lib/types.js';

const GiB = 2 ** 30;
const MIN = 60_000;

// ---- a recorded server: every request waits until the test answers it --------------------------------------

interface Call {
  readonly kind: 'curves' | 'spread' | 'heatmap' | 'series' | 'stragglers';
  readonly q: Record<string, unknown>;
  readonly signal: AbortSignal | undefined;
  answered: boolean;
  resolve(value: unknown): void;
}

class RecordedServer {
  readonly calls: Call[] = [];
  readonly api: JobPanelsApi = {
    fetchCurves: (_jobId, q, signal) => this.call('curves', q, signal) as never,
    fetchSpread: (q, signal) => this.call('spread', q, signal) as never,
    fetchHeatmap: (q, signal) => this.call('heatmap', q, signal) as never,
    fetchSeries: (q, signal) => this.call('series', q, signal) as never,
    fetchStragglers: (_jobId, start, end, signal) => this.call('stragglers', { start, end }, signal) as never,
  };

  private call(kind: Call['kind'], query: object, signal?: AbortSignal): Promise<unknown> {
    const q = query as Record<string, unknown>;
    return new Promise((resolve, reject) => {
      const c: Call = {
        kind,
        q,
        signal,
        answered: false,
        resolve: (v) => {
          c.answered = true;
          resolve(v);
        },
      };
      this.calls.push(c);
      // As fetch does: an aborted request rejects, and one asked with an aborted signal at once.
      if (signal?.aborted) reject(new DOMException('aborted', 'AbortError'));
      signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
    });
  }

  /** The open requests matching `pred`. */
  open(pred: (c: Call) => boolean): Call[] {
    return this.calls.filter((c) => !c.answered && !c.signal?.aborted && pred(c));
  }

  /** Waits for exactly one open request matching `pred` and answers it. */
  async answer(what: string, pred: (c: Call) => boolean, value: unknown): Promise<Call> {
    let found: Call | undefined;
    await vi.waitFor(() => {
      const open = this.open(pred);
      if (open.length !== 1) throw new Error(`${open.length} open requests for ${what}`);
      found = open[0];
    });
    found!.resolve(value);
    return found!;
  }
}

const isMemory = (c: Call) => c.kind === 'heatmap' && c.q.metric === 'gpu_memory_used_bytes';
const isFineMemory = (c: Call) => isMemory(c) && c.q.lo !== undefined && c.q.lo !== 0;
const isCoarseMemory = (c: Call) => isMemory(c) && (c.q.lo === undefined || c.q.lo === 0);
const isUtil = (c: Call) => c.kind === 'heatmap' && c.q.metric === 'gpu_utilization_ratio';
const spreadOf = (metric: string) => (c: Call) => c.kind === 'spread' && c.q.metric === metric;

/** A heatmap answer: one row per rank, every cell the byte `byte`; `last` in value units. */
function heatmap(
  metric: string,
  o: { start: number; step: number; cols: number; lo: number; hi: number; byte: number; last: number },
): HeatmapResponse {
  const ranks = 4;
  return {
    metric,
    by: ['node_id', 'gpu'],
    start: o.start,
    step: o.step,
    cols: o.cols,
    lo: o.lo,
    hi: o.hi,
    encoding: 'u8-base64',
    values: Buffer.from(new Uint8Array(ranks * o.cols).map((_, i) => o.byte + (i % 2))).toString('base64'),
    rows: Array.from({ length: ranks }, (_, r) => ({
      labels: { node_id: 'n0', gpu: String(r), rank: String(r) },
      series: 1,
      mean: o.last,
      recentMean: o.last,
      last: o.last,
      lastT: o.start + o.cols * o.step,
      z: null,
    })),
  };
}

function spread(metric: string, start: number, step: number, cols: number): SpreadResponse {
  const t = Array.from({ length: cols }, (_, i) => start + i * step);
  const v = t.map(() => 1);
  return { metric, start, step, cols, series: 4, t, min: v, max: v, mean: v, sum: v, count: v };
}

function curve(t: readonly number[]): Curve {
  return {
    metric: 'train_loss',
    labels: { job_id: 'j1' },
    t: [...t],
    v: t.map(() => 2),
    step: t.map((_, i) => i),
  };
}

function gpuLine(t: readonly number[]): Series {
  return { labels: { __name__: 'gpu_power_watts', rank: '0' }, t: [...t], v: t.map(() => 300) };
}

const W: TimeWindow = { start: 0, end: 10 * MIN };
const STEP = 5_000;
const COLS = W.end / STEP;

function loaderFor(server: RecordedServer, now = () => W.end, sizes = { points: 200, cols: 200 }) {
  const facts = new JobFactsCell('j1');
  facts.update(jobFactsOf({ gpus: 4, worldSize: 4 }, ['train_loss', 'train_samples_per_second']));
  return new JobPanelsLoader({
    jobId: 'j1',
    api: server.api,
    facts: () => facts.get(),
    sizes: () => sizes,
    now,
  });
}

/** Answers a load's first phase: memory at 0..80 GiB with every rank in two bytes (needs a finer scale). */
async function answerFirstPhase(server: RecordedServer, w: TimeWindow, pointsAt: readonly number[]) {
  await server.answer('curves', (c) => c.kind === 'curves', {
    start: w.start,
    end: w.end,
    curves: [curve(pointsAt)],
  });
  await server.answer('throughput', spreadOf('train_samples_per_second'), spread('x', w.start, STEP, COLS));
  await server.answer('step time', spreadOf('train_step_duration_seconds'), {
    ...spread('train_step_duration_seconds', w.start, STEP, COLS),
  });
  await server.answer(
    'utilization',
    isUtil,
    heatmap('gpu_utilization_ratio', {
      start: w.start,
      step: STEP,
      cols: COLS,
      lo: 0,
      hi: 1,
      byte: 200,
      last: 0.8,
    }),
  );
  await server.answer(
    'coarse memory',
    isCoarseMemory,
    heatmap('gpu_memory_used_bytes', {
      start: w.start,
      step: STEP,
      cols: COLS,
      lo: 0,
      hi: 80 * GiB,
      byte: 228,
      last: 72 * GiB,
    }),
  );
}

/** Answers the second phase: the finer memory heatmap (72..73 GiB), the total, the per-GPU lines. */
async function answerSecondPhase(server: RecordedServer, w: TimeWindow, pointsAt: readonly number[]) {
  await server.answer('total memory', spreadOf('gpu_memory_total_bytes'), {
    ...spread('gpu_memory_total_bytes', w.start, STEP, 20),
    max: Array(20).fill(80 * GiB),
  });
  await server.answer('per-GPU lines', (c) => c.kind === 'series', { series: [gpuLine(pointsAt)] });
  await server.answer(
    'fine memory',
    isFineMemory,
    heatmap('gpu_memory_used_bytes', {
      start: w.start,
      step: STEP,
      cols: COLS,
      lo: 71.5 * GiB,
      hi: 72.5 * GiB,
      byte: 60,
      last: 72 * GiB,
    }),
  );
}

async function until(loader: JobPanelsLoader, pred: (s: JobPanelsState) => boolean): Promise<void> {
  await vi.waitFor(() => {
    if (!pred(loader.getState())) throw new Error('not yet');
  });
}

describe('the job facts that loads wait for (useJobFacts)', () => {
  it('releases the loads that waited for the first answer, and reports only changes that alter a load', async () => {
    const cell = new JobFactsCell('j1');
    const waiting = cell.get();
    const first = jobFactsOf({ gpus: 8, worldSize: 8 }, ['train_samples_per_second']);
    expect(cell.update(first)).toBe(false);
    await expect(waiting).resolves.toEqual({ throughputMetric: 'train_samples_per_second', few: true });
    // The same facts again: no reload.
    expect(
      cell.update(jobFactsOf({ gpus: 8, worldSize: 8 }, ['train_samples_per_second', 'train_loss'])),
    ).toBe(false);
    // A tokens/s metric appeared: the throughput chart must load it.
    expect(cell.update(jobFactsOf({ gpus: 8, worldSize: 8 }, ['train_tokens_per_second']))).toBe(true);
    await expect(cell.get()).resolves.toMatchObject({ throughputMetric: 'train_tokens_per_second' });
    // More GPUs than lines fit: bands instead.
    expect(
      cell.update(jobFactsOf({ gpus: MAX_GPU_LINES + 1, worldSize: null }, ['train_tokens_per_second'])),
    ).toBe(true);
  });
});

describe('loading a job page (useJobPanels)', () => {
  it('loads the first view, then the finer memory heatmap, the total and the per-GPU charts', async () => {
    const server = new RecordedServer();
    const loader = loaderFor(server);
    const done = loader.loadWindow(W);
    await answerFirstPhase(server, W, [1000, 2000]);
    await until(loader, (s) => s.loaded === 'view');
    expect(loader.getState().panels.memory!.hi).toBe(80 * GiB);
    expect(loader.loading).toBe(true);
    await answerSecondPhase(server, W, [1000, 2000]);
    await done;
    const s = loader.getState();
    expect(s.loaded).toBe('all');
    expect(s.window).toEqual(W);
    expect(s.panels.memory!.lo).toBe(71.5 * GiB);
    expect(s.panels.memoryTotal).toBe(80 * GiB);
    expect(s.panels.gpuLines).toHaveLength(1);
    expect(loader.loading).toBe(false);
  });

  it('keeps the finer memory heatmap and the per-GPU charts when a live tail asked before them answers after', async () => {
    const server = new RecordedServer();
    const loader = loaderFor(server);
    const done = loader.loadWindow(W);
    await answerFirstPhase(server, W, [6000, 7000]);
    await until(loader, (s) => s.loaded === 'view');
    // New samples arrive while the second phase is in flight: the tail is asked for the coarse heatmap.
    const w2 = { start: W.start + STEP, end: W.end + STEP };
    const tick = loader.liveTick(w2, 'train_samples_per_second');
    await vi.waitFor(() => expect(server.open(isCoarseMemory)).toHaveLength(1));
    // The second phase answers first …
    await answerSecondPhase(server, W, [6000, 7000]);
    await done;
    const fine = loader.getState().panels.memory!;
    const lines = loader.getState().panels.gpuLines;
    expect(fine.lo).toBe(71.5 * GiB);
    // … then the tail.
    await server.answer('curves tail', (c) => c.kind === 'curves', {
      start: 7001,
      end: w2.end,
      curves: [curve([8000])],
    });
    await server.answer(
      'throughput tail',
      spreadOf('train_samples_per_second'),
      spread('x', W.end - STEP, STEP, 2),
    );
    await server.answer('step-time tail', spreadOf('train_step_duration_seconds'), {
      ...spread('train_step_duration_seconds', W.end - STEP, STEP, 2),
    });
    await server.answer(
      'utilization tail',
      isUtil,
      heatmap('gpu_utilization_ratio', {
        start: W.end - STEP,
        step: STEP,
        cols: 2,
        lo: 0,
        hi: 1,
        byte: 100,
        last: 0.4,
      }),
    );
    await server.answer(
      'coarse memory tail',
      isCoarseMemory,
      heatmap('gpu_memory_used_bytes', {
        start: W.end - STEP,
        step: STEP,
        cols: 2,
        lo: 0,
        hi: 80 * GiB,
        byte: 228,
        last: 72 * GiB,
      }),
    );
    await tick;
    const s = loader.getState();
    // The panels the tail was for moved on …
    expect(s.panels.curves[0]!.t).toEqual([6000, 7000, 8000]);
    const util = s.panels.util!;
    expect([util.start, util.start + util.cols * util.step]).toEqual([w2.start, w2.end]);
    expect(s.window).toEqual(w2);
    // … and the ones a load replaced meanwhile kept the newer value: not the coarse scale, not empty.
    expect(s.panels.memory).toBe(fine);
    expect(s.panels.gpuLines).toBe(lines);
    expect(s.loaded).toBe('all');
  });

  it('tails the finer heatmap at its own scale once it is shown', async () => {
    const server = new RecordedServer();
    const loader = loaderFor(server);
    const done = loader.loadWindow(W);
    await answerFirstPhase(server, W, [1000]);
    await answerSecondPhase(server, W, [1000]);
    await done;
    const tick = loader.liveTick({ start: W.start + STEP, end: W.end + STEP }, 'train_samples_per_second');
    await vi.waitFor(() => expect(server.open(isFineMemory)).toHaveLength(1));
    expect(server.open(isFineMemory)[0]!.q).toMatchObject({ lo: 71.5 * GiB, hi: 72.5 * GiB, step: STEP });
    expect(server.open(isCoarseMemory)).toHaveLength(0);
    loader.close();
    await expect(tick).rejects.toThrow(/aborted/);
  });

  it('waits for the load in flight before a live reload, so that its finer heatmap still comes', async () => {
    const server = new RecordedServer();
    // Four points per chart: a tail of raw points outgrows it and asks for a reload.
    const loader = loaderFor(server, () => W.end, { points: 4, cols: 200 });
    const done = loader.loadWindow(W);
    await answerFirstPhase(server, W, [1000]);
    await until(loader, (s) => s.loaded === 'view');
    const fineRequest = () => server.calls.find(isFineMemory)!;
    await vi.waitFor(() => expect(fineRequest()).toBeDefined());
    // A tail during the second phase brings 20 raw points: the curves need decimating again.
    const w2 = { start: W.start, end: W.end + STEP };
    const tick = loader.liveTick(w2, 'train_samples_per_second');
    await server.answer('curves tail', (c) => c.kind === 'curves', {
      start: 1001,
      end: w2.end,
      curves: [curve(Array.from({ length: 20 }, (_, i) => 2000 + i))],
    });
    await server.answer(
      'throughput tail',
      spreadOf('train_samples_per_second'),
      spread('x', W.end - STEP, STEP, 2),
    );
    await server.answer('step-time tail', spreadOf('train_step_duration_seconds'), {
      ...spread('train_step_duration_seconds', W.end - STEP, STEP, 2),
    });
    await server.answer(
      'utilization tail',
      isUtil,
      heatmap('gpu_utilization_ratio', {
        start: W.end - STEP,
        step: STEP,
        cols: 2,
        lo: 0,
        hi: 1,
        byte: 100,
        last: 0.4,
      }),
    );
    await server.answer(
      'coarse memory tail',
      isCoarseMemory,
      heatmap('gpu_memory_used_bytes', {
        start: W.end - STEP,
        step: STEP,
        cols: 2,
        lo: 0,
        hi: 80 * GiB,
        byte: 228,
        last: 72 * GiB,
      }),
    );
    await tick;
    const requests = server.calls.length;
    // The next tick comes while the finer heatmap is still asked for: it must neither abort it nor reload.
    await loader.liveTick(w2, 'train_samples_per_second');
    expect(fineRequest().signal!.aborted).toBe(false);
    expect(server.calls.length).toBe(requests);
    await answerSecondPhase(server, W, [1000]);
    await done;
    const fine = loader.getState().panels.memory!;
    expect(fine.lo).toBe(71.5 * GiB);
    // Now the reload runs; while its first phase is shown, the fitted heatmap and the per-GPU charts stay.
    const reload = loader.liveTick(w2, 'train_samples_per_second');
    await answerFirstPhase(server, w2, [1000, 3000]);
    await until(loader, (s) => s.panels.curves[0]!.t.length === 2);
    expect(loader.getState().panels.memory).toBe(fine);
    expect(loader.getState().panels.gpuLines).not.toBeNull();
    expect(loader.getState().loaded).toBe('all');
    await answerSecondPhase(server, w2, [1000, 3000]);
    await reload;
    expect(loader.getState().panels.memory).not.toBe(fine);
    expect(loader.getState().panels.memory!.lo).toBe(71.5 * GiB);
    expect(loader.getState().window).toEqual(w2);
  });

  it('aborts the load before a newer one (and the live tail in flight), and drops its answers', async () => {
    const server = new RecordedServer();
    const loader = loaderFor(server);
    const first = loader.loadWindow(W);
    await vi.waitFor(() => expect(server.open(isCoarseMemory)).toHaveLength(1));
    const firstCalls = [...server.calls];
    const w2 = { start: 5 * MIN, end: 10 * MIN };
    const second = loader.loadWindow(w2);
    await first;
    expect(firstCalls.every((c) => c.signal?.aborted)).toBe(true);
    await answerFirstPhase(server, w2, [6 * MIN]);
    await answerSecondPhase(server, w2, [6 * MIN]);
    await second;
    expect(loader.getState().window).toEqual(w2);
    // A tail in flight belongs to the panels shown: a new load aborts it, and its answer is never merged.
    const tick = loader.liveTick({ start: 5 * MIN, end: 11 * MIN }, 'train_samples_per_second');
    await vi.waitFor(() => expect(server.open((c) => c.kind === 'curves')).toHaveLength(1));
    const tailCalls = server.open(() => true);
    const third = loader.loadWindow(W);
    expect(tailCalls.every((c) => c.signal?.aborted)).toBe(true);
    await expect(tick).rejects.toThrow(/aborted/);
    expect(loader.getState().window).toEqual(w2);
    loader.close();
    await third;
    expect(server.open(() => true)).toHaveLength(0);
  });

  it('records a panel that failed and still shows the others', async () => {
    const server = new RecordedServer();
    const loader = loaderFor(server);
    const done = loader.loadWindow(W);
    await vi.waitFor(() => expect(server.open(isUtil)).toHaveLength(1));
    const util = server.open(isUtil)[0]!;
    // Answered with a rejected promise: the request fails.
    (util as { resolve(v: unknown): void }).resolve(Promise.reject(new Error('heatmap failed')));
    await server.answer('curves', (c) => c.kind === 'curves', {
      start: 0,
      end: W.end,
      curves: [curve([1000])],
    });
    await server.answer('throughput', spreadOf('train_samples_per_second'), spread('x', 0, STEP, COLS));
    await server.answer('step time', spreadOf('train_step_duration_seconds'), spread('s', 0, STEP, COLS));
    await server.answer(
      'coarse memory',
      isCoarseMemory,
      heatmap('gpu_memory_used_bytes', {
        start: 0,
        step: STEP,
        cols: COLS,
        lo: 0,
        hi: 80 * GiB,
        byte: 100,
        last: 30 * GiB,
      }),
    );
    await until(loader, (s) => s.loaded !== false);
    const s = loader.getState();
    expect((s.errors.util as Error).message).toBe('heatmap failed');
    expect(s.panels.util).toBeNull();
    expect(s.panels.curves).toHaveLength(1);
    loader.close();
    await done;
  });
});

describe('the panels reducer', () => {
  const m = (lo: number): Matrix => ({
    metric: 'gpu_memory_used_bytes',
    by: ['node_id', 'gpu'],
    start: 0,
    step: 1,
    cols: 1,
    rows: [],
    lo,
    hi: lo + 1,
    cells: new Uint8Array(0),
  });

  it('merges a tail only into the panels it was fetched for, and only for the newest load', () => {
    const coarse = m(0);
    const fine = m(70);
    const base = { ...EMPTY_PANELS, memory: coarse };
    let s = reduceJobPanels(INITIAL_PANELS_STATE, { type: 'begin', load: 1 });
    s = reduceJobPanels(s, {
      type: 'view',
      load: 1,
      panels: base,
      errors: {},
      window: W,
      stragglers: null,
      keepShown: false,
    });
    s = reduceJobPanels(s, { type: 'all', load: 1, panels: { memory: fine }, errors: {} });
    const tailed = m(1);
    const after = reduceJobPanels(s, {
      type: 'tail',
      load: 1,
      base,
      panels: { memory: tailed, curves: [curve([1])] },
      window: W,
    });
    expect(after.panels.memory).toBe(fine);
    expect(after.panels.curves).toHaveLength(1);
    // An answer for an older load changes nothing.
    const newer = reduceJobPanels(s, { type: 'begin', load: 2 });
    expect(
      reduceJobPanels(newer, { type: 'all', load: 1, panels: { memory: coarse }, errors: {} }).panels.memory,
    ).toBe(fine);
  });
});

describe('what the job page derives (useJobHealth, GPU panels)', () => {
  const alert = (labels: Record<string, string>, state: Alert['state'], activeAtMs: number): Alert => ({
    fingerprint: JSON.stringify(labels),
    labels,
    annotations: {},
    state,
    activeAtMs,
    firingAtMs: state === 'pending' ? null : activeAtMs,
    resolvedAtMs: state === 'resolved' ? activeAtMs + MIN : null,
    value: null,
    source: 'detector',
    name: labels.alertname ?? '',
    url: '',
  });

  it('finds the step at which the loss stopped being finite', () => {
    const c = { ...curve([1, 2, 3]), v: [2, 'NaN' as const, 'NaN' as const], step: [100, 101, 102] };
    expect(nanStepOf([c])).toBe(101);
    expect(nanStepOf([curve([1, 2])])).toBeNull();
  });

  it('outlines the GPUs that firing alerts name, else the straggler, on both heatmaps', () => {
    const rows = (order: number[]) =>
      order.map((r) => ({
        labels: { node_id: 'n0', gpu: String(r), rank: String(r) },
        series: 1,
        mean: null,
        recentMean: null,
        last: null,
        lastT: null,
        z: null,
      }));
    const util: Matrix = { ...heatmapMatrix(), rows: rows([0, 1, 2, 3]) };
    const memory: Matrix = { ...heatmapMatrix(), rows: rows([3, 2, 1, 0]) };
    const straggler = {
      metric: 'train_step_duration_seconds',
      window: W,
      medianSeconds: 1,
      ranks: [],
      straggler: { labels: { rank: '2' }, mean: 1.4, z: 5, slowdown: 0.4 },
    };
    const onlyStraggler = stragglerHighlights(util, [], straggler);
    expect([...onlyStraggler.keys()]).toEqual([2]);
    expect(onlyStraggler.get(2)!.label).toBe('straggler · rank 2 · n0/gpu2 +40% step time');
    const hot = alert(
      { alertname: 'GPUThermalThrottle', node_id: 'n0', gpu: '1', severity: 'warning' },
      'firing',
      0,
    );
    const withAlert = stragglerHighlights(util, [hot], straggler);
    expect([...withAlert.keys()]).toEqual([1]);
    expect([...remapHighlights(util, memory, withAlert).keys()]).toEqual([2]);
  });

  it('lists the cause of the failure first, then what fires, then pending, then the rest, newest first', () => {
    const g = (a: Alert): AlertGroup => ({ cause: a, consequences: [] });
    const resolvedOld = g(alert({ alertname: 'A' }, 'resolved', 1));
    const resolvedNew = g(alert({ alertname: 'B' }, 'resolved', 5));
    const pending = g(alert({ alertname: 'C' }, 'pending', 3));
    const firing = g(alert({ alertname: 'D' }, 'firing', 2));
    const nan = g(alert({ alertname: 'TrainingNaN' }, 'resolved', 0));
    const cause = { kind: 'diverged', alert: nan.cause, text: 'diverged', level: 3 } as JobCause;
    const names = orderAlertGroups([resolvedOld, pending, nan, firing, resolvedNew], cause).map(
      (x) => x.cause.name,
    );
    expect(names).toEqual(['TrainingNaN', 'D', 'C', 'B', 'A']);
  });
});

function heatmapMatrix(): Matrix {
  return {
    metric: 'gpu_utilization_ratio',
    by: ['node_id', 'gpu'],
    start: 0,
    step: 1,
    cols: 1,
    rows: [],
    lo: 0,
    hi: 1,
    cells: new Uint8Array(0),
  };
}
