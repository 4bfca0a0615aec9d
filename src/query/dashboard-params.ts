/**
 * The dashboard endpoints' request parameters (dashboard.ts): parsing and validation of the query string
 * (one value or many, integers, metric names, time ranges, label matchers) and the column grid a request
 * asks for. Separate so that every endpoint reads its parameters the same way, with the same 400 errors.
 */
import { Errors, twError } from '../model/errors.js';
import { isValidLabelName, isValidMetricName, LabelMatcher, METRIC_NAME_LABEL } from '../model/labels.js';
import { ROLLUP_TIERS } from '../storage/index.js';
import { columnGrid, niceStep } from './dashboard-matrix.js';
import { JOB_ROW_OPTIONS } from './heatmap-groups.js';
import { intParam, many, type Query, single } from './query-params.js';
import { parseTime } from './rest.js';

export { intParam, many, numParam, type Query, single } from './query-params.js';

export const DEFAULT_RANGE_MS = 60 * 60_000;
const DEFAULT_COLS = 240;
const MAX_COLS = 4000;
/** Cells per matrix: 20 000 rows × 250 columns, about 5 MB of bytes. */
const MAX_CELLS = 5_000_000;
export const MAX_POINTS = 20_000;
/** The storage's finest rollup resolution (10 s) and the range from which columns are not made finer. */
const FINEST_ROLLUP_MS = ROLLUP_TIERS[0]!.resolutionMs;
const ROLLUP_STEP_MIN_RANGE_MS = 30 * 60_000;

export function metricParam(q: Query, required: true): string;
export function metricParam(q: Query, required: false): string | undefined;
export function metricParam(q: Query, required: boolean): string | undefined {
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

/** Every `metric` given (repeated or comma-separated), each a valid metric name; none given is empty. */
export function metricsParam(q: Query): string[] {
  const metrics = many(q.metric);
  for (const m of metrics)
    if (!isValidMetricName(m))
      throw twError(Errors.badRequest, `metric=${JSON.stringify(m)} is not a valid metric name`);
  return metrics;
}

/** `start`/`end` in ms or RFC 3339; the default is the last hour. */
export function rangeParams(q: Query, now: number): { start: number; end: number } {
  const end = parseTime(single(q.end, 'end'), 'end', now);
  const start = parseTime(single(q.start, 'start'), 'start', end - DEFAULT_RANGE_MS);
  if (start > end) throw twError(Errors.badRequest, `start (${start}) is after end (${end})`);
  return { start, end };
}

/** Every parameter that is not an option is an equality matcher on a label (`job_id=abc`). */
export function labelMatchers(q: Query, options: ReadonlySet<string>): LabelMatcher[] {
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

export function byLabels(q: Query, fallback: string[]): string[] {
  const by = many(q.by);
  const labels = by.length ? by : fallback;
  for (const l of labels)
    if (!isValidLabelName(l)) throw twError(Errors.badRequest, `by=${JSON.stringify(l)} is not a label name`);
  return labels;
}

/** The column grid for a request: an explicit `step` (ms), or a nice step fitting `cols` columns. */
export function gridParams(q: Query, start: number, end: number, rows = 1) {
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
export const naturalCompare = new Intl.Collator('en', { numeric: true }).compare;

export const HEATMAP_OPTIONS = new Set([
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
export const SPREAD_OPTIONS = new Set(['metric', 'start', 'end', 'cols', 'step', 'tenant', 'stragglers']);
export const TICK_OPTIONS = new Set(['metric', 'tenant']);
export const RANGE_OPTIONS = new Set(['metric', 'start', 'end', 'points', 'tenant']);
