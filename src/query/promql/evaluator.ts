/**
 * The PromQL evaluator: one step-aligned evaluation of an expression tree (promql/engine.go `evaluator`).
 * Holds what every stage of evaluation shares: the query's limits and budgets (deadline, cancellation,
 * samples held), durations and `@` times, name dropping, node dispatch, and the query's selections from
 * storage. The stages themselves live beside it: selectors and range vectors (`selectors.ts`), binary
 * operators, aggregations and functions; separate from `engine.ts`, which sets a query up and shapes its result.
 */
import { Errors, TrainwatchError } from '../../model/errors.js';
import { LabelMatcher, type LabelSet, METRIC_NAME_LABEL, regexOfLiterals } from '../../model/labels.js';
import {
  type Querier,
  SampleBuffer,
  type SelectedSeries,
  type SelectHints,
  type SeriesSet,
} from '../../storage/index.js';
import { evalAggregate } from './aggregate.js';
import type { Annotations } from './annotations.js';
import { type AtModifier, type DurationExpr, type Expr, exprType } from './ast.js';
import { evalBinary } from './binary.js';
import type { Queryable } from './engine.js';
import {
  ExecutionError,
  QueryCanceledError,
  QueryTimeoutError,
  TooManySamplesError,
  TooManySeriesError,
} from './errors.js';
import { evalCall } from './functions-eval.js';
import { labelKey, withoutMetricName } from './labels-util.js';
import { evalVectorSelector } from './selectors.js';
import { type EvalValue, newStepSeries, pointCount, type StepSeries } from './value.js';

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

export class Evaluator {
  readonly steps: number;
  /** Reused by bulk series reads (`readSamples`) in the selectors. */
  readonly bulkSamples = new SampleBuffer();

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
      // Twin: binary.ts arith, but on durations: a zero divisor is an error, `^` is JS's (finite).
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
        return { kind: 'vector', series: await evalVectorSelector(this, e, false) };
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
