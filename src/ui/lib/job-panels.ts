/**
 * Loading a job page's panels: a full load of a window (two phases), live tails merged into what is shown,
 * and the straggler scores. A small store that the `useJobPanels` hook subscribes to; DOM-free and given
 * its fetch functions, so unit tests drive it in Node with answers that arrive in any order.
 *
 * Invariants:
 * - A full load aborts the full load before it and any live tail in flight; leaving the page aborts all.
 * - Answers of a load that a newer one replaced are dropped: a slow old answer never overwrites a newer one.
 * - A live tail never aborts a full load, and a live reload (to refit the memory scale or decimate again)
 *   waits until the full load in flight is done: the finer memory heatmap the load asked for always comes.
 * - A tail is merged into the panels it was fetched for; a panel that a load replaced meanwhile (the finer
 *   memory heatmap over the coarse one, the per-GPU charts of the second phase) keeps the newer value.
 */
import { dataExtent } from './color-scale.js';
import type { JobFacts } from './job-facts.js';
import { mergeCurves, mergeSeries, mergeSpread } from './live-merge.js';
import { decodeMatrix, type HeatmapResponse, type Matrix, mergeMatrix } from './matrix.js';
import type { CurvesQuery, HeatmapQuery, SeriesQuery, SpreadQuery } from './queries.js';
import type { Curve, Series, SpreadResponse, StragglerResponse } from './types.js';

export const STRAGGLER_REFRESH_MS = 10_000;
/** The per-GPU detail metrics: a line per GPU (few GPUs) or a min–mean–max band each (many). */
export const GPU_DETAIL_METRIC_NAMES = [
  'gpu_power_watts',
  'gpu_temperature_celsius',
  'gpu_sm_clock_hertz',
] as const;
export type GpuDetailMetric = (typeof GPU_DETAIL_METRIC_NAMES)[number];
/**
 * Below this many byte levels between the smallest and largest cell, the memory heatmap is asked again
 * with its scale set to the data's extent: bytes from zero give 73.8 GB and 73.9 GB of 80 the same byte.
 */
export const MIN_HEAT_LEVELS = 64;
/** Live values that leave the memory heatmap's scale refit it at most this often. */
export const MEMORY_REFIT_MS = 60_000;

export interface TimeWindow {
  readonly start: number;
  readonly end: number;
}

/** Everything the job page draws, apart from the job's metadata. */
export interface Panels {
  readonly curves: readonly Curve[];
  readonly throughput: SpreadResponse | null;
  readonly stepTime: SpreadResponse | null;
  readonly util: Matrix | null;
  readonly memory: Matrix | null;
  /** The GPUs' total memory (bytes, the largest reported): the marker on the memory heatmap's legend. */
  readonly memoryTotal: number | null;
  /** Per GPU lines (few GPUs) … */
  readonly gpuLines: readonly Series[] | null;
  /** … or one band per metric (many GPUs). */
  readonly gpuBands: Readonly<Record<string, SpreadResponse>> | null;
}

export const EMPTY_PANELS: Panels = {
  curves: [],
  throughput: null,
  stepTime: null,
  util: null,
  memory: null,
  memoryTotal: null,
  gpuLines: null,
  gpuBands: null,
};

/** The panels of the second phase: loaded after the first view is drawn. */
const SECOND_PHASE = ['memory', 'memoryTotal', 'gpuLines', 'gpuBands'] as const;

export type PanelErrors = Partial<Record<keyof Panels | 'stragglers', unknown>>;

/** Nothing yet, the first view (everything above the per-GPU charts), or every panel. */
export type LoadPhase = false | 'view' | 'all';

export interface JobPanelsState {
  readonly panels: Panels;
  readonly errors: PanelErrors;
  readonly loaded: LoadPhase;
  /** The window the panels show (moves with live tails). */
  readonly window: TimeWindow | null;
  readonly stragglers: StragglerResponse | null;
  /** The newest full load begun: answers of older loads are dropped. */
  readonly load: number;
}

export const INITIAL_PANELS_STATE: JobPanelsState = {
  panels: EMPTY_PANELS,
  errors: {},
  loaded: false,
  window: null,
  stragglers: null,
  load: 0,
};

export type JobPanelsAction =
  /** A full load began. */
  | { readonly type: 'begin'; readonly load: number }
  /**
   * The first phase answered. A live reload (`keepShown`) keeps showing the second phase's panels of the
   * load before (the memory heatmap at its fitted scale, the per-GPU charts) until its own second phase
   * answers, instead of falling back to the coarse heatmap and empty charts for a moment each minute.
   */
  | {
      readonly type: 'view';
      readonly load: number;
      readonly panels: Partial<Panels>;
      readonly errors: PanelErrors;
      readonly window: TimeWindow;
      readonly stragglers: StragglerResponse | null;
      readonly keepShown: boolean;
    }
  /** The second phase answered. */
  | {
      readonly type: 'all';
      readonly load: number;
      readonly panels: Partial<Panels>;
      readonly errors: PanelErrors;
    }
  /** Live tails merged into `base`, the panels as they were when the tails were asked for. */
  | {
      readonly type: 'tail';
      readonly load: number;
      readonly base: Panels;
      readonly panels: Partial<Panels>;
      readonly window: TimeWindow;
    }
  | { readonly type: 'stragglers'; readonly stragglers: StragglerResponse }
  | { readonly type: 'stragglers-failed'; readonly error: unknown };

export function reduceJobPanels(state: JobPanelsState, action: JobPanelsAction): JobPanelsState {
  switch (action.type) {
    case 'begin':
      return { ...state, load: action.load };
    case 'view': {
      if (action.load !== state.load) return state;
      const kept: Partial<Panels> = {};
      const keptErrors: PanelErrors = {};
      if (action.keepShown && state.loaded === 'all')
        for (const k of SECOND_PHASE) {
          (kept as Record<string, unknown>)[k] = state.panels[k];
          if (state.errors[k] !== undefined) keptErrors[k] = state.errors[k];
        }
      const keep = action.keepShown && state.loaded === 'all';
      return {
        ...state,
        panels: { ...EMPTY_PANELS, ...action.panels, ...kept },
        errors: { ...action.errors, ...keptErrors },
        loaded: keep ? 'all' : 'view',
        window: action.window,
        stragglers: action.stragglers ?? state.stragglers,
      };
    }
    case 'all':
      if (action.load !== state.load) return state;
      return {
        ...state,
        panels: { ...state.panels, ...action.panels },
        errors: withErrors(state.errors, SECOND_PHASE, action.errors),
        loaded: 'all',
      };
    case 'tail': {
      if (action.load !== state.load) return state;
      const next: Record<string, unknown> = { ...state.panels };
      for (const [k, v] of Object.entries(action.panels))
        if (state.panels[k as keyof Panels] === action.base[k as keyof Panels]) next[k] = v;
      return { ...state, panels: next as unknown as Panels, window: action.window };
    }
    case 'stragglers':
      return {
        ...state,
        stragglers: action.stragglers,
        errors: withErrors(state.errors, ['stragglers'], {}),
      };
    case 'stragglers-failed':
      return { ...state, errors: { ...state.errors, stragglers: action.error } };
  }
}

/** `errors` with the given keys replaced by those of `next` (absent there: cleared). */
function withErrors(
  errors: PanelErrors,
  keys: readonly (keyof PanelErrors)[],
  next: PanelErrors,
): PanelErrors {
  const out: PanelErrors = { ...errors };
  for (const k of keys) delete out[k];
  return { ...out, ...next };
}

/** The fetch functions the loader calls: the dashboard's API client in the page, recorded answers in tests. */
export interface JobPanelsApi {
  fetchCurves(jobId: string, q: CurvesQuery, signal?: AbortSignal): Promise<{ curves: Curve[] }>;
  fetchSpread(q: SpreadQuery, signal?: AbortSignal): Promise<SpreadResponse>;
  fetchHeatmap(q: HeatmapQuery, signal?: AbortSignal): Promise<HeatmapResponse>;
  fetchSeries(q: SeriesQuery, signal?: AbortSignal): Promise<{ series: Series[] }>;
  fetchStragglers(
    jobId: string,
    start: number,
    end: number,
    signal?: AbortSignal,
  ): Promise<StragglerResponse>;
}

export interface JobPanelsOptions {
  readonly jobId: string;
  readonly api: JobPanelsApi;
  /** The job's facts; waits for the job's first answer. */
  readonly facts: () => Promise<JobFacts>;
  /** Chart points and heatmap columns that fit the screen now. */
  readonly sizes: () => { readonly points: number; readonly cols: number };
  readonly now?: () => number;
}

interface FullLoad {
  readonly id: number;
  readonly abort: AbortController;
  /** 'first': nothing shown yet; 'view': the first phase is shown; 'done': every panel answered (or failed). */
  phase: 'first' | 'view' | 'done';
}

/** Resolves every task, keeping each one's value or error under its key. */
async function settle<T extends Record<string, Promise<unknown>>>(
  tasks: T,
): Promise<{ values: Partial<Panels>; errors: PanelErrors }> {
  const keys = Object.keys(tasks);
  const results = await Promise.allSettled(keys.map((k) => tasks[k]!));
  const values: Record<string, unknown> = {};
  const errors: Record<string, unknown> = {};
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') values[keys[i]!] = r.value;
    else errors[keys[i]!] = r.reason;
  });
  return { values: values as Partial<Panels>, errors: errors as PanelErrors };
}

function lastTime(series: readonly { t: readonly number[] }[], fallback: number): number {
  let last = fallback;
  for (const s of series) if (s.t.length) last = Math.max(last, s.t[s.t.length - 1]!);
  return last;
}

export class JobPanelsLoader {
  private state: JobPanelsState = INITIAL_PANELS_STATE;
  private readonly listeners = new Set<() => void>();
  private readonly labels: Readonly<Record<string, string>>;
  private readonly now: () => number;
  private loads = 0;
  private current: FullLoad | null = null;
  /** The live tail in flight: a full load aborts it (its answer would belong to the panels replaced). */
  private tail: AbortController | null = null;
  /** A live tail found the memory scale outgrown or too many raw points: reload once no load is in flight. */
  private reloadNeeded = false;
  private memoryFittedAt = 0;
  private stragglersAt = 0;

  constructor(private readonly opts: JobPanelsOptions) {
    this.labels = { job_id: opts.jobId };
    this.now = opts.now ?? Date.now;
  }

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  readonly getState = (): JobPanelsState => this.state;

  /** Whether a full load is in flight (begun, its second phase not answered yet). */
  get loading(): boolean {
    return this.current !== null && this.current.phase !== 'done';
  }

  private dispatch(action: JobPanelsAction): void {
    const next = reduceJobPanels(this.state, action);
    if (next === this.state) return;
    this.state = next;
    for (const l of this.listeners) l();
  }

  /** Aborts every request in flight (the page is left, or shows another job). */
  close(): void {
    this.current?.abort.abort();
    this.tail?.abort();
    this.current = null;
    this.tail = null;
  }

  /**
   * Loads every panel for a window in two phases: first what answers "is the run healthy" (curves,
   * throughput, step time with the straggler scores, the rank heatmaps), then the finer memory heatmap and
   * the per-GPU power, temperature and clocks, so that the first view is not held up by the 1,500 series
   * below it. Aborts the full load before it and any live tail in flight. `live`: a reload that live tails
   * asked for, which keeps showing the second phase's panels until its own answer.
   */
  async loadWindow(w: TimeWindow, live = false): Promise<void> {
    this.current?.abort.abort();
    this.tail?.abort();
    this.tail = null;
    const load: FullLoad = { id: ++this.loads, abort: new AbortController(), phase: 'first' };
    this.current = load;
    this.reloadNeeded = false;
    this.dispatch({ type: 'begin', load: load.id });
    const { api, jobId, facts } = this.opts;
    const { signal } = load.abort;
    const { points, cols } = this.opts.sizes();
    const labels = this.labels;
    const heat = (metric: string) =>
      api
        .fetchHeatmap(
          { metric, start: w.start, end: w.end, by: ['node_id', 'gpu'], keep: ['rank'], cols, labels },
          signal,
        )
        .then(decodeMatrix);
    const first = {
      curves: api.fetchCurves(jobId, { start: w.start, end: w.end, points }, signal).then((d) => d.curves),
      throughput: facts().then((f) =>
        api.fetchSpread(
          { metric: f.throughputMetric, start: w.start, end: w.end, cols: points, labels },
          signal,
        ),
      ),
      stepTime: api.fetchSpread(
        {
          metric: 'train_step_duration_seconds',
          start: w.start,
          end: w.end,
          cols: points,
          labels,
          stragglers: true,
        },
        signal,
      ),
      util: heat('gpu_utilization_ratio'),
      memory: heat('gpu_memory_used_bytes'),
    };
    // The second phase is asked for at once too: the server answers requests one after another, so it
    // works on them while the browser draws the first view instead of idling until that is done.
    const second = facts().then(({ few }) =>
      settle({
        memory: first.memory.then((coarse) => this.finerMemory(coarse, signal)),
        memoryTotal: api
          .fetchSpread(
            { metric: 'gpu_memory_total_bytes', start: w.start, end: w.end, cols: 20, labels },
            signal,
          )
          .then((t) => {
            let max: number | null = null;
            for (const v of t.max) if (v !== null && Number.isFinite(v) && (max === null || v > max)) max = v;
            return max;
          }),
        gpuLines: few
          ? api
              .fetchSeries(
                { metric: GPU_DETAIL_METRIC_NAMES, labels, start: w.start, end: w.end, points },
                signal,
              )
              .then((d) => d.series)
          : Promise.resolve(null),
        gpuBands: few
          ? Promise.resolve(null)
          : Promise.all(
              GPU_DETAIL_METRIC_NAMES.map((metric) =>
                api.fetchSpread({ metric, start: w.start, end: w.end, cols: points, labels }, signal),
              ),
            ).then((list) => Object.fromEntries(list.map((x) => [x.metric, x]))),
      }),
    );
    const one = await settle(first);
    if (signal.aborted) return;
    const stragglers = one.values.stepTime?.stragglers ?? null;
    if (stragglers) this.stragglersAt = this.now();
    this.dispatch({
      type: 'view',
      load: load.id,
      panels: one.values,
      errors: one.errors,
      window: w,
      stragglers,
      keepShown: live,
    });
    load.phase = 'view';
    const two = await second;
    if (signal.aborted) return;
    load.phase = 'done';
    this.dispatch({ type: 'all', load: load.id, panels: two.values, errors: two.errors });
  }

  /** The memory heatmap again with its scale fitted to the data, when bytes from zero hide the variation. */
  private async finerMemory(coarse: Matrix, signal: AbortSignal): Promise<Matrix> {
    const ext = dataExtent(coarse);
    if (!ext || ext.levels >= MIN_HEAT_LEVELS) return coarse;
    // One level of margin each side: a cell's true value is within half a level of its byte's.
    const level = (coarse.hi - coarse.lo) / 254;
    this.memoryFittedAt = this.now();
    return this.opts.api
      .fetchHeatmap(
        {
          metric: 'gpu_memory_used_bytes',
          start: coarse.start,
          end: coarse.start + coarse.cols * coarse.step,
          step: coarse.step,
          by: ['node_id', 'gpu'],
          keep: ['rank'],
          lo: ext.lo - level,
          hi: ext.hi + level,
          labels: this.labels,
        },
        signal,
      )
      .then(decodeMatrix);
  }

  /**
   * New samples of the job arrived: fetches only what is new for each panel and merges it, or reloads the
   * window when the tails asked for it. Does nothing before the first view; never aborts a full load.
   */
  async liveTick(w: TimeWindow, throughputMetric: string): Promise<void> {
    const load = this.current;
    if (!load || load.phase === 'first') return;
    if (this.reloadNeeded) {
      // A reload waits for the load in flight: aborting it would drop the finer heatmap it asked for.
      if (load.phase === 'done') await this.loadWindow(w, true);
      return;
    }
    this.tail?.abort();
    const abort = new AbortController();
    this.tail = abort;
    const { signal } = abort;
    const { api, jobId } = this.opts;
    const labels = this.labels;
    const base = this.state.panels;
    // A tail starts at the last column; that column may begin after the window's end (its start is aligned up
    // to the step): then there is nothing new to read yet, and asking would be a request with start > end.
    const tailOf = (m: Matrix | null, metric: string) =>
      m && m.start + (m.cols - 1) * m.step > w.end
        ? Promise.resolve(m)
        : m
          ? api
              .fetchHeatmap(
                {
                  metric,
                  start: m.start + (m.cols - 1) * m.step,
                  end: w.end,
                  step: m.step,
                  by: ['node_id', 'gpu'],
                  keep: ['rank'],
                  lo: m.lo,
                  hi: m.hi,
                  labels,
                },
                signal,
              )
              .then((r) => mergeMatrix(m, decodeMatrix(r), w.start))
          : Promise.resolve(null);
    const spreadTail = (s: SpreadResponse | null, metric: string) =>
      s && s.start + (s.cols - 1) * s.step > w.end
        ? Promise.resolve(s)
        : s
          ? api
              .fetchSpread(
                { metric, start: s.start + (s.cols - 1) * s.step, end: w.end, step: s.step, labels },
                signal,
              )
              .then((t) => mergeSpread(s, t, w.start))
          : Promise.resolve(null);
    const gpuLines = base.gpuLines;
    const gpuBands = base.gpuBands;
    let merged: Partial<Panels>;
    try {
      const [curves, throughput, stepTime, util, memory, lines, bands] = await Promise.all([
        api
          .fetchCurves(jobId, { start: lastTime(base.curves, w.start) + 1, end: w.end }, signal)
          .then((d) => mergeCurves(base.curves, d.curves, w.start)),
        spreadTail(base.throughput, throughputMetric),
        spreadTail(base.stepTime, 'train_step_duration_seconds'),
        tailOf(base.util, 'gpu_utilization_ratio'),
        tailOf(base.memory, 'gpu_memory_used_bytes'),
        gpuLines
          ? api
              .fetchSeries(
                {
                  metric: GPU_DETAIL_METRIC_NAMES,
                  labels,
                  start: lastTime(gpuLines, w.start) + 1,
                  end: w.end,
                },
                signal,
              )
              .then((d) => mergeSeries(gpuLines, d.series, w.start))
          : Promise.resolve(null),
        gpuBands
          ? Promise.all(GPU_DETAIL_METRIC_NAMES.map((m) => spreadTail(gpuBands[m] ?? null, m))).then((list) =>
              Object.fromEntries(
                list.filter((s): s is SpreadResponse => s !== null).map((s) => [s.metric, s]),
              ),
            )
          : Promise.resolve(null),
      ]);
      merged = { curves, throughput, stepTime, util, memory, gpuLines: lines, gpuBands: bands };
    } finally {
      if (this.tail === abort) this.tail = null;
    }
    if (signal.aborted) return;
    this.dispatch({ type: 'tail', load: load.id, base, panels: merged, window: w });
    const shown = this.state.panels;
    // The memory heatmap's scale was fitted to the data: a value beyond it is clamped, so fit it again, at
    // most once a minute (a leak keeps leaving any scale; a reload per tick would cost more than it shows).
    const memory = shown.memory;
    if (
      memory?.rows.some((r) => r.last !== null && (r.last > memory.hi || r.last < memory.lo)) &&
      this.now() - this.memoryFittedAt > MEMORY_REFIT_MS
    ) {
      this.memoryFittedAt = this.now();
      this.reloadNeeded = true;
    }
    // Live points are raw: once they outnumber the chart's pixels twice over, decimate again with a reload.
    const { points, cols } = this.opts.sizes();
    if (shown.curves.some((c) => c.t.length > 3 * points) || (shown.util && shown.util.cols > 2 * cols))
      this.reloadNeeded = true;
  }

  /** Asks for the straggler scores again, unless the load's step-time pass brought them recently. */
  async refreshStragglers(signal: AbortSignal): Promise<void> {
    const w = this.state.window;
    if (!w || this.now() - this.stragglersAt < STRAGGLER_REFRESH_MS / 2) return;
    try {
      const stragglers = await this.opts.api.fetchStragglers(
        this.opts.jobId,
        w.start,
        Math.min(w.end, this.now()),
        signal,
      );
      this.stragglersAt = this.now();
      this.dispatch({ type: 'stragglers', stragglers });
    } catch (error) {
      if (!signal.aborted) this.dispatch({ type: 'stragglers-failed', error });
    }
  }
}
