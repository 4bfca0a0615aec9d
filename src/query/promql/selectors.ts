/**
 * Selectors and range vectors, the stage of evaluation that reads storage samples: instant vector selectors,
 * range functions over matrix selectors, rollup windows and subqueries, and a range vector at one instant.
 * Separate from the evaluator's node dispatch and bookkeeping (`evaluator.ts`) because these are the
 * per-sample loops: they stay free functions over the {@link Evaluator} with no per-sample objects.
 */
import { isStaleNaN } from '../../model/batch.js';
import type { LabelSet } from '../../model/labels.js';
import { EMPTY_ITERATOR, type SelectedSeries } from '../../storage/index.js';
import {
  type Expr,
  type MatrixSelector,
  type SubqueryExpr,
  unwrapParens,
  type VectorSelector,
} from './ast.js';
import { ExecutionError, SubqueryResolutionError, TooManySamplesError } from './errors.js';
import { Evaluator } from './evaluator.js';
import { withoutMetricName } from './labels-util.js';
import { exprToString, formatDuration } from './print.js';
import type { WindowCtx, WindowFn } from './range-functions.js';
import { newStepSeries, type RangeSeries, type StepSeries } from './value.js';

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

/**
 * An instant vector selector over every step: the latest sample in (t - lookback, t], unless it is a
 * staleness marker. With `timestamps`, the value is the sample's timestamp in seconds (for `timestamp()`).
 */
export async function evalVectorSelector(
  ev: Evaluator,
  vs: VectorSelector,
  timestamps: boolean,
): Promise<StepSeries[]> {
  const offset = ev.resolveDuration(vs.offset);
  const at = ev.atTime(vs.at);
  const lookback = ev.q.lookbackMs;
  const firstT = (at ?? ev.start) - offset;
  const lastT = (at ?? ev.end) - offset;
  const selected = await ev.select(vs.matchers, firstT - lookback + 1, lastT, {
    minT: firstT - lookback + 1,
    maxT: lastT,
  });
  ev.reserveSteps(selected.length, 'vector selector');
  const out: StepSeries[] = [];
  const steps = ev.steps;
  // When consecutive lookback windows overlap, every sample of the selection is read anyway: read each
  // series in bulk (no iterator and no call per sample) and walk its arrays as the iterator would.
  const bulk = at === undefined && (steps === 1 || ev.interval <= lookback);
  for (const sel of selected) {
    ev.checkInterrupt('vector selector');
    await ev.maybeYield('vector selector');
    if (bulk && sel.readSamples) {
      const s = vectorFromSamples(ev, sel, offset, lookback, timestamps);
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
      const t = (at ?? ev.stepTime(i)) - offset;
      if (has && it.t <= t) {
        if (it.t <= t - lookback) {
          has = it.seek(t - lookback + 1);
        }
        while (has && it.t <= t) {
          lastTs = it.t;
          lastV = it.v;
          ev.q.samplesRead++;
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
function vectorFromSamples(
  ev: Evaluator,
  sel: SelectedSeries,
  offset: number,
  lookback: number,
  timestamps: boolean,
): StepSeries | undefined {
  const buf = ev.bulkSamples;
  const n = sel.readSamples!(buf);
  const T = buf.t;
  const V = buf.v;
  const steps = ev.steps;
  let s: StepSeries | undefined;
  let p = 0;
  let lastTs = Number.NEGATIVE_INFINITY;
  let lastV = 0;
  let read = 0;
  for (let i = 0; i < steps; i++) {
    const t = ev.stepTime(i) - offset;
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
  ev.q.samplesRead += read;
  return s;
}

/**
 * Evaluates `fn` over a range vector argument (matrix selector or subquery) at every step.
 * `params(i)` sets the scalar arguments of step i into the window context.
 */
export async function evalRangeFunction(
  ev: Evaluator,
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
  const steps = ev.steps;
  const outLabels = (labels: LabelSet, dropName: boolean): { labels: LabelSet; dropName: boolean } => {
    if (keepName) return { labels, dropName };
    const d = ev.dropName(labels);
    return { labels: d.labels, dropName: d.dropName || dropName };
  };
  if (m.type === 'MatrixSelector') {
    const range = ev.resolvePositiveRange(m.range, 'range');
    w.rangeMs = range;
    const vs = m.vs;
    const offset = ev.resolveDuration(vs.offset);
    const at = ev.atTime(vs.at);
    const firstT = (at ?? ev.start) - offset;
    const lastT = (at ?? ev.end) - offset;
    const selected = await ev.select(vs.matchers, firstT - range + 1, lastT, {
      minT: firstT - range + 1,
      maxT: lastT,
      // Rollup tiers answer min/max/sum/count/avg/last_over_time from per-window aggregates; opt-in
      // because a sample exactly on a window boundary lands in the next window (see EngineOptions.rollups).
      // Only when every window ends on a multiple of the step (and so of the tier's resolution).
      ...(ev.q.useRollups && ev.interval > 0 && at === undefined && (ev.start - offset) % ev.interval === 0
        ? { stepMs: ev.interval, func: fnName, rangeMs: range }
        : {}),
    });
    ev.reserveSteps(selected.length, 'range selector');
    const buf = new WindowBuffer();
    // When consecutive windows overlap, every sample of the selection is read anyway: read each series in
    // bulk and walk its arrays as the iterator would (same samples taken, skipped and counted).
    const bulk = at === undefined && (steps === 1 || ev.interval <= range);
    const bulkBuf = ev.bulkSamples;
    for (const sel of selected) {
      ev.checkInterrupt('range selector');
      await ev.maybeYield('range selector');
      if (sel.resolutionMs !== undefined) {
        const s = rollupWindows(ev, sel, fnName, range, offset, at, outLabels(sel.labels, false));
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
        const t = (at ?? ev.stepTime(i)) - offset;
        const lo = t - range;
        if (bulkN >= 0) {
          buf.dropUpTo(lo);
          if (p < bulkN && T[p]! <= lo) {
            const from = lo + 1;
            while (p < bulkN && T[p]! < from) p++;
          }
          while (p < bulkN && T[p]! <= t) {
            const v = V[p]!;
            ev.q.samplesRead++;
            if (!isStaleNaN(v)) buf.push(T[p]!, v);
            p++;
          }
        } else if (at === undefined || i === 0) {
          buf.dropUpTo(lo);
          if (has && it.t <= lo) has = it.seek(lo + 1);
          while (has && it.t <= t) {
            const v = it.v;
            ev.q.samplesRead++;
            if (!isStaleNaN(v)) buf.push(it.t, v);
            has = it.next();
          }
        }
        // Twin: the SubqueryExpr loop below (stored samples vs points): both inline, no call per step.
        const n = buf.tail - buf.head;
        ev.countWindowWork(n, 'range selector');
        if (n > 0) ev.hold(n);
        w.rangeStart = lo;
        w.rangeEnd = t;
        w.evalT = ev.stepTime(i);
        if (setParams) setParams(w, i);
        const r = fn(buf.ts, buf.vs, buf.head, buf.tail, w);
        if (n > 0) ev.release(n);
        if (r !== undefined) {
          s.has[i] = 1;
          s.vals[i] = r;
          any = true;
        }
      }
      if (any) out.push(s);
    }
    return ev.mergeSameLabels(out);
  }
  if (m.type === 'SubqueryExpr') {
    const { series, range, offset, at } = await evalSubqueryPoints(ev, m);
    w.rangeMs = range;
    ev.reserveSteps(series.length, 'subquery');
    for (const ps of series) {
      ev.checkInterrupt('subquery');
      await ev.maybeYield('subquery');
      const named = outLabels(ps.labels, ps.dropName);
      const s = newStepSeries(named.labels, steps, keepName ? ps.dropName : named.dropName);
      let lo = 0;
      let hi = 0;
      let any = false;
      const n = ps.ts.length;
      for (let i = 0; i < steps; i++) {
        const t = (at ?? ev.stepTime(i)) - offset;
        const start = t - range;
        while (lo < n && ps.ts[lo]! <= start) lo++;
        if (hi < lo) hi = lo;
        while (hi < n && ps.ts[hi]! <= t) hi++;
        // Twin: the range-selector loop above (points vs stored samples): both inline, no call per step.
        ev.countWindowWork(hi - lo, 'subquery');
        w.rangeStart = start;
        w.rangeEnd = t;
        w.evalT = ev.stepTime(i);
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
    return ev.mergeSameLabels(out);
  }
  throw new ExecutionError(`expected a range vector argument to ${fnName}`);
}

/**
 * A range function over rollup windows (storage answered from a tier): each point stands for one window
 * and carries that window's aggregate; windows stored inside (t - range, t] are folded per step.
 */
function rollupWindows(
  ev: Evaluator,
  sel: SelectedSeries,
  fnName: string,
  range: number,
  offset: number,
  at: number | undefined,
  named: { labels: LabelSet; dropName: boolean },
): StepSeries | undefined {
  const steps = ev.steps;
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
  ev.q.samplesRead += ts.length;
  let lo = 0;
  let hi = 0;
  let any = false;
  for (let i = 0; i < steps; i++) {
    const t = (at ?? ev.stepTime(i)) - offset;
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
async function evalSubqueryPoints(
  ev: Evaluator,
  sq: SubqueryExpr,
): Promise<{
  series: PointSeries[];
  range: number;
  offset: number;
  at: number | undefined;
}> {
  const range = ev.resolvePositiveRange(sq.range, 'subquery range');
  const step = sq.step ? ev.resolvePositiveRange(sq.step, 'subquery step') : ev.q.defaultSubqueryStepMs;
  const offset = ev.resolveDuration(sq.offset);
  const at = ev.atTime(sq.at);
  const outerStart = at ?? ev.start;
  const outerEnd = at ?? ev.end;
  const from = outerStart - offset - range;
  let innerStart = step * Math.trunc(from / step);
  if (innerStart <= from) innerStart += step;
  const innerEnd = outerEnd - offset;
  if (innerStart > innerEnd) return { series: [], range, offset, at };
  // Refused before the inner evaluator allocates anything: its every node holds one slot per inner step.
  const innerSteps = Math.floor((innerEnd - innerStart) / step) + 1;
  if (innerSteps > ev.q.maxSubqueryPoints)
    throw new SubqueryResolutionError(
      exprToString(sq),
      innerSteps,
      formatDuration(step),
      ev.q.maxSubqueryPoints,
    );
  if (ev.q.liveSamples + innerSteps > ev.q.maxSamples)
    throw new TooManySamplesError(ev.q.maxSamples, 'subquery');
  const inner = new Evaluator(ev.q, innerStart, innerEnd, step);
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
export async function evalMatrixAt(ev: Evaluator, e: MatrixSelector | SubqueryExpr): Promise<RangeSeries[]> {
  if (e.type === 'SubqueryExpr') {
    const { series, range, offset, at } = await evalSubqueryPoints(ev, e);
    const t = (at ?? ev.start) - offset;
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
  const range = ev.resolvePositiveRange(e.range, 'range');
  const vs = e.vs;
  const offset = ev.resolveDuration(vs.offset);
  const t = (ev.atTime(vs.at) ?? ev.start) - offset;
  const selected = await ev.select(vs.matchers, t - range + 1, t, { minT: t - range + 1, maxT: t });
  const out: RangeSeries[] = [];
  for (const sel of selected) {
    const buf = new WindowBuffer();
    const it = sel.iterator();
    if (it.seek(t - range + 1)) {
      do {
        if (it.t > t) break;
        ev.q.samplesRead++;
        if (!isStaleNaN(it.v)) buf.push(it.t, it.v);
      } while (it.next());
    }
    const n = buf.tail - buf.head;
    if (n === 0) continue;
    ev.hold(n);
    out.push({
      labels: sel.labels,
      timestamps: buf.ts.slice(buf.head, buf.tail),
      values: buf.vs.slice(buf.head, buf.tail),
    });
  }
  return out;
}
