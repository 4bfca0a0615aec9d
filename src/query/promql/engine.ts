/**
 * The PromQL engine: evaluates a parsed expression over a {@link Queryable} (the storage's `Querier`),
 * as Prometheus 3's engine does (promql/engine.go).
 *
 * Evaluation is step-aligned and columnar: every node is evaluated once for all steps of the query, producing
 * one value slot per step per series ({@link StepSeries}). Selectors stream each series' samples through a
 * reused typed-array window (a sliding buffer for range selectors), so the work of overlapping windows of
 * consecutive steps is shared and no object is created per sample. Instant queries are range queries with
 * one step. Subqueries evaluate their inner expression once over the whole outer range on their own step grid.
 *
 * This file sets a query up (options, limits, deadline) and shapes its result; the evaluator is in
 * `evaluator.ts`, the selectors and range vectors that read samples in `selectors.ts`.
 */
import type { LabelSet } from '../../model/labels.js';
import type { Querier } from '../../storage/index.js';
import { Annotations } from './annotations.js';
import { type Expr, exprType, unwrapParens } from './ast.js';
import { ExecutionError } from './errors.js';
import { Evaluator, type QueryCtx } from './evaluator.js';
import { withoutMetricName } from './labels-util.js';
import { parseExpr } from './parser.js';
import { evalMatrixAt } from './selectors.js';
import type { EvalValue, InstantSample, QueryResult, QueryValue, RangeSeries, StepSeries } from './value.js';

/** Where the engine reads series from: a querier per time range, already scoped to one tenant. */
export interface Queryable {
  querier(minT: number, maxT: number): Querier;
}

export interface EngineOptions {
  /** How far back an instant selector looks for the latest sample. Default 5 m (Prometheus's default). */
  readonly lookbackDeltaMs?: number;
  /** Most samples one query may hold in memory. Default 50,000,000 (Prometheus's default). */
  readonly maxSamples?: number;
  /** Default query timeout. Default 2 minutes (Prometheus's default). */
  readonly timeoutMs?: number;
  /** Most series one selector may select. Default unlimited. */
  readonly maxSeries?: number;
  /** Step of subqueries written without one (`[5m:]`). Default 1 m (Prometheus's evaluation_interval). */
  readonly defaultSubqueryStepMs?: number;
  /**
   * Most points a subquery may evaluate per series (its inner steps over the outer range plus its own range),
   * checked before anything is allocated. Default 100,000 (VictoriaMetrics's
   * -search.maxPointsSubqueryPerTimeseries): `max_over_time(x[30d:1ms])` is refused at once.
   */
  readonly maxSubqueryPoints?: number;
  /** Prometheus's `promql-delayed-name-removal` feature. Default off, as in Prometheus. */
  readonly delayedNameRemoval?: boolean;
  /** Prometheus's `promql-experimental-functions`. Default on. */
  readonly experimentalFunctions?: boolean;
  /**
   * Let storage answer min/max/sum/count/avg/last_over_time of range queries from its rollup tiers (10 s,
   * 1 m, 1 h aggregates) when step and range are multiples of a tier. Much less to read over long ranges, but
   * a sample exactly on a window boundary is counted in the next window, so results can differ slightly from
   * Prometheus's. Default off (exact); the dashboard turns it on for long ranges.
   */
  readonly rollups?: boolean;
  /**
   * Longest stretch of evaluation before the query gives the event loop a turn (between series and nodes),
   * so a heavy query does not stall ingest, detectors and other requests in the same process. Default 10 ms.
   */
  readonly yieldEveryMs?: number;
}

export interface QueryOptions {
  readonly lookbackDeltaMs?: number;
  /** Overrides {@link EngineOptions.rollups} for this query. */
  readonly rollups?: boolean;
  readonly timeoutMs?: number;
  /** Cancels the query (checked between series and steps). */
  readonly signal?: AbortSignal;
}

const DEFAULTS = {
  lookbackDeltaMs: 5 * 60_000,
  maxSamples: 50_000_000,
  timeoutMs: 2 * 60_000,
  maxSeries: Number.POSITIVE_INFINITY,
  defaultSubqueryStepMs: 60_000,
  maxSubqueryPoints: 100_000,
  delayedNameRemoval: false,
  experimentalFunctions: true,
  rollups: false,
  yieldEveryMs: 10,
};

/** Applies pending name drops and merges series that became identical. */
function finalizeNames(ev: Evaluator, series: StepSeries[]): StepSeries[] {
  let changed = false;
  const out = series.map((s) => {
    if (!s.dropName) return s;
    changed = true;
    return { labels: withoutMetricName(s.labels), vals: s.vals, has: s.has, dropName: false };
  });
  return changed ? ev.mergeSameLabels(out) : series;
}

export class PromqlEngine {
  private readonly opts: typeof DEFAULTS;

  constructor(opts: EngineOptions = {}) {
    this.opts = {
      lookbackDeltaMs: opts.lookbackDeltaMs ?? DEFAULTS.lookbackDeltaMs,
      maxSamples: opts.maxSamples ?? DEFAULTS.maxSamples,
      timeoutMs: opts.timeoutMs ?? DEFAULTS.timeoutMs,
      maxSeries: opts.maxSeries ?? DEFAULTS.maxSeries,
      defaultSubqueryStepMs: opts.defaultSubqueryStepMs ?? DEFAULTS.defaultSubqueryStepMs,
      maxSubqueryPoints: opts.maxSubqueryPoints ?? DEFAULTS.maxSubqueryPoints,
      delayedNameRemoval: opts.delayedNameRemoval ?? DEFAULTS.delayedNameRemoval,
      experimentalFunctions: opts.experimentalFunctions ?? DEFAULTS.experimentalFunctions,
      rollups: opts.rollups ?? DEFAULTS.rollups,
      yieldEveryMs: opts.yieldEveryMs ?? DEFAULTS.yieldEveryMs,
    };
  }

  /** Parses a query with this engine's settings (experimental functions on or off). */
  parse(query: string): Expr {
    return parseExpr(query, { disableExperimentalFunctions: !this.opts.experimentalFunctions });
  }

  /**
   * Evaluates `query` at one instant. The result is a vector, scalar, string, or — for a range selector or
   * subquery at the top — a matrix.
   */
  async instantQuery(
    source: Queryable,
    query: string,
    timeMs: number,
    opts: QueryOptions = {},
  ): Promise<QueryResult> {
    const expr = this.parse(query);
    return await this.run(source, query, expr, timeMs, timeMs, 0, opts);
  }

  /** Evaluates `query` at every `stepMs` from `startMs` to `endMs` (inclusive); the result is a matrix. */
  async rangeQuery(
    source: Queryable,
    query: string,
    startMs: number,
    endMs: number,
    stepMs: number,
    opts: QueryOptions = {},
  ): Promise<QueryResult> {
    if (!(stepMs > 0))
      throw new ExecutionError('zero or negative query resolution step widths are not accepted');
    if (endMs < startMs) throw new ExecutionError('end timestamp must not be before start time');
    const expr = this.parse(query);
    const t = exprType(expr);
    if (t !== 'scalar' && t !== 'vector') {
      throw new ExecutionError(
        `invalid expression type ${JSON.stringify(t === 'matrix' ? 'range vector' : t)} for range query, must be Scalar or instant Vector`,
      );
    }
    return await this.run(source, query, expr, startMs, endMs, stepMs, opts);
  }

  private async run(
    source: Queryable,
    query: string,
    expr: Expr,
    start: number,
    end: number,
    step: number,
    opts: QueryOptions,
  ): Promise<QueryResult> {
    const began = Date.now();
    const timeoutMs = opts.timeoutMs ?? this.opts.timeoutMs;
    // Whole milliseconds: a remaining time (a deadline minus a clock reading) is fractional, and timers refuse it.
    const deadlineSignal = AbortSignal.timeout(Math.max(1, Math.ceil(timeoutMs)));
    const q: QueryCtx = {
      query,
      queryable: source,
      lookbackMs: opts.lookbackDeltaMs ?? this.opts.lookbackDeltaMs,
      maxSamples: this.opts.maxSamples,
      maxSeries: this.opts.maxSeries,
      defaultSubqueryStepMs: this.opts.defaultSubqueryStepMs,
      maxSubqueryPoints: this.opts.maxSubqueryPoints,
      delayedNameRemoval: this.opts.delayedNameRemoval,
      useRollups: opts.rollups ?? this.opts.rollups,
      deadline: began + timeoutMs,
      signal: opts.signal,
      selectSignal: opts.signal ? AbortSignal.any([opts.signal, deadlineSignal]) : deadlineSignal,
      annotations: new Annotations(query),
      queryStart: start,
      queryEnd: end,
      queryStep: step,
      samplesRead: 0,
      seriesSelected: 0,
      lastYield: performance.now(),
      yieldEveryMs: this.opts.yieldEveryMs,
      liveSamples: 0,
      peakSamples: 0,
      checks: 0,
      windowWork: 0,
      selections: new Map(),
    };
    const ev = new Evaluator(q, start, end, step);
    let value: QueryValue;
    const top = unwrapParens(expr);
    if (step === 0 && (top.type === 'MatrixSelector' || top.type === 'SubqueryExpr')) {
      value = { resultType: 'matrix', series: await evalMatrixAt(ev, top) };
    } else {
      const v = await ev.eval(expr);
      value = toQueryValue(ev, v, step === 0);
    }
    return {
      value,
      warnings: [...q.annotations.warnings],
      infos: [...q.annotations.infos],
      stats: {
        samplesRead: q.samplesRead,
        seriesSelected: q.seriesSelected,
        peakSamples: q.peakSamples,
        evalMs: Date.now() - began,
      },
    };
  }
}

function toQueryValue(ev: Evaluator, v: EvalValue, instant: boolean): QueryValue {
  const t0 = ev.start;
  if (v.kind === 'string') return { resultType: 'string', t: t0, v: v.val };
  if (instant) {
    if (v.kind === 'scalar') return { resultType: 'scalar', t: t0, v: v.vals[0]! };
    const series = finalizeNames(ev, v.series);
    const samples: InstantSample[] = [];
    for (const s of series) if (s.has[0]) samples.push({ labels: s.labels, t: t0, v: s.vals[0]! });
    return { resultType: 'vector', samples };
  }
  if (v.kind === 'scalar') {
    const timestamps = new Float64Array(ev.steps);
    for (let i = 0; i < ev.steps; i++) timestamps[i] = ev.stepTime(i);
    return { resultType: 'matrix', series: [{ labels: {}, timestamps, values: Float64Array.from(v.vals) }] };
  }
  const series = finalizeNames(ev, v.series);
  const out: RangeSeries[] = [];
  for (const s of series) {
    let n = 0;
    for (let i = 0; i < ev.steps; i++) n += s.has[i]!;
    if (n === 0) continue;
    const timestamps = new Float64Array(n);
    const values = new Float64Array(n);
    let k = 0;
    for (let i = 0; i < ev.steps; i++) {
      if (!s.has[i]) continue;
      timestamps[k] = ev.stepTime(i);
      values[k] = s.vals[i]!;
      k++;
    }
    out.push({ labels: s.labels, timestamps, values });
  }
  out.sort((a, b) => compareLabelSets(a.labels, b.labels));
  return { resultType: 'matrix', series: out };
}

function compareLabelSets(a: LabelSet, b: LabelSet): number {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  const n = Math.min(ka.length, kb.length);
  for (let i = 0; i < n; i++) {
    if (ka[i] !== kb[i]) return ka[i]! < kb[i]! ? -1 : 1;
    const va = a[ka[i]!]!;
    const vb = b[kb[i]!]!;
    if (va !== vb) return va < vb ? -1 : 1;
  }
  return ka.length - kb.length;
}
