/**
 * The dashboard's endpoints under `/api/tw/v1/`: what the fleet, job and comparison pages draw, aggregated
 * on the server into compact answers so that the browser never receives more than about one value per
 * pixel (STYLE.md 12):
 *
 * - `GET /fleet`                   every job with its live numbers and busy/idle GPUs, in one pass per metric
 * - `GET /heatmap`                 rows × time matrix of per-cell means, grouped by labels (jobs, nodes, GPUs)
 * - `GET /spread`                  per-column min/mean/max/sum across series (band charts, job totals)
 * - `GET /jobs/:id/curves`         one representative series per training metric, with the step at each point
 * - `GET /jobs/:id/stragglers`     robust z-scores of each rank's step time
 * - `GET /ticks`                   Server-Sent Events: the newest sample time of a selection, as it advances
 *
 * Every read is scoped to the caller's tenant (admins may pass `tenant=`, see dashboard-scope.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type Authenticator, type Principal, requestPrincipal } from '../auth/index.js';
import type { JobRepository } from '../meta/index.js';
import type { Curve, FleetJob, RankStepTime, StragglerResponse } from '../model/api-types.js';
import { isStaleNaN } from '../model/batch.js';
import { isCurveMetric } from '../model/curve-metrics.js';
import { Errors, twError } from '../model/errors.js';
import type { JobInfo } from '../model/job.js';
import {
  isValidLabelName,
  isValidMetricName,
  LabelMatcher,
  type LabelSet,
  METRIC_NAME_LABEL,
  regexOfLiterals,
  WellKnownLabel,
} from '../model/labels.js';
import {
  type Querier,
  ROLLUP_TIERS,
  RollupColumns,
  SampleBuffer,
  type SampleIterator,
  type SelectedSeries,
  type SelectHints,
  type Storage,
} from '../storage/index.js';
import {
  columnGrid,
  MatrixAccumulator,
  median,
  niceStep,
  OUTLIER_Z,
  quantize,
  robustZ,
  SpreadAccumulator,
} from './dashboard-matrix.js';
import { readTenant, requestSignal } from './dashboard-scope.js';
import { fleetPage } from './fleet-page.js';
import { JOB_ROW_OPTIONS, jobRows } from './heatmap-groups.js';
import { wantsPaging } from './job-list.js';
import { newestValue } from './job-summary.js';
import { defaultLiveStreams, type LiveStreams, serveEventStream } from './live-streams.js';
import { parseTime } from './rest.js';
import { jsonValue, readSeries, selectSeries } from './series-read.js';

/** Every route here reads data of the caller's tenant (src/auth/permissions.ts). */
const READ = { config: { permission: 'read' } } as const;

export interface DashboardDeps {
  readonly auth: Authenticator;
  readonly storage: Storage;
  readonly jobs: JobRepository;
  /** How often the tick stream looks for new samples. */
  readonly livePollMs?: number;
  /** Caps open live streams (shared with `/api/tw/v1/live`). */
  readonly liveStreams?: LiveStreams;
}

type Query = Record<string, string | string[] | undefined>;

const DEFAULT_RANGE_MS = 60 * 60_000;
const DEFAULT_COLS = 240;
const MAX_COLS = 4000;
/** Cells per matrix: 20 000 rows × 250 columns, about 5 MB of bytes. */
const MAX_CELLS = 5_000_000;
const MAX_POINTS = 20_000;
/** The window the fleet table takes a job's "latest" numbers from (as summarizeJob does). */
const SUMMARY_WINDOW_MS = 10 * 60_000;
/** Utilization below this counts as an idle GPU (DCGM's tools use the same order of magnitude). */
export const IDLE_UTILIZATION = 0.05;
/** A rank whose step time is this much above the median, and an outlier by z-score, is a straggler. */
export const STRAGGLER_MIN_SLOWDOWN = 0.1;
const CURVES_PER_METRIC = 8;
const MAX_CURVE_METRICS = 64;
const TICK_LOOKBACK_MS = 10_000;
/** The storage's finest rollup resolution (10 s) and the range from which columns are not made finer. */
const FINEST_ROLLUP_MS = ROLLUP_TIERS[0]!.resolutionMs;
const ROLLUP_STEP_MIN_RANGE_MS = 30 * 60_000;

export { isCurveMetric } from '../model/curve-metrics.js';

function single(raw: string | string[] | undefined, name: string): string | undefined {
  if (Array.isArray(raw)) {
    if (raw.length > 1)
      throw twError(Errors.badRequest, `parameter ${name} given ${raw.length} times; give it once`);
    return raw[0];
  }
  return raw;
}

function many(raw: string | string[] | undefined): string[] {
  if (raw === undefined) return [];
  return (Array.isArray(raw) ? raw : [raw]).flatMap((r) => r.split(',')).filter((r) => r !== '');
}

function intParam(q: Query, name: string, min: number, max: number): number | undefined {
  const raw = single(q[name], name);
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw twError(
      Errors.badRequest,
      `parameter ${name}=${JSON.stringify(raw)} must be an integer from ${min} to ${max}`,
    );
  return n;
}

function numParam(q: Query, name: string): number | undefined {
  const raw = single(q[name], name);
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n))
    throw twError(Errors.badRequest, `parameter ${name}=${JSON.stringify(raw)} must be a number`);
  return n;
}

function metricParam(q: Query, required: true): string;
function metricParam(q: Query, required: false): string | undefined;
function metricParam(q: Query, required: boolean): string | undefined {
  const m = single(q.metric, 'metric');
  if (m === undefined || m === '') {
    if (required)
      throw twError(
        Errors.badRequest,
        'parameter metric is required (a metric name, e.g. metric=gpu_utilization_ratio)',
      );
    return undefined;
  }
  if (!isValidMetricName(m))
    throw twError(Errors.badRequest, `metric=${JSON.stringify(m)} is not a valid metric name`);
  return m;
}

/** `start`/`end` in ms or RFC 3339; the default is the last hour. */
function rangeParams(q: Query, now: number): { start: number; end: number } {
  const end = parseTime(single(q.end, 'end'), 'end', now);
  const start = parseTime(single(q.start, 'start'), 'start', end - DEFAULT_RANGE_MS);
  if (start > end) throw twError(Errors.badRequest, `start (${start}) is after end (${end})`);
  return { start, end };
}

/** Every parameter that is not an option is an equality matcher on a label (`job_id=abc`). */
function labelMatchers(q: Query, options: ReadonlySet<string>): LabelMatcher[] {
  const out: LabelMatcher[] = [];
  for (const [name, raw] of Object.entries(q)) {
    if (options.has(name)) continue;
    if (!isValidLabelName(name) || name === METRIC_NAME_LABEL)
      throw twError(
        Errors.badRequest,
        `parameter ${JSON.stringify(name)} is neither an option nor a label name`,
      );
    out.push(new LabelMatcher('=', name, single(raw, name) ?? ''));
  }
  return out;
}

function byLabels(q: Query, fallback: string[]): string[] {
  const by = many(q.by);
  const labels = by.length ? by : fallback;
  for (const l of labels)
    if (!isValidLabelName(l)) throw twError(Errors.badRequest, `by=${JSON.stringify(l)} is not a label name`);
  return labels;
}

/** The column grid for a request: an explicit `step` (ms), or a nice step fitting `cols` columns. */
function gridParams(q: Query, start: number, end: number, rows = 1) {
  const step = intParam(q, 'step', 1, 30 * 86_400_000);
  const cols = intParam(q, 'cols', 1, MAX_COLS) ?? DEFAULT_COLS;
  const maxCols = Math.max(1, Math.min(MAX_COLS, Math.floor(MAX_CELLS / Math.max(1, rows))));
  let grid = columnGrid(start, end, step ?? niceStep(start, end, Math.min(cols, maxCols)));
  // A long range asked in columns finer than the storage's finest rollup windows is drawn at that resolution
  // (still 180+ columns): every cell is then a sum of stored windows, exact, instead of a fold over raw
  // samples — about ten times fewer values read for a 512-GPU hour (docs/storage.md, "Reading").
  if (step === undefined && grid.step < FINEST_ROLLUP_MS && end - start >= ROLLUP_STEP_MIN_RANGE_MS)
    grid = columnGrid(start, end, FINEST_ROLLUP_MS);
  if (grid.cols > maxCols) {
    if (step !== undefined)
      throw twError(
        Errors.badRequest,
        `step=${step} gives ${grid.cols} columns over the range; the most is ${maxCols} for ${rows} rows: use a larger step or a shorter range`,
      );
    grid = columnGrid(start, end, niceStep(start, end, maxCols - 1));
  }
  return grid;
}

/** Rank 2 before rank 10. One collator: `localeCompare` with options builds one per call. */
const naturalCompare = new Intl.Collator('en', { numeric: true }).compare;

const HEATMAP_OPTIONS = new Set([
  'metric',
  'start',
  'end',
  'cols',
  'step',
  'by',
  'keep',
  'lo',
  'hi',
  'idle_below',
  'tenant',
  ...JOB_ROW_OPTIONS,
]);
const SPREAD_OPTIONS = new Set(['metric', 'start', 'end', 'cols', 'step', 'tenant', 'stragglers']);
const TICK_OPTIONS = new Set(['metric', 'tenant']);
const RANGE_OPTIONS = new Set(['metric', 'start', 'end', 'points', 'tenant']);

export interface HeatmapRow {
  /** The `by` labels, plus each `keep` label whose value is the same in every series of the row. */
  readonly labels: Record<string, string>;
  readonly series: number;
  readonly mean: number | null;
  readonly recentMean: number | null;
  readonly last: number | null;
  readonly lastT: number | null;
  /** Robust z-score of recentMean among the rows. */
  readonly z: number | null;
  readonly idleSeconds?: number;
}

export function registerDashboardApi(app: FastifyInstance, deps: DashboardDeps): void {
  const principalOf = (req: FastifyRequest): Principal => requestPrincipal(req);

  app.get('/api/tw/v1/fleet', READ, async (req, reply) => {
    const principal = principalOf(req);
    const signal = requestSignal(reply);
    const q = req.query as Query;
    const tenant = readTenant(principal, single(q.tenant, 'tenant'));
    // With any paging, sort or filter parameter: one page of the fleet (fleet-page.ts, issue 17).
    if (wantsPaging(q))
      return {
        status: 'success',
        data: await fleetPage(deps, tenant, q, IDLE_UTILIZATION, (page) =>
          summarizeFleet(deps.storage, tenant, page, signal),
        ),
      };
    // Without paging parameters: every job of the tenant. This list used to stop at the 10,000 most recently
    // active jobs, so in a large fleet a live run that had gone quiet (a hang) vanished from it while older,
    // finished runs of its name stayed — and compare, which looked runs up here, could not find it. A caller
    // that wants less pages (`limit`, `name`, `search`, … above); a list never drops jobs silently.
    const now = Date.now();
    const jobs = await deps.jobs.list(tenant, now, {}, signal);
    return {
      status: 'success',
      data: {
        tenants: [...new Set(jobs.map((j) => j.tenant))].sort(),
        jobs: await summarizeFleet(deps.storage, tenant, jobs, signal),
      },
    };
  });

  app.get('/api/tw/v1/heatmap', READ, async (req, reply) => {
    const principal = principalOf(req);
    const signal = requestSignal(reply);
    const q = req.query as Query;
    const tenant = readTenant(principal, single(q.tenant, 'tenant'));
    const metric = metricParam(q, true);
    const { start, end } = rangeParams(q, Date.now());
    const by = byLabels(q, [WellKnownLabel.jobId]);
    const keep = many(q.keep);
    const lo = numParam(q, 'lo');
    const hi = numParam(q, 'hi');
    if ((lo === undefined) !== (hi === undefined))
      throw twError(Errors.badRequest, 'give both lo and hi (the colour scale), or neither');
    if (lo !== undefined && hi !== undefined && !(hi > lo))
      throw twError(Errors.badRequest, `hi (${hi}) must be greater than lo (${lo})`);
    const idleBelow = numParam(q, 'idle_below');
    const matchers = [new LabelMatcher('=', METRIC_NAME_LABEL, metric), ...labelMatchers(q, HEATMAP_OPTIONS)];
    // Rows of a fleet: only the jobs the page's filters select, grouped when more than fit (issue 17).
    const rows = await jobRows(deps.jobs, tenant, q, by, signal);
    const querier = deps.storage.querier(tenant, start, end);
    const heatmap = await buildHeatmap((hints) => selectSeries(querier, matchers, hints, signal), {
      start,
      end,
      by,
      keep,
      lo,
      hi,
      idleBelow,
      metric,
      q,
      ...(rows ? { regroup: rows.regroup } : {}),
    });
    return { status: 'success', data: rows ? { ...heatmap, ...rows.describe(heatmap.rows) } : heatmap };
  });

  app.get('/api/tw/v1/spread', READ, async (req, reply) => {
    const principal = principalOf(req);
    const signal = requestSignal(reply);
    const q = req.query as Query;
    const tenant = readTenant(principal, single(q.tenant, 'tenant'));
    const metric = metricParam(q, true);
    const { start, end } = rangeParams(q, Date.now());
    const grid = gridParams(q, start, end);
    const matchers = [new LabelMatcher('=', METRIC_NAME_LABEL, metric), ...labelMatchers(q, SPREAD_OPTIONS)];
    const querier = deps.storage.querier(tenant, grid.start, end);
    const selected = await selectForGrid(
      (hints) => selectSeries(querier, matchers, hints, signal),
      grid,
      end,
      SPREAD_AGGREGATES,
    );
    const withStragglers = single(q.stragglers, 'stragglers') === '1';
    const recentFrom = end - Math.max(1, Math.floor((end - start) / 4));
    const acc = new SpreadAccumulator(grid);
    const ranks: { labels: Record<string, string>; mean: number | null }[] = [];
    const buf = new SampleBuffer(4096);
    const windows = new RollupColumns(512);
    for (const s of selected) {
      let recent: number | null;
      if (s.resolutionMs && s.readAggregates) {
        s.readAggregates(windows);
        recent = acc.addAggregateArrays(windows, s.resolutionMs, end, recentFrom);
      } else if (s.resolutionMs) recent = acc.addAggregates(s.aggregates!(), s.resolutionMs, end, recentFrom);
      else if (s.readSamples) {
        s.readSamples(buf);
        recent = acc.addSamples(buf, end, recentFrom);
      } else recent = acc.add(s.iterator(), end, recentFrom);
      if (withStragglers) ranks.push({ labels: placementOf(s.labels), mean: recent });
    }
    const col = (a: Float64Array, f: (v: number, i: number) => number | null = (v) => v) =>
      Array.from(a, (v, i) => (acc.present[i]! > 0 ? f(v, i) : null));
    return {
      status: 'success',
      data: {
        metric,
        start: grid.start,
        step: grid.step,
        cols: grid.cols,
        series: selected.length,
        t: Array.from({ length: grid.cols }, (_, i) => grid.start + i * grid.step),
        min: col(acc.min),
        max: col(acc.max),
        mean: col(acc.sum, (v, i) => v / acc.present[i]!),
        sum: col(acc.sum),
        count: Array.from(acc.present),
        // The same pass scores the series (ranks) on their recent level: a job page gets its step-time band
        // and its straggler from one read of the step times.
        ...(withStragglers ? { stragglers: scoreStragglers(ranks, recentFrom, end, metric) } : {}),
      },
    };
  });

  app.get('/api/tw/v1/jobs/:jobId/curves', READ, async (req, reply) => {
    const principal = principalOf(req);
    const signal = requestSignal(reply);
    const q = req.query as Query;
    const tenant = readTenant(principal, single(q.tenant, 'tenant')) ?? principal.tenant;
    const { jobId } = req.params as { jobId: string };
    const job = await requireJob(deps, tenant, jobId, signal);
    for (const name of Object.keys(q))
      if (!RANGE_OPTIONS.has(name))
        throw twError(Errors.badRequest, `unknown parameter ${JSON.stringify(name)}`);
    const end = parseTime(single(q.end, 'end'), 'end', job.lastSampleMs ?? Date.now());
    const start = parseTime(single(q.start, 'start'), 'start', job.startMs ?? end - DEFAULT_RANGE_MS);
    if (start > end) throw twError(Errors.badRequest, `start (${start}) is after end (${end})`);
    const points = intParam(q, 'points', 1, MAX_POINTS);
    const requested = many(q.metric);
    for (const m of requested)
      if (!isValidMetricName(m))
        throw twError(Errors.badRequest, `metric=${JSON.stringify(m)} is not a valid metric name`);
    const querier = deps.storage.querier(tenant, start, end);
    const jobMatcher = new LabelMatcher('=', WellKnownLabel.jobId, jobId);
    const metrics = (
      requested.length
        ? requested
        : (await querier.labelValues(METRIC_NAME_LABEL, [jobMatcher], signal)).filter(isCurveMetric)
    ).slice(0, MAX_CURVE_METRICS);
    return {
      status: 'success',
      data: {
        start,
        end,
        curves: await readCurves(querier, jobMatcher, metrics, start, end, points, signal),
      },
    };
  });

  app.get('/api/tw/v1/jobs/:jobId/stragglers', READ, async (req, reply) => {
    const principal = principalOf(req);
    const signal = requestSignal(reply);
    const q = req.query as Query;
    const tenant = readTenant(principal, single(q.tenant, 'tenant')) ?? principal.tenant;
    const { jobId } = req.params as { jobId: string };
    const job = await requireJob(deps, tenant, jobId, signal);
    const end = parseTime(single(q.end, 'end'), 'end', job.lastSampleMs ?? Date.now());
    const start = parseTime(single(q.start, 'start'), 'start', end - DEFAULT_RANGE_MS);
    if (start > end) throw twError(Errors.badRequest, `start (${start}) is after end (${end})`);
    const selected = await selectSeries(
      deps.storage.querier(tenant, start, end),
      [
        new LabelMatcher('=', METRIC_NAME_LABEL, 'train_step_duration_seconds'),
        new LabelMatcher('=', WellKnownLabel.jobId, jobId),
      ],
      undefined,
      signal,
    );
    return { status: 'success', data: findStragglers(selected, start, end) };
  });

  app.get('/api/tw/v1/ticks', READ, (req, reply) => streamTicks(deps, principalOf(req), req, reply));
}

async function requireJob(
  deps: DashboardDeps,
  tenant: string,
  jobId: string,
  signal?: AbortSignal,
): Promise<JobInfo> {
  const job = await deps.jobs.get(tenant, jobId, Date.now(), signal);
  if (!job) throw twError(Errors.notFound, `no job ${JSON.stringify(jobId)} in tenant ${tenant}`);
  return job;
}

interface HeatmapParams {
  readonly start: number;
  readonly end: number;
  readonly by: readonly string[];
  readonly keep: readonly string[];
  readonly lo: number | undefined;
  readonly hi: number | undefined;
  readonly idleBelow: number | undefined;
  readonly metric: string;
  readonly q: Query;
  /**
   * Row labels per selected series (undefined: leave the series out) and the labels rows are grouped by,
   * instead of the series' own `by` labels (heatmap-groups.ts: jobs filtered and grouped by project).
   */
  readonly regroup?: (labels: readonly LabelSet[]) => Promise<{
    readonly by: readonly string[];
    readonly rows: readonly (LabelSet | undefined)[];
  }>;
}

/**
 * Rollup hints for a column grid: with a step of 10 s or more, a storage that keeps rollup tiers may answer
 * with windows that divide the step (sums and counts, so the cell means stay exact) instead of raw samples.
 */
function rollupHints(
  grid: { start: number; step: number },
  end: number,
  aggregates: RollupAggregates,
): SelectHints {
  const range = { minT: grid.start, maxT: end };
  return grid.step >= 10_000
    ? { ...range, stepMs: grid.step, func: 'avg_over_time', rangeMs: grid.step, aggregates }
    : range;
}

/**
 * The window aggregates an accumulator reads, so that the storage decodes no other column: cell means need
 * sums and counts; a heatmap's rows also report their newest value (`last`), a band chart does not.
 */
type RollupAggregates = NonNullable<SelectHints['aggregates']>;
const HEATMAP_AGGREGATES: RollupAggregates = ['sum', 'count', 'last'];
const SPREAD_AGGREGATES: RollupAggregates = ['sum', 'count'];

/** Selects with rollup hints, and again without them if a tier's windows do not fit the grid's columns. */
async function selectForGrid(
  select: (hints: SelectHints) => Promise<readonly SelectedSeries[]>,
  grid: { start: number; step: number },
  end: number,
  aggregates: RollupAggregates,
): Promise<readonly SelectedSeries[]> {
  const selected = await select(rollupHints(grid, end, aggregates));
  const misfit = selected.some(
    (s) => s.resolutionMs !== undefined && (grid.step % s.resolutionMs !== 0 || !s.aggregates),
  );
  return misfit ? select({ minT: grid.start, maxT: end }) : selected;
}

/** Groups the selected series into rows by the `by` labels and folds them into a quantized matrix. */
export async function buildHeatmap(
  select: (hints: SelectHints) => Promise<readonly SelectedSeries[]>,
  p: HeatmapParams,
) {
  // The column step depends on the number of rows (cells are capped), known only after a first select.
  const firstGrid = gridParams(p.q, p.start, p.end);
  let selected: readonly SelectedSeries[] = await selectForGrid(select, firstGrid, p.end, HEATMAP_AGGREGATES);
  const rowOf = new Map<string, number>();
  const rowLabels: Record<string, string>[] = [];
  const seriesRow = new Int32Array(selected.length);
  // Rows may be regrouped (a fleet's jobs by project) and series left out (jobs outside the page's filters).
  const regrouped = await p.regroup?.(selected.map((s) => s.labels));
  const by = regrouped?.by ?? p.by;
  for (let i = 0; i < selected.length; i++) {
    const labels = regrouped ? regrouped.rows[i] : selected[i]!.labels;
    if (labels === undefined) {
      seriesRow[i] = -1;
      continue;
    }
    let key = '';
    for (const l of by) key += `${labels[l] ?? ''}\u0000`;
    let row = rowOf.get(key);
    if (row === undefined) {
      row = rowLabels.length;
      rowOf.set(key, row);
      const rl: Record<string, string> = {};
      for (const l of by) rl[l] = labels[l] ?? '';
      for (const l of p.keep) if (labels[l] !== undefined) rl[l] = labels[l]!;
      rowLabels.push(rl);
    } else {
      // A `keep` label stays only while every series of the row agrees on it.
      const rl = rowLabels[row]!;
      for (const l of p.keep) if (rl[l] !== undefined && rl[l] !== labels[l]) delete rl[l];
    }
    seriesRow[i] = row;
  }
  // Rows in natural order of their labels (rank 2 before rank 10), then series re-pointed.
  const order = rowLabels.map((_, i) => i);
  order.sort((a, b) => {
    for (const l of by) {
      const c = naturalCompare(rowLabels[a]![l]!, rowLabels[b]![l]!);
      if (c !== 0) return c;
    }
    return 0;
  });
  const position = new Int32Array(order.length);
  order.forEach((r, i) => {
    position[r] = i;
  });
  const grid = gridParams(p.q, p.start, p.end, rowLabels.length);
  if (grid.step !== firstGrid.step) selected = await selectForGrid(select, grid, p.end, HEATMAP_AGGREGATES); // same series, same order
  const acc = new MatrixAccumulator(rowLabels.length, grid, p.idleBelow);
  const buf = new SampleBuffer(4096);
  const windows = new RollupColumns(512);
  for (let i = 0; i < selected.length; i++) {
    const s = selected[i]!;
    if (seriesRow[i]! < 0) continue;
    const row = position[seriesRow[i]!]!;
    if (s.resolutionMs !== undefined && s.readAggregates) {
      s.readAggregates(windows);
      acc.addAggregateArrays(row, windows, s.resolutionMs, p.end);
    } else if (s.resolutionMs !== undefined && s.aggregates)
      acc.addAggregates(row, s.aggregates(), s.resolutionMs, p.end);
    else if (s.readSamples) {
      s.readSamples(buf);
      acc.addSamples(row, buf, p.end);
    } else acc.add(row, s.iterator(), p.end);
  }
  const means = acc.means();
  // Ratios span 0..1; bytes start at 0, so that 73.8 GB and 73.9 GB of 80 look alike and a leak stands out
  // (a scale fitted to the data would paint allocator noise as the whole colour range).
  let scale: { lo: number; hi: number } | undefined;
  if (p.lo !== undefined && p.hi !== undefined) scale = { lo: p.lo, hi: p.hi };
  else if (p.metric.endsWith('_ratio')) scale = { lo: 0, hi: 1 };
  else if (p.metric.endsWith('_bytes')) {
    let max = 0;
    for (const v of means) if (v > max) max = v;
    scale = { lo: 0, hi: max > 0 ? max : 1 };
  }
  const q = quantize(means, scale);
  const stats = order.map((_, i) => acc.rowStats(i));
  const z = robustZ(stats.map((s) => s.recentMean));
  const rows: HeatmapRow[] = order.map((r, i) => {
    const s = stats[i]!;
    return {
      labels: rowLabels[r]!,
      series: s.series,
      mean: s.mean,
      recentMean: s.recentMean,
      last: s.last,
      lastT: s.lastT,
      z: z[i] ?? null,
      ...(p.idleBelow !== undefined ? { idleSeconds: s.idleSeconds } : {}),
    };
  });
  return {
    metric: p.metric,
    by,
    start: grid.start,
    step: grid.step,
    cols: grid.cols,
    rows,
    lo: q.lo,
    hi: q.hi,
    /** Row-major, one byte per cell: 0..254 linear between lo and hi, 255 = no data. */
    encoding: 'u8-base64',
    values: Buffer.from(q.bytes.buffer, q.bytes.byteOffset, q.bytes.byteLength).toString('base64'),
  };
}

/** Labels that tell ranks and GPUs of one job apart; a curve's identity is everything else. */
const PLACEMENT_LABELS = new Set([
  WellKnownLabel.rank,
  WellKnownLabel.localRank,
  WellKnownLabel.nodeId,
  WellKnownLabel.gpu,
  WellKnownLabel.gpuUuid,
]);

export type { Curve } from '../model/api-types.js';

/**
 * One curve per metric and distinct non-placement labels: rank 0's series when ranks report separately
 * (the loss every rank computes is the same model's), else the lowest rank's, else the only one.
 */
export async function readCurves(
  querier: Querier,
  jobMatcher: LabelMatcher,
  metrics: readonly string[],
  start: number,
  end: number,
  points: number | undefined,
  signal?: AbortSignal,
): Promise<Curve[]> {
  const stepSeries = await selectSeries(
    querier,
    [new LabelMatcher('=', METRIC_NAME_LABEL, 'train_step'), jobMatcher],
    undefined,
    signal,
  );
  const stepByRank = new Map<string, SelectedSeries>();
  for (const s of stepSeries) stepByRank.set(s.labels[WellKnownLabel.rank] ?? '', s);
  const anyStep = stepByRank.get('0') ?? stepSeries[0];
  const out: Curve[] = [];
  for (const metric of metrics) {
    const groups = new Map<string, SelectedSeries>();
    for (const s of await selectSeries(
      querier,
      [new LabelMatcher('=', METRIC_NAME_LABEL, metric), jobMatcher],
      undefined,
      signal,
    )) {
      const id = Object.keys(s.labels)
        .filter((k) => !PLACEMENT_LABELS.has(k as never))
        .sort()
        .map((k) => `${k}=${s.labels[k]}`)
        .join(',');
      const have = groups.get(id);
      if (!have || rankOrder(s.labels) < rankOrder(have.labels)) groups.set(id, s);
    }
    for (const s of [...groups.values()].slice(0, CURVES_PER_METRIC)) {
      const [read] = readSeries([s], start, end, points);
      if (!read) continue;
      const steps = stepByRank.get(s.labels[WellKnownLabel.rank] ?? '') ?? anyStep;
      out.push({
        metric,
        labels: s.labels,
        t: read.t,
        v: read.v,
        step: steps && metric !== 'train_step' ? stepsAt(steps.iterator(), read.t) : null,
      });
    }
  }
  return out;
}

function rankOrder(labels: LabelSet): number {
  const r = labels[WellKnownLabel.rank];
  if (r === undefined) return -1; // a job-level series beats any rank's
  const n = Number(r);
  return Number.isFinite(n) ? n : Number.MAX_SAFE_INTEGER;
}

/** For ascending times, the value of the step series at or before each; one forward pass. */
export function stepsAt(it: SampleIterator, times: readonly number[]): (number | null)[] {
  const out: (number | null)[] = new Array(times.length);
  let has = it.next();
  let current: number | null = null;
  for (let i = 0; i < times.length; i++) {
    const t = times[i]!;
    while (has && it.t <= t) {
      if (!isStaleNaN(it.v) && Number.isFinite(it.v)) current = it.v;
      has = it.next();
    }
    out[i] = current;
  }
  return out;
}

/**
 * Ranks' mean step time over the most recent quarter of the range, scored with robust z-scores. A straggler
 * is the slowest rank when it is an outlier (z ≥ 3.5) AND at least 10% slower than the median: with 512
 * ranks, z alone would flag a healthy rank now and then.
 */
export function findStragglers(selected: readonly SelectedSeries[], start: number, end: number) {
  const from = end - Math.max(1, Math.floor((end - start) / 4));
  const ranks = selected.map((s) => {
    const it = s.iterator();
    let sum = 0;
    let n = 0;
    if (it.seek(from)) {
      do {
        if (it.t > end) break;
        if (Number.isFinite(it.v)) {
          sum += it.v;
          n++;
        }
      } while (it.next());
    }
    return { labels: placementOf(s.labels), mean: n > 0 ? sum / n : null };
  });
  return scoreStragglers(ranks, from, end, 'train_step_duration_seconds');
}

/** The labels that say which rank and GPU a series is. */
function placementOf(labels: LabelSet): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of [WellKnownLabel.rank, WellKnownLabel.localRank, WellKnownLabel.nodeId, WellKnownLabel.gpu])
    if (labels[k] !== undefined) out[k] = labels[k]!;
  return out;
}

/** Robust z-scores of the ranks' recent step times, and the straggler by the rule above. */
export function scoreStragglers(
  ranks: readonly { labels: Record<string, string>; mean: number | null }[],
  from: number,
  end: number,
  metric: string,
): StragglerResponse {
  const z = robustZ(ranks.map((r) => r.mean));
  const scored: RankStepTime[] = ranks.map((r, i) => ({ ...r, z: z[i] ?? null }));
  scored.sort((a, b) => naturalCompare(a.labels.rank ?? '', b.labels.rank ?? ''));
  const means = scored
    .map((r) => r.mean)
    .filter((m): m is number => m !== null)
    .sort((a, b) => a - b);
  const med = median(means);
  let straggler: RankStepTime | null = null;
  for (const r of scored) {
    if (r.z === null || r.mean === null || r.z < OUTLIER_Z) continue;
    if (!(med > 0) || (r.mean - med) / med < STRAGGLER_MIN_SLOWDOWN) continue;
    if (!straggler || r.z > straggler.z!) straggler = r;
  }
  return {
    metric,
    window: { start: from, end },
    medianSeconds: Number.isFinite(med) ? med : null,
    ranks: scored,
    straggler: straggler
      ? { ...straggler, slowdown: straggler.mean !== null && med > 0 ? straggler.mean / med - 1 : null }
      : null,
  };
}

/** Up to this many jobs, summarizeFleet selects them by job_id (a literal set: the matcher's fast path). */
const PAGE_JOB_MATCHER_MAX = 2000;

export type { FleetJob } from '../model/api-types.js';

/**
 * The fleet table's numbers for every job, with the same meaning as summarizeJob (the newest value of each
 * series within ten minutes of the job's newest sample) but one select per metric for the whole fleet
 * instead of five per job.
 */
export async function summarizeFleet(
  storage: Storage,
  tenant: string | null,
  jobs: readonly JobInfo[],
  signal?: AbortSignal,
): Promise<FleetJob[]> {
  if (jobs.length === 0) return [];
  const endOf = (j: JobInfo) => j.lastSampleMs ?? j.startMs ?? 0;
  const index = new Map<string, number>();
  let minT = Number.POSITIVE_INFINITY;
  let maxT = Number.NEGATIVE_INFINITY;
  jobs.forEach((j, i) => {
    index.set(`${j.tenant}\u0000${j.jobId}`, i);
    minT = Math.min(minT, endOf(j) - SUMMARY_WINDOW_MS);
    maxT = Math.max(maxT, endOf(j));
  });
  const querier = storage.querier(tenant, minT, maxT);
  // A page of a large fleet names its jobs, so the select reads their series only, not every job's in the
  // page's time span (a page sorted by start time may span months).
  const jobMatchers =
    jobs.length <= PAGE_JOB_MATCHER_MAX
      ? [
          new LabelMatcher(
            '=~',
            WellKnownLabel.jobId,
            regexOfLiterals([...new Set(jobs.map((j) => j.jobId))]),
          ),
        ]
      : [];
  /** For each job, the newest value of each of its series of `metric`, with the series' labels. */
  const latest = async (metric: string): Promise<{ labels: LabelSet; v: number }[][]> => {
    const out: { labels: LabelSet; v: number }[][] = jobs.map(() => []);
    for (const s of await selectSeries(
      querier,
      [new LabelMatcher('=', METRIC_NAME_LABEL, metric), ...jobMatchers],
      undefined,
      signal,
    )) {
      const i = index.get(`${s.labels[WellKnownLabel.tenant]}\u0000${s.labels[WellKnownLabel.jobId]}`);
      if (i === undefined) continue;
      const end = endOf(jobs[i]!);
      const v = newestValue(s, end - SUMMARY_WINDOW_MS, end);
      if (v !== undefined) out[i]!.push({ labels: s.labels, v });
    }
    return out;
  };
  const [util, steps, losses, samples, tokens] = await Promise.all([
    latest('gpu_utilization_ratio'),
    latest('train_step'),
    latest('train_loss'),
    latest('train_samples_per_second'),
    latest('train_tokens_per_second'),
  ]);
  return jobs.map((job, i) => {
    const u = util[i]!.map((x) => x.v);
    const l = losses[i]!;
    const rank0 = l.find((x) => x.labels[WellKnownLabel.rank] === '0');
    const lossValue = rank0
      ? rank0.v
      : l.some((x) => Number.isNaN(x.v))
        ? Number.NaN
        : mean(l.map((x) => x.v));
    const finiteSteps = steps[i]!.map((x) => x.v).filter(Number.isFinite);
    const busy = u.filter((v) => v >= IDLE_UTILIZATION).length;
    return {
      ...job,
      gpus: u.length,
      meanGpuUtilization: mean(u),
      step: finiteSteps.length ? Math.max(...finiteSteps) : null,
      loss: lossValue === null ? null : jsonValue(lossValue),
      samplesPerSecond: sum(samples[i]!.map((x) => x.v)),
      tokensPerSecond: sum(tokens[i]!.map((x) => x.v)),
      busyGpus: busy,
      idleGpus: u.filter((v) => v < IDLE_UTILIZATION).length,
    };
  });
}

function mean(xs: number[]): number | null {
  const finite = xs.filter(Number.isFinite);
  return finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : null;
}

function sum(xs: number[]): number | null {
  const finite = xs.filter(Number.isFinite);
  return finite.length ? finite.reduce((a, b) => a + b, 0) : null;
}

/**
 * Server-Sent Events telling a page that new samples of its selection arrived: `data: {"t": <newest ms>}`
 * at once, then whenever the newest sample time advances (checked every `livePollMs`). The page then
 * fetches only the new columns or points of each chart with the endpoints above, so one stream serves any
 * number of charts and the server never re-sends what the page has.
 */
function streamTicks(
  deps: DashboardDeps,
  principal: Principal,
  req: FastifyRequest,
  reply: FastifyReply,
): void {
  const q = req.query as Query;
  const tenant = readTenant(principal, single(q.tenant, 'tenant'));
  const metrics = many(q.metric);
  for (const m of metrics)
    if (!isValidMetricName(m))
      throw twError(Errors.badRequest, `metric=${JSON.stringify(m)} is not a valid metric name`);
  const matchers = labelMatchers(q, TICK_OPTIONS);
  if (metrics.length === 1) matchers.push(new LabelMatcher('=', METRIC_NAME_LABEL, metrics[0]!));
  else if (metrics.length > 1) matchers.push(new LabelMatcher('=~', METRIC_NAME_LABEL, metrics.join('|')));
  if (matchers.length === 0)
    throw twError(
      Errors.badRequest,
      'select what to watch: give metric= and/or label parameters such as job_id=',
    );
  let newest = Number.NEGATIVE_INFINITY;
  serveEventStream(req, reply, {
    streams: deps.liveStreams ?? defaultLiveStreams,
    auth: deps.auth,
    principal,
    banner: 'trainwatch ticks',
    pollMs: deps.livePollMs ?? 250,
    pollAtOnce: true,
    poll: async () => {
      const now = Date.now();
      const from = Number.isFinite(newest) ? newest - TICK_LOOKBACK_MS : now - DEFAULT_RANGE_MS;
      let found = newest;
      for (const s of await selectSeries(deps.storage.querier(tenant, from, now + 60_000), matchers, {
        minT: from,
      })) {
        const it = s.iterator();
        if (!it.seek(Number.isFinite(found) ? found + 1 : from)) continue;
        let t = it.t;
        while (it.next()) t = it.t;
        if (t > found) found = t;
      }
      if (!(found > newest) && Number.isFinite(newest)) return undefined;
      newest = found;
      const tick = { t: Number.isFinite(found) ? found : null };
      if (!Number.isFinite(newest)) newest = from; // nothing yet: look forward from here
      return tick;
    },
  });
}
