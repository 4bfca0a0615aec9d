/**
 * The PromQL engine: evaluates a parsed expression over a {@link Queryable} (the storage's `Querier`),
 * as Prometheus 3's engine does (promql/engine.go).
 *
 * Evaluation is step-aligned and columnar: every node is evaluated once for all steps of the query, producing
 * one value slot per step per series ({@link StepSeries}). Selectors stream each series' samples through a
 * reused typed-array window (a sliding buffer for range selectors), so the work of overlapping windows of
 * consecutive steps is shared and no object is created per sample. Instant queries are range queries with
 * one step. Subqueries evaluate their inner expression once over the whole outer range on their own step grid.
 */
import { isStaleNaN } from '../../model/batch.js';
import { Errors, TrainwatchError } from '../../model/errors.js';
import { LabelMatcher, type LabelSet, METRIC_NAME_LABEL, regexOfLiterals } from '../../model/labels.js';
import {
  EMPTY_ITERATOR,
  type Querier,
  SampleBuffer,
  type SelectedSeries,
  type SelectHints,
  type SeriesSet,
} from '../../storage/index.js';
import { evalAggregate } from './aggregate.js';
import { Annotations } from './annotations.js';
import {
  type AtModifier,
  type DurationExpr,
  type Expr,
  exprType,
  type MatrixSelector,
  type SubqueryExpr,
  unwrapParens,
  type VectorSelector,
} from './ast.js';
import { evalBinary } from './binary.js';
import {
  ExecutionError,
  QueryCanceledError,
  QueryTimeoutError,
  SubqueryResolutionError,
  TooManySamplesError,
  TooManySeriesError,
} from './errors.js';
import { evalCall } from './functions-eval.js';
import { labelKey, withoutMetricName } from './labels-util.js';
import { parseExpr } from './parser.js';
import { exprToString, formatDuration } from './print.js';
import type { WindowCtx, WindowFn } from './range-functions.js';
import {
  type EvalValue,
  type InstantSample,
  newStepSeries,
  pointCount,
  type QueryResult,
  type QueryValue,
  type RangeSeries,
  type StepSeries,
} from './value.js';

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

/**
 * Range-function step loops check the deadline whenever they have scanned this many window points since the
 * last check: one step may scan a whole window (up to a subquery's points, sorted for quantile_over_time), so
 * per-series checks alone could overrun the deadline by seconds, while a check per step would cost more than
 * a small window's work. Each step counts its window plus one.
 */
const WINDOW_POINTS_PER_CHECK = 1 << 16;

/** State shared by every evaluator of one query (subqueries get their own evaluator). */
export interface QueryCtx {
  readonly query: string;
  readonly queryable: Queryable;
  readonly lookbackMs: number;
  readonly maxSamples: number;
  readonly maxSeries: number;
  readonly defaultSubqueryStepMs: number;
  readonly maxSubqueryPoints: number;
  readonly delayedNameRemoval: boolean;
  readonly useRollups: boolean;
  readonly deadline: number;
  readonly signal: AbortSignal | undefined;
  /** Aborted by the caller's signal or at the deadline: what storage selects get, so they stop too. */
  readonly selectSignal: AbortSignal | undefined;
  readonly annotations: Annotations;
  /** The outer query's start, end and step: what `@ start()`, `@ end()`, `step()` and `range()` refer to. */
  readonly queryStart: number;
  readonly queryEnd: number;
  readonly queryStep: number;
  samplesRead: number;
  seriesSelected: number;
  /** performance.now() when the query last gave the event loop a turn. */
  lastYield: number;
  readonly yieldEveryMs: number;
  liveSamples: number;
  peakSamples: number;
  checks: number;
  /** Window points scanned since the last deadline check (see WINDOW_POINTS_PER_CHECK). */
  windowWork: number;
  /**
   * The query's selections by matchers, time range and hints: a selector that occurs twice (`x != x`,
   * `a / ignoring(i) a`) reads storage once, so both occurrences see the same samples. Storage may be
   * appended to by other threads between two selects (the processor workers own their shards), and two reads
   * of one selector would then disagree: `train_loss != train_loss` fired thousands of times on data without
   * a NaN. Held until the query ends, as Prometheus holds every selection of a query (`populateSeries`).
   */
  readonly selections: Map<string, Promise<readonly SelectedSeries[]>>;
}

/** Points of one series over a subquery's grid, compact (present points only). */
interface PointSeries {
  readonly labels: LabelSet;
  readonly dropName: boolean;
  readonly ts: Float64Array;
  readonly vs: Float64Array;
}

/** A growable, reusable window of (timestamp, value) pairs; points live in [head, tail). */
class WindowBuffer {
  ts = new Float64Array(256);
  vs = new Float64Array(256);
  head = 0;
  tail = 0;

  reset(): void {
    this.head = 0;
    this.tail = 0;
  }

  push(t: number, v: number): void {
    if (this.tail === this.ts.length) {
      const live = this.tail - this.head;
      if (this.head > this.ts.length / 2) {
        this.ts.copyWithin(0, this.head, this.tail);
        this.vs.copyWithin(0, this.head, this.tail);
      } else {
        const ts = new Float64Array(this.ts.length * 2);
        const vs = new Float64Array(this.vs.length * 2);
        ts.set(this.ts.subarray(this.head, this.tail));
        vs.set(this.vs.subarray(this.head, this.tail));
        this.ts = ts;
        this.vs = vs;
      }
      this.head = 0;
      this.tail = live;
    }
    this.ts[this.tail] = t;
    this.vs[this.tail] = v;
    this.tail++;
  }

  /** Drops points at or before `t`. */
  dropUpTo(t: number): void {
    while (this.head < this.tail && this.ts[this.head]! <= t) this.head++;
  }
}

export class Evaluator {
  readonly steps: number;
  /** Reused by bulk series reads (`readSamples`). */
  private readonly bulkSamples = new SampleBuffer();

  constructor(
    readonly q: QueryCtx,
    readonly start: number,
    readonly end: number,
    readonly interval: number,
  ) {
    this.steps = interval > 0 ? Math.floor((end - start) / interval) + 1 : 1;
  }

  stepTime(i: number): number {
    return this.start + i * this.interval;
  }

  // ---- limits ----

  checkInterrupt(where: string): void {
    if (++this.q.checks % 16 !== 0) return;
    if (this.q.signal?.aborted) throw new QueryCanceledError(where);
    if (Date.now() > this.q.deadline) throw new QueryTimeoutError(where);
  }

  /**
   * Gives the event loop a turn when this query has computed for a while, so that one heavy query does not
   * stall ingest, detectors and other requests of the same process; then checks deadline and cancellation.
   */
  async maybeYield(where: string): Promise<void> {
    const now = performance.now();
    if (now - this.q.lastYield < this.q.yieldEveryMs) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.q.lastYield = performance.now();
    if (this.q.signal?.aborted) throw new QueryCanceledError(where);
    if (Date.now() > this.q.deadline) throw new QueryTimeoutError(where);
  }

  /**
   * Counts `points` of window scanned by a step loop and checks deadline and cancellation once
   * {@link WINDOW_POINTS_PER_CHECK} have been scanned since the last check.
   */
  countWindowWork(points: number, where: string): void {
    this.q.windowWork += points + 1;
    if (this.q.windowWork < WINDOW_POINTS_PER_CHECK) return;
    this.q.windowWork = 0;
    if (this.q.signal?.aborted) throw new QueryCanceledError(where);
    if (Date.now() > this.q.deadline) throw new QueryTimeoutError(where);
  }

  /**
   * Refuses, before allocating, a node that would hold `series` × {@link steps} more points than the query's
   * sample budget allows (the points of a step-aligned result: one slot per step per series).
   */
  reserveSteps(series: number, where: string): void {
    if (this.q.liveSamples + series * this.steps > this.q.maxSamples) {
      throw new TooManySamplesError(this.q.maxSamples, where);
    }
  }

  /**
   * A `__name__` regex that needs the regex engine is evaluated here, over the caller's own metric names
   * (storage lists the names of the tenant's series that the other matchers select), and replaced by the
   * literal set of names it accepts. So the regex never runs over other tenants' names, and it runs in this
   * thread (a query worker) rather than in the thread that owns storage and ingest. Undefined when no name
   * matches: the selection is empty.
   */
  private async resolveNameRegex(
    querier: Querier,
    matchers: readonly LabelMatcher[],
  ): Promise<readonly LabelMatcher[] | undefined> {
    const i = matchers.findIndex((m) => m.name === METRIC_NAME_LABEL && m.usesRegexEngine);
    if (i < 0) return matchers;
    const nameRe = matchers[i]!;
    const rest = matchers.filter((_, k) => k !== i);
    let names: string[];
    try {
      // Only cheap matchers narrow the listing; other regexes are left to the select.
      const narrowing = rest.filter((m) => !m.usesRegexEngine);
      names = await querier.labelValues(METRIC_NAME_LABEL, narrowing, this.q.selectSignal);
    } catch (err) {
      throw this.selectError(err);
    }
    const accepted: string[] = [];
    for (let k = 0; k < names.length; k++) {
      if ((k & 1023) === 1023) this.checkInterrupt('name regex');
      if (nameRe.matches(names[k])) accepted.push(names[k]!);
    }
    if (accepted.length === 0) return undefined;
    return [...rest, new LabelMatcher('=~', METRIC_NAME_LABEL, regexOfLiterals(accepted))];
  }

  /** A failed select as the query's error: over budget is Prometheus's too-many-samples, abort is timeout. */
  private selectError(err: unknown): unknown {
    if (err instanceof TrainwatchError && err.kind.code === Errors.budgetExceeded.code)
      return new TooManySamplesError(this.q.maxSamples, 'selector');
    if (this.q.selectSignal?.aborted) {
      if (Date.now() >= this.q.deadline) return new QueryTimeoutError('selector');
      return new QueryCanceledError('selector');
    }
    return err;
  }

  /** Accounts `n` more samples held in memory; throws when the query's limit is exceeded. */
  hold(n: number): void {
    this.q.liveSamples += n;
    if (this.q.liveSamples > this.q.peakSamples) this.q.peakSamples = this.q.liveSamples;
    if (this.q.liveSamples > this.q.maxSamples)
      throw new TooManySamplesError(this.q.maxSamples, 'evaluation');
  }

  release(n: number): void {
    this.q.liveSamples -= n;
  }

  // ---- durations and times ----

  resolveDuration(d: DurationExpr | undefined): number {
    if (d === undefined) return 0;
    return Math.round(this.durationSeconds(d) * 1000);
  }

  private durationSeconds(d: DurationExpr): number {
    switch (d.kind) {
      case 'literal':
        return d.ms / 1000;
      case 'step':
        return this.q.queryStep / 1000;
      case 'range':
        return (this.q.queryEnd - this.q.queryStart) / 1000;
      case 'unary':
        return d.op === '-' ? -this.durationSeconds(d.expr) : this.durationSeconds(d.expr);
      case 'call': {
        const a = this.durationSeconds(d.args[0]!);
        const b = this.durationSeconds(d.args[1]!);
        return d.fn === 'min_of' ? Math.min(a, b) : Math.max(a, b);
      }
      case 'binary': {
        const a = this.durationSeconds(d.lhs);
        const b = this.durationSeconds(d.rhs);
        switch (d.op) {
          case '+':
            return a + b;
          case '-':
            return a - b;
          case '*':
            return a * b;
          case '/':
            if (b === 0) throw new ExecutionError('division by zero in duration expression');
            return a / b;
          case '%':
            if (b === 0) throw new ExecutionError('modulo by zero in duration expression');
            return a % b;
          case '^':
            return a ** b;
        }
      }
    }
  }

  resolvePositiveRange(d: DurationExpr, what: string): number {
    const ms = this.resolveDuration(d);
    if (ms <= 0) throw new ExecutionError(`${what} must be greater than 0, got ${ms / 1000}s`);
    return ms;
  }

  atTime(at: AtModifier | undefined): number | undefined {
    if (!at) return undefined;
    if (at.kind === 'time') return at.ms;
    return at.kind === 'start' ? this.q.queryStart : this.q.queryEnd;
  }

  // ---- names ----

  /** Drops the metric name now, or marks it for dropping at the end (delayed name removal). */
  dropName(labels: LabelSet): { labels: LabelSet; dropName: boolean } {
    if (this.q.delayedNameRemoval) return { labels, dropName: true };
    return { labels: withoutMetricName(labels), dropName: false };
  }

  // ---- evaluation ----

  async eval(e: Expr): Promise<EvalValue> {
    if (this.q.signal?.aborted) throw new QueryCanceledError('evaluation');
    if (Date.now() > this.q.deadline) throw new QueryTimeoutError('evaluation');
    await this.maybeYield('evaluation');
    // Sample accounting as a stack: the inputs of a node are held while it computes, then its output
    // replaces them.
    const before = this.q.liveSamples;
    const v = await this.evalNode(e);
    this.q.liveSamples = before;
    this.hold(pointCount(v));
    return v;
  }

  private async evalNode(e: Expr): Promise<EvalValue> {
    switch (e.type) {
      case 'NumberLiteral':
        return { kind: 'scalar', vals: new Float64Array(this.steps).fill(e.val) };
      case 'StringLiteral':
        return { kind: 'string', val: e.val };
      case 'ParenExpr':
        return await this.eval(e.expr);
      case 'UnaryExpr': {
        const v = await this.eval(e.expr);
        if (e.op === '+') return v;
        if (v.kind === 'scalar') {
          const out = new Float64Array(this.steps);
          for (let i = 0; i < out.length; i++) out[i] = -v.vals[i]!;
          return { kind: 'scalar', vals: out };
        }
        if (v.kind !== 'vector') throw new ExecutionError('unary minus on a string');
        const series: StepSeries[] = [];
        for (const s of v.series) {
          const named = this.dropName(s.labels);
          const out = newStepSeries(named.labels, this.steps, named.dropName || s.dropName);
          for (let i = 0; i < this.steps; i++) {
            if (s.has[i]) {
              out.has[i] = 1;
              out.vals[i] = -s.vals[i]!;
            }
          }
          series.push(out);
        }
        return { kind: 'vector', series: this.mergeSameLabels(series) };
      }
      case 'VectorSelector':
        return { kind: 'vector', series: await this.evalVectorSelector(e, false) };
      case 'MatrixSelector':
      case 'SubqueryExpr':
        throw new ExecutionError(
          `unexpected range vector in ${exprType(e)} context: a range vector can only be an argument of a function`,
        );
      case 'BinaryExpr':
        return await evalBinary(this, e);
      case 'AggregateExpr':
        return await evalAggregate(this, e);
      case 'Call':
        return await evalCall(this, e);
    }
  }

  /** Evaluates a scalar-typed expression to its value per step. */
  async evalScalar(e: Expr): Promise<Float64Array> {
    const v = await this.eval(e);
    if (v.kind !== 'scalar') throw new ExecutionError(`expected a scalar, got ${v.kind}`);
    return v.vals;
  }

  async evalVector(e: Expr): Promise<StepSeries[]> {
    const v = await this.eval(e);
    if (v.kind !== 'vector') throw new ExecutionError(`expected an instant vector, got ${v.kind}`);
    return v.series;
  }

  /**
   * Series with identical labels are one series: merge them, or fail like Prometheus when two of them have a
   * value at the same step ("vector cannot contain metrics with the same labelset").
   */
  mergeSameLabels(series: StepSeries[]): StepSeries[] {
    if (series.length < 2) return series;
    const byKey = new Map<string, number>();
    let merged: StepSeries[] | undefined;
    for (let k = 0; k < series.length; k++) {
      const s = series[k]!;
      const key = labelKey(s.labels);
      const first = byKey.get(key);
      if (first === undefined) {
        byKey.set(key, merged ? merged.length : k);
        if (merged) merged.push(s);
        continue;
      }
      if (!merged) merged = series.slice(0, k);
      const target = merged[first]!;
      for (let i = 0; i < s.has.length; i++) {
        if (!s.has[i]) continue;
        if (target.has[i]) throw new ExecutionError('vector cannot contain metrics with the same labelset');
        target.has[i] = 1;
        target.vals[i] = s.vals[i]!;
      }
    }
    return merged ?? series;
  }

  // ---- selectors ----

  /**
   * Selects through the querier, passing the query's cancellation on. A set that broke off part-way fails the
   * query (PromQL answers whole or not at all); warnings become the query's annotations.
   */
  async select(
    selectors: readonly LabelMatcher[],
    minT: number,
    maxT: number,
    hints: SelectHints,
  ): Promise<readonly SelectedSeries[]> {
    if (maxT < minT) return [];
    const key = selectionKey(selectors, minT, maxT, hints);
    let selection = this.q.selections.get(key);
    if (!selection) {
      selection = this.selectOnce(selectors, minT, maxT, hints);
      this.q.selections.set(key, selection);
    }
    const selected = await selection;
    if (selected.length > this.q.maxSeries) throw new TooManySeriesError(this.q.maxSeries);
    return selected;
  }

  private async selectOnce(
    selectors: readonly LabelMatcher[],
    minT: number,
    maxT: number,
    hints: SelectHints,
  ): Promise<readonly SelectedSeries[]> {
    const querier = this.q.queryable.querier(minT, maxT);
    const matchers = await this.resolveNameRegex(querier, selectors);
    if (matchers === undefined) return [];
    // The rest of the query's sample budget goes with the select: a storage that materializes the selection
    // (over a MessagePort, from another thread) refuses it before allocating what the query could not hold.
    const budget = { ...hints, maxSamples: Math.max(0, this.q.maxSamples - this.q.liveSamples) };
    let set: SeriesSet;
    try {
      set = await querier.select(matchers, budget, this.q.selectSignal);
    } catch (err) {
      throw this.selectError(err);
    }
    if (set.err) throw this.selectError(set.err);
    for (const w of set.warnings) this.q.annotations.storageWarning(w);
    const selected = set.series;
    this.q.seriesSelected += selected.length;
    return selected;
  }

  /**
   * An instant vector selector over every step: the latest sample in (t - lookback, t], unless it is a
   * staleness marker. With `timestamps`, the value is the sample's timestamp in seconds (for `timestamp()`).
   */
  async evalVectorSelector(vs: VectorSelector, timestamps: boolean): Promise<StepSeries[]> {
    const offset = this.resolveDuration(vs.offset);
    const at = this.atTime(vs.at);
    const lookback = this.q.lookbackMs;
    const firstT = (at ?? this.start) - offset;
    const lastT = (at ?? this.end) - offset;
    const selected = await this.select(vs.matchers, firstT - lookback + 1, lastT, {
      minT: firstT - lookback + 1,
      maxT: lastT,
    });
    this.reserveSteps(selected.length, 'vector selector');
    const out: StepSeries[] = [];
    const steps = this.steps;
    // When consecutive lookback windows overlap, every sample of the selection is read anyway: read each
    // series in bulk (no iterator and no call per sample) and walk its arrays as the iterator would.
    const bulk = at === undefined && (steps === 1 || this.interval <= lookback);
    for (const sel of selected) {
      this.checkInterrupt('vector selector');
      await this.maybeYield('vector selector');
      if (bulk && sel.readSamples) {
        const s = this.vectorFromSamples(sel, offset, lookback, timestamps);
        if (s) out.push(s);
        continue;
      }
      const s = newStepSeries(sel.labels, steps);
      const it = sel.iterator();
      let has = it.next();
      let lastTs = Number.NEGATIVE_INFINITY;
      let lastV = 0;
      let points = 0;
      const stepsToEval = at !== undefined ? 1 : steps;
      for (let i = 0; i < stepsToEval; i++) {
        const t = (at ?? this.stepTime(i)) - offset;
        if (has && it.t <= t) {
          if (it.t <= t - lookback) {
            has = it.seek(t - lookback + 1);
          }
          while (has && it.t <= t) {
            lastTs = it.t;
            lastV = it.v;
            this.q.samplesRead++;
            has = it.next();
          }
        }
        if (lastTs > t - lookback && !isStaleNaN(lastV)) {
          s.has[i] = 1;
          s.vals[i] = timestamps ? lastTs / 1000 : lastV;
          points++;
        }
      }
      if (at !== undefined && s.has[0]) {
        s.has.fill(1);
        s.vals.fill(s.vals[0]!);
        points = steps;
      }
      if (points > 0) {
        out.push(s);
      }
    }
    return out;
  }

  /**
   * {@link evalVectorSelector}'s step loop over a series read in bulk (`readSamples`, no `@`): the same
   * samples taken, skipped and counted as with the iterator; undefined when no step has a value.
   */
  private vectorFromSamples(
    sel: SelectedSeries,
    offset: number,
    lookback: number,
    timestamps: boolean,
  ): StepSeries | undefined {
    const buf = this.bulkSamples;
    const n = sel.readSamples!(buf);
    const T = buf.t;
    const V = buf.v;
    const steps = this.steps;
    let s: StepSeries | undefined;
    let p = 0;
    let lastTs = Number.NEGATIVE_INFINITY;
    let lastV = 0;
    let read = 0;
    for (let i = 0; i < steps; i++) {
      const t = this.stepTime(i) - offset;
      if (p < n && T[p]! <= t) {
        // The iterator's seek(t - lookback + 1): skipped samples are not read.
        if (T[p]! <= t - lookback) {
          const from = t - lookback + 1;
          while (p < n && T[p]! < from) p++;
        }
        while (p < n && T[p]! <= t) {
          lastTs = T[p]!;
          lastV = V[p]!;
          read++;
          p++;
        }
      }
      if (lastTs > t - lookback && !isStaleNaN(lastV)) {
        if (s === undefined) s = newStepSeries(sel.labels, steps);
        s.has[i] = 1;
        s.vals[i] = timestamps ? lastTs / 1000 : lastV;
      }
    }
    this.q.samplesRead += read;
    return s;
  }

  /**
   * Evaluates `fn` over a range vector argument (matrix selector or subquery) at every step.
   * `params(i)` sets the scalar arguments of step i into the window context.
   */
  async evalRangeFunction(
    arg: Expr,
    fnName: string,
    fn: WindowFn,
    setParams: ((w: WindowCtx, step: number) => void) | undefined,
    keepName: boolean,
    annotate: WindowCtx['annotate'],
  ): Promise<StepSeries[]> {
    const m = unwrapParens(arg);
    const w: WindowCtx = { rangeStart: 0, rangeEnd: 0, rangeMs: 0, evalT: 0, p0: 0, p1: 0, annotate };
    const out: StepSeries[] = [];
    const steps = this.steps;
    const outLabels = (labels: LabelSet, dropName: boolean): { labels: LabelSet; dropName: boolean } => {
      if (keepName) return { labels, dropName };
      const d = this.dropName(labels);
      return { labels: d.labels, dropName: d.dropName || dropName };
    };
    if (m.type === 'MatrixSelector') {
      const range = this.resolvePositiveRange(m.range, 'range');
      w.rangeMs = range;
      const vs = m.vs;
      const offset = this.resolveDuration(vs.offset);
      const at = this.atTime(vs.at);
      const firstT = (at ?? this.start) - offset;
      const lastT = (at ?? this.end) - offset;
      const selected = await this.select(vs.matchers, firstT - range + 1, lastT, {
        minT: firstT - range + 1,
        maxT: lastT,
        // Rollup tiers answer min/max/sum/count/avg/last_over_time from per-window aggregates; opt-in
        // because a sample exactly on a window boundary lands in the next window (see EngineOptions.rollups).
        // Only when every window ends on a multiple of the step (and so of the tier's resolution).
        ...(this.q.useRollups &&
        this.interval > 0 &&
        at === undefined &&
        (this.start - offset) % this.interval === 0
          ? { stepMs: this.interval, func: fnName, rangeMs: range }
          : {}),
      });
      this.reserveSteps(selected.length, 'range selector');
      const buf = new WindowBuffer();
      // When consecutive windows overlap, every sample of the selection is read anyway: read each series in
      // bulk and walk its arrays as the iterator would (same samples taken, skipped and counted).
      const bulk = at === undefined && (steps === 1 || this.interval <= range);
      const bulkBuf = this.bulkSamples;
      for (const sel of selected) {
        this.checkInterrupt('range selector');
        await this.maybeYield('range selector');
        if (sel.resolutionMs !== undefined) {
          const s = this.rollupWindows(sel, fnName, range, offset, at, outLabels(sel.labels, false));
          if (s) out.push(s);
          continue;
        }
        buf.reset();
        const bulkN = bulk && sel.readSamples ? sel.readSamples(bulkBuf) : -1;
        const T = bulkBuf.t;
        const V = bulkBuf.v;
        let p = 0;
        const it = bulkN < 0 ? sel.iterator() : EMPTY_ITERATOR;
        let has = bulkN < 0 ? it.next() : false;
        const named = outLabels(sel.labels, false);
        const s = newStepSeries(named.labels, steps, named.dropName);
        let any = false;
        for (let i = 0; i < steps; i++) {
          // With a fixed @ time every step sees the same window (loaded once); parameters may still vary.
          const t = (at ?? this.stepTime(i)) - offset;
          const lo = t - range;
          if (bulkN >= 0) {
            buf.dropUpTo(lo);
            if (p < bulkN && T[p]! <= lo) {
              const from = lo + 1;
              while (p < bulkN && T[p]! < from) p++;
            }
            while (p < bulkN && T[p]! <= t) {
              const v = V[p]!;
              this.q.samplesRead++;
              if (!isStaleNaN(v)) buf.push(T[p]!, v);
              p++;
            }
          } else if (at === undefined || i === 0) {
            buf.dropUpTo(lo);
            if (has && it.t <= lo) has = it.seek(lo + 1);
            while (has && it.t <= t) {
              const v = it.v;
              this.q.samplesRead++;
              if (!isStaleNaN(v)) buf.push(it.t, v);
              has = it.next();
            }
          }
          const n = buf.tail - buf.head;
          this.countWindowWork(n, 'range selector');
          if (n > 0) this.hold(n);
          w.rangeStart = lo;
          w.rangeEnd = t;
          w.evalT = this.stepTime(i);
          if (setParams) setParams(w, i);
          const r = fn(buf.ts, buf.vs, buf.head, buf.tail, w);
          if (n > 0) this.release(n);
          if (r !== undefined) {
            s.has[i] = 1;
            s.vals[i] = r;
            any = true;
          }
        }
        if (any) out.push(s);
      }
      return this.mergeSameLabels(out);
    }
    if (m.type === 'SubqueryExpr') {
      const { series, range, offset, at } = await this.evalSubqueryPoints(m);
      w.rangeMs = range;
      this.reserveSteps(series.length, 'subquery');
      for (const ps of series) {
        this.checkInterrupt('subquery');
        await this.maybeYield('subquery');
        const named = outLabels(ps.labels, ps.dropName);
        const s = newStepSeries(named.labels, steps, keepName ? ps.dropName : named.dropName);
        let lo = 0;
        let hi = 0;
        let any = false;
        const n = ps.ts.length;
        for (let i = 0; i < steps; i++) {
          const t = (at ?? this.stepTime(i)) - offset;
          const start = t - range;
          while (lo < n && ps.ts[lo]! <= start) lo++;
          if (hi < lo) hi = lo;
          while (hi < n && ps.ts[hi]! <= t) hi++;
          this.countWindowWork(hi - lo, 'subquery');
          w.rangeStart = start;
          w.rangeEnd = t;
          w.evalT = this.stepTime(i);
          if (setParams) setParams(w, i);
          const r = fn(ps.ts, ps.vs, lo, hi, w);
          if (r !== undefined) {
            s.has[i] = 1;
            s.vals[i] = r;
            any = true;
          }
        }
        if (any) out.push(s);
      }
      return this.mergeSameLabels(out);
    }
    throw new ExecutionError(`expected a range vector argument to ${fnName}`);
  }

  /**
   * A range function over rollup windows (storage answered from a tier): each point stands for one window
   * and carries that window's aggregate; windows stored inside (t - range, t] are folded per step.
   */
  private rollupWindows(
    sel: SelectedSeries,
    fnName: string,
    range: number,
    offset: number,
    at: number | undefined,
    named: { labels: LabelSet; dropName: boolean },
  ): StepSeries | undefined {
    const steps = this.steps;
    const s = newStepSeries(named.labels, steps, named.dropName);
    const avg = fnName === 'avg_over_time';
    const it = avg && sel.aggregates ? sel.aggregates() : undefined;
    const plain = it ? undefined : sel.iterator();
    const ts: number[] = [];
    const vs: number[] = [];
    const cs: number[] = [];
    if (it) {
      while (it.next()) {
        if (it.count === 0) continue;
        ts.push(it.t);
        vs.push(it.sum);
        cs.push(it.count);
      }
    } else {
      while (plain!.next()) {
        ts.push(plain!.t);
        vs.push(plain!.v);
      }
    }
    this.q.samplesRead += ts.length;
    let lo = 0;
    let hi = 0;
    let any = false;
    for (let i = 0; i < steps; i++) {
      const t = (at ?? this.stepTime(i)) - offset;
      while (lo < ts.length && ts[lo]! <= t - range) lo++;
      if (hi < lo) hi = lo;
      while (hi < ts.length && ts[hi]! <= t) hi++;
      if (hi === lo) continue;
      let r: number;
      switch (fnName) {
        case 'min_over_time':
        case 'max_over_time': {
          r = vs[lo]!;
          for (let k = lo + 1; k < hi; k++) {
            const f = vs[k]!;
            if (Number.isNaN(r) || (fnName === 'min_over_time' ? f < r : f > r)) r = f;
          }
          break;
        }
        case 'last_over_time':
          r = vs[hi - 1]!;
          break;
        case 'avg_over_time': {
          let sum = 0;
          let count = 0;
          for (let k = lo; k < hi; k++) {
            sum += vs[k]!;
            count += cs[k] ?? 1;
          }
          r = sum / count;
          break;
        }
        default: {
          // sum_over_time sums sums; count_over_time sums counts.
          r = 0;
          for (let k = lo; k < hi; k++) r += vs[k]!;
        }
      }
      s.has[i] = 1;
      s.vals[i] = r;
      any = true;
    }
    return any ? s : undefined;
  }

  /** Evaluates a subquery's inner expression on its own step grid covering every window the outer steps need. */
  async evalSubqueryPoints(sq: SubqueryExpr): Promise<{
    series: PointSeries[];
    range: number;
    offset: number;
    at: number | undefined;
  }> {
    const range = this.resolvePositiveRange(sq.range, 'subquery range');
    const step = sq.step ? this.resolvePositiveRange(sq.step, 'subquery step') : this.q.defaultSubqueryStepMs;
    const offset = this.resolveDuration(sq.offset);
    const at = this.atTime(sq.at);
    const outerStart = at ?? this.start;
    const outerEnd = at ?? this.end;
    const from = outerStart - offset - range;
    let innerStart = step * Math.trunc(from / step);
    if (innerStart <= from) innerStart += step;
    const innerEnd = outerEnd - offset;
    if (innerStart > innerEnd) return { series: [], range, offset, at };
    // Refused before the inner evaluator allocates anything: its every node holds one slot per inner step.
    const innerSteps = Math.floor((innerEnd - innerStart) / step) + 1;
    if (innerSteps > this.q.maxSubqueryPoints)
      throw new SubqueryResolutionError(
        exprToString(sq),
        innerSteps,
        formatDuration(step),
        this.q.maxSubqueryPoints,
      );
    if (this.q.liveSamples + innerSteps > this.q.maxSamples)
      throw new TooManySamplesError(this.q.maxSamples, 'subquery');
    const inner = new Evaluator(this.q, innerStart, innerEnd, step);
    const v = await inner.eval(sq.expr);
    const series: PointSeries[] = [];
    if (v.kind === 'vector') {
      for (const s of v.series) {
        let n = 0;
        for (let i = 0; i < s.has.length; i++) n += s.has[i]!;
        if (n === 0) continue;
        const ts = new Float64Array(n);
        const vs = new Float64Array(n);
        let k = 0;
        for (let i = 0; i < s.has.length; i++) {
          if (!s.has[i]) continue;
          ts[k] = inner.stepTime(i);
          vs[k] = s.vals[i]!;
          k++;
        }
        series.push({ labels: s.labels, dropName: s.dropName, ts, vs });
      }
    } else if (v.kind === 'scalar') {
      throw new ExecutionError('subquery is only allowed on instant vector');
    }
    return { series, range, offset, at };
  }

  /** A range vector at one evaluation time, for instant queries whose result is a matrix. */
  async evalMatrixAt(e: MatrixSelector | SubqueryExpr): Promise<RangeSeries[]> {
    if (e.type === 'SubqueryExpr') {
      const { series, range, offset, at } = await this.evalSubqueryPoints(e);
      const t = (at ?? this.start) - offset;
      const out: RangeSeries[] = [];
      for (const ps of series) {
        let lo = 0;
        while (lo < ps.ts.length && ps.ts[lo]! <= t - range) lo++;
        let hi = lo;
        while (hi < ps.ts.length && ps.ts[hi]! <= t) hi++;
        if (hi > lo) {
          const labels = ps.dropName ? withoutMetricName(ps.labels) : ps.labels;
          out.push({ labels, timestamps: ps.ts.slice(lo, hi), values: ps.vs.slice(lo, hi) });
        }
      }
      return out;
    }
    const range = this.resolvePositiveRange(e.range, 'range');
    const vs = e.vs;
    const offset = this.resolveDuration(vs.offset);
    const t = (this.atTime(vs.at) ?? this.start) - offset;
    const selected = await this.select(vs.matchers, t - range + 1, t, { minT: t - range + 1, maxT: t });
    const out: RangeSeries[] = [];
    for (const sel of selected) {
      const buf = new WindowBuffer();
      const it = sel.iterator();
      if (it.seek(t - range + 1)) {
        do {
          if (it.t > t) break;
          this.q.samplesRead++;
          if (!isStaleNaN(it.v)) buf.push(it.t, it.v);
        } while (it.next());
      }
      const n = buf.tail - buf.head;
      if (n === 0) continue;
      this.hold(n);
      out.push({
        labels: sel.labels,
        timestamps: buf.ts.slice(buf.head, buf.tail),
        values: buf.vs.slice(buf.head, buf.tail),
      });
    }
    return out;
  }
}

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
      value = { resultType: 'matrix', series: await ev.evalMatrixAt(top) };
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

/**
 * Identifies one selection of a query: matchers (in the selector's order), time range and the hints that
 * shape what storage returns. The sample budget is left out: it bounds a selection, not which one it is.
 */
function selectionKey(
  matchers: readonly LabelMatcher[],
  minT: number,
  maxT: number,
  hints: SelectHints,
): string {
  return JSON.stringify([
    matchers.map((m) => [m.type, m.name, m.value]),
    minT,
    maxT,
    hints.minT,
    hints.maxT,
    hints.stepMs,
    hints.func,
    hints.rangeMs,
    hints.aggregates,
  ]);
}
