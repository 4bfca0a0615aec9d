/** Evaluation of function calls (promql/functions.go), over all steps of a query at once. */
import { type LabelSet, METRIC_NAME_LABEL } from '../../model/labels.js';
import type { Call, Expr } from './ast.js';
import { exprType, unwrapParens } from './ast.js';
import { ExecutionError } from './errors.js';
import type { Evaluator } from './evaluator.js';
import { KEEPS_METRIC_NAME } from './functions.js';
import { evalHistogramFraction, evalHistogramQuantile, evalHistogramQuantiles } from './histogram.js';
import { evalInfo } from './info.js';
import { formatGoFloatG, labelKey, natsortLess, withoutMetricName } from './labels-util.js';
import { goQuote, hasInvalidUtf8 } from './lexer.js';
import { WINDOW_FUNCTIONS, type WindowCtx } from './range-functions.js';
import { compileAnchoredRe2, execAnchoredRe2, expandTemplate } from './regex.js';
import { evalRangeFunction, evalVectorSelector } from './selectors.js';
import { type EvalValue, newStepSeries, type StepSeries } from './value.js';

type MathFn = (v: number) => number;

/** Go's math functions where JavaScript's differ. */
const MATH: Readonly<Record<string, MathFn>> = {
  abs: Math.abs,
  ceil: Math.ceil,
  floor: Math.floor,
  exp: Math.exp,
  sqrt: Math.sqrt,
  ln: Math.log,
  log2: Math.log2,
  log10: Math.log10,
  sin: Math.sin,
  cos: Math.cos,
  tan: Math.tan,
  asin: Math.asin,
  acos: Math.acos,
  atan: Math.atan,
  sinh: Math.sinh,
  cosh: Math.cosh,
  tanh: Math.tanh,
  asinh: Math.asinh,
  acosh: Math.acosh,
  atanh: Math.atanh,
  deg: (v) => (v * 180) / Math.PI,
  rad: (v) => (v * Math.PI) / 180,
  sgn: (v) => (v < 0 ? -1 : v > 0 ? 1 : v),
};

/** Calendar functions of a Unix time in seconds (UTC), as Go's time package computes them. */
const DATE: Readonly<Record<string, (d: Date) => number>> = {
  year: (d) => d.getUTCFullYear(),
  month: (d) => d.getUTCMonth() + 1,
  day_of_month: (d) => d.getUTCDate(),
  day_of_week: (d) => d.getUTCDay(),
  day_of_year: (d) => {
    const start = Date.UTC(d.getUTCFullYear(), 0, 1);
    return Math.floor((d.getTime() - start) / 86_400_000) + 1;
  },
  days_in_month: (d) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate(),
  hour: (d) => d.getUTCHours(),
  minute: (d) => d.getUTCMinutes(),
};

/** Labels `absent()` gives its output: the equality matchers of a plain selector argument. */
export function labelsForAbsent(arg: Expr): LabelSet {
  const sel = arg.type === 'VectorSelector' ? arg : arg.type === 'MatrixSelector' ? arg.vs : undefined;
  if (!sel) return {};
  const out: Record<string, string> = {};
  const has = new Set<string>();
  for (const m of sel.matchers) {
    if (m.name === METRIC_NAME_LABEL) continue;
    if (m.type === '=' && !has.has(m.name)) {
      if (m.value === '') delete out[m.name];
      else out[m.name] = m.value;
      has.add(m.name);
    } else {
      delete out[m.name];
    }
  }
  return out;
}

function isValidLabelNameUtf8(name: string): boolean {
  return name.length > 0 && !hasInvalidUtf8(name);
}

export async function evalCall(ev: Evaluator, call: Call): Promise<EvalValue> {
  const name = call.func.name;
  const args = call.args;
  const steps = ev.steps;
  const annotations = ev.q.annotations;

  const windowFn = WINDOW_FUNCTIONS[name];
  if (windowFn) {
    const matrixIndex = args.findIndex((a) => exprType(a) === 'matrix');
    const scalarArgs: (Float64Array | undefined)[] = [];
    for (let i = 0; i < args.length; i++)
      scalarArgs.push(i === matrixIndex ? undefined : await ev.evalScalar(args[i]!));
    let setParams: ((w: WindowCtx, step: number) => void) | undefined;
    switch (name) {
      case 'quantile_over_time': {
        const q = scalarArgs[0]!;
        for (let i = 0; i < steps; i++) {
          const v = q[i]!;
          if (Number.isNaN(v) || v < 0 || v > 1) {
            annotations.warn(`quantile value should be between 0 and 1, got ${formatGoFloatG(v)}`, args[0]!);
            break;
          }
        }
        setParams = (w, i) => {
          w.p0 = q[i]!;
        };
        break;
      }
      case 'predict_linear': {
        const d = scalarArgs[1]!;
        setParams = (w, i) => {
          w.p0 = d[i]!;
        };
        break;
      }
      case 'double_exponential_smoothing': {
        const sf = scalarArgs[1]!;
        const tf = scalarArgs[2]!;
        setParams = (w, i) => {
          const s = sf[i]!;
          const t = tf[i]!;
          if (!(s > 0 && s < 1))
            throw new ExecutionError(`invalid smoothing factor. Expected: 0 < sf < 1, got: ${s.toFixed(6)}`);
          if (!(t > 0 && t < 1))
            throw new ExecutionError(`invalid trend factor. Expected: 0 < tf < 1, got: ${t.toFixed(6)}`);
          w.p0 = s;
          w.p1 = t;
        };
        break;
      }
    }
    const series = await evalRangeFunction(
      ev,
      args[matrixIndex]!,
      name,
      windowFn,
      setParams,
      KEEPS_METRIC_NAME.has(name),
      (kind, message) =>
        kind === 'warn' ? annotations.warn(message, call) : annotations.info(message, call),
    );
    return { kind: 'vector', series };
  }

  const math = MATH[name];
  if (math) return mapValues(ev, await ev.evalVector(args[0]!), math);

  const date = DATE[name];
  if (date) {
    if (args.length === 0) {
      const s = newStepSeries({}, steps);
      for (let i = 0; i < steps; i++) {
        s.has[i] = 1;
        s.vals[i] = date(new Date(Math.trunc(ev.stepTime(i) / 1000) * 1000));
      }
      return { kind: 'vector', series: [s] };
    }
    return mapValues(ev, await ev.evalVector(args[0]!), (v) => {
      if (!Number.isFinite(v)) return Number.NaN;
      return date(new Date(Math.trunc(v) * 1000));
    });
  }

  switch (name) {
    case 'time': {
      const vals = new Float64Array(steps);
      for (let i = 0; i < steps; i++) vals[i] = ev.stepTime(i) / 1000;
      return { kind: 'scalar', vals };
    }
    case 'pi':
      return { kind: 'scalar', vals: new Float64Array(steps).fill(Math.PI) };
    case 'step':
      return { kind: 'scalar', vals: new Float64Array(steps).fill(ev.q.queryStep / 1000) };
    case 'range':
      return { kind: 'scalar', vals: new Float64Array(steps).fill((ev.q.queryEnd - ev.q.queryStart) / 1000) };
    case 'start':
      return { kind: 'scalar', vals: new Float64Array(steps).fill(ev.q.queryStart / 1000) };
    case 'end':
      return { kind: 'scalar', vals: new Float64Array(steps).fill(ev.q.queryEnd / 1000) };
    case 'min_of':
    case 'max_of': {
      const a = await ev.evalScalar(args[0]!);
      const b = await ev.evalScalar(args[1]!);
      const vals = new Float64Array(steps);
      for (let i = 0; i < steps; i++) vals[i] = name === 'min_of' ? goMin(a[i]!, b[i]!) : goMax(a[i]!, b[i]!);
      return { kind: 'scalar', vals };
    }
    case 'vector': {
      const vals = await ev.evalScalar(args[0]!);
      const s = newStepSeries({}, steps);
      s.vals.set(vals);
      s.has.fill(1);
      return { kind: 'vector', series: [s] };
    }
    case 'scalar': {
      const series = await ev.evalVector(args[0]!);
      const vals = new Float64Array(steps).fill(Number.NaN);
      const counts = new Uint32Array(steps);
      for (const s of series) {
        for (let i = 0; i < steps; i++) {
          if (!s.has[i]) continue;
          counts[i]!++;
          vals[i] = s.vals[i]!;
        }
      }
      for (let i = 0; i < steps; i++) if (counts[i] !== 1) vals[i] = Number.NaN;
      return { kind: 'scalar', vals };
    }
    case 'timestamp': {
      const inner = unwrapParens(args[0]!);
      if (inner.type === 'VectorSelector') {
        const series = (await evalVectorSelector(ev, inner, true)).map((s) => {
          const d = ev.dropName(s.labels);
          return { ...s, labels: d.labels, dropName: d.dropName };
        });
        return { kind: 'vector', series: ev.mergeSameLabels(series) };
      }
      const series = await ev.evalVector(args[0]!);
      const out: StepSeries[] = [];
      for (const s of series) {
        const d = ev.dropName(s.labels);
        const o = newStepSeries(d.labels, steps, d.dropName || s.dropName);
        for (let i = 0; i < steps; i++) {
          if (!s.has[i]) continue;
          o.has[i] = 1;
          o.vals[i] = ev.stepTime(i) / 1000;
        }
        out.push(o);
      }
      return { kind: 'vector', series: ev.mergeSameLabels(out) };
    }
    case 'clamp':
    case 'clamp_min':
    case 'clamp_max': {
      const series = await ev.evalVector(args[0]!);
      const lo = name === 'clamp_max' ? undefined : await ev.evalScalar(args[1]!);
      const hi =
        name === 'clamp'
          ? await ev.evalScalar(args[2]!)
          : name === 'clamp_max'
            ? await ev.evalScalar(args[1]!)
            : undefined;
      return mapValuesAt(ev, series, (v, i) => {
        const min = lo ? lo[i]! : Number.NEGATIVE_INFINITY;
        const max = hi ? hi[i]! : Number.POSITIVE_INFINITY;
        if (name === 'clamp' && max < min) return undefined;
        if (name === 'clamp_min') return goMax(v, min);
        if (name === 'clamp_max') return goMin(v, max);
        return goMax(min, goMin(max, v));
      });
    }
    case 'round': {
      const series = await ev.evalVector(args[0]!);
      const to = args.length > 1 ? await ev.evalScalar(args[1]!) : undefined;
      return mapValuesAt(ev, series, (v, i) => {
        const inv = 1 / (to ? to[i]! : 1);
        return Math.floor(v * inv + 0.5) / inv;
      });
    }
    case 'absent': {
      const series = await ev.evalVector(args[0]!);
      const s = newStepSeries(labelsForAbsent(args[0]!), steps);
      for (let i = 0; i < steps; i++) {
        let present = false;
        for (const x of series) {
          if (x.has[i]) {
            present = true;
            break;
          }
        }
        if (!present) {
          s.has[i] = 1;
          s.vals[i] = 1;
        }
      }
      return { kind: 'vector', series: s.has.includes(1) ? [s] : [] };
    }
    case 'absent_over_time': {
      const present = await evalRangeFunction(
        ev,
        args[0]!,
        'present_over_time',
        WINDOW_FUNCTIONS.present_over_time!,
        undefined,
        false,
        () => {},
      );
      const s = newStepSeries(labelsForAbsent(unwrapParens(args[0]!)), steps);
      for (let i = 0; i < steps; i++) {
        if (!present.some((p) => p.has[i])) {
          s.has[i] = 1;
          s.vals[i] = 1;
        }
      }
      return { kind: 'vector', series: s.has.includes(1) ? [s] : [] };
    }
    case 'sort':
    case 'sort_desc':
    case 'sort_by_label':
    case 'sort_by_label_desc': {
      const series = await ev.evalVector(args[0]!);
      if (ev.q.queryStep > 0) {
        annotations.warn(
          'sort is ineffective for range queries since results are always ordered by labels',
          call,
        );
        return { kind: 'vector', series };
      }
      if (name === 'sort' || name === 'sort_desc') {
        const desc = name === 'sort_desc';
        const sorted = series.filter((s) => s.has[0]);
        sorted.sort((a, b) => {
          const x = a.vals[0]!;
          const y = b.vals[0]!;
          if (Number.isNaN(x)) return Number.isNaN(y) ? 0 : 1;
          if (Number.isNaN(y)) return -1;
          return desc ? y - x : x - y;
        });
        return { kind: 'vector', series: sorted };
      }
      const labels = args.slice(1).map((a) => (a.type === 'StringLiteral' ? a.val : ''));
      const desc = name === 'sort_by_label_desc';
      const sorted = [...series];
      sorted.sort((a, b) => {
        for (const l of labels) {
          const x = a.labels[l] ?? '';
          const y = b.labels[l] ?? '';
          if (x === y) continue;
          const less = natsortLess(x, y);
          return (less ? -1 : 1) * (desc ? -1 : 1);
        }
        const c = compareLabelsForSort(a.labels, b.labels);
        return desc ? -c : c;
      });
      return { kind: 'vector', series: sorted };
    }
    case 'label_replace':
      return labelReplace(ev, call);
    case 'label_join':
      return labelJoin(ev, call);
    case 'histogram_quantile':
      return evalHistogramQuantile(ev, call);
    case 'histogram_quantiles':
      return evalHistogramQuantiles(ev, call);
    case 'histogram_fraction':
      return evalHistogramFraction(ev, call);
    case 'histogram_count':
    case 'histogram_sum':
    case 'histogram_avg':
    case 'histogram_stddev':
    case 'histogram_stdvar': {
      // These read native histogram samples only and ignore float samples, as in Prometheus. trainwatch
      // stores float samples only, so the result is always empty.
      await ev.evalVector(args[0]!);
      return { kind: 'vector', series: [] };
    }
    case 'info':
      return evalInfo(ev, call);
    case 'start_timestamp':
      throw new ExecutionError(
        'start_timestamp() needs per-sample start timestamps, which trainwatch storage does not keep',
      );
    default:
      throw new ExecutionError(`function ${JSON.stringify(name)} is not implemented`);
  }
}

function goMax(a: number, b: number): number {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.NaN;
  return Math.max(a, b);
}

function goMin(a: number, b: number): number {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.NaN;
  return Math.min(a, b);
}

function compareLabelsForSort(a: LabelSet, b: LabelSet): number {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  for (let i = 0; i < Math.min(ka.length, kb.length); i++) {
    if (ka[i] !== kb[i]) return ka[i]! < kb[i]! ? -1 : 1;
    const x = a[ka[i]!]!;
    const y = b[kb[i]!]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return ka.length - kb.length;
}

/** Applies `f` to every present value; drops the metric name; merges series that became identical. */
function mapValues(ev: Evaluator, series: StepSeries[], f: MathFn): EvalValue {
  return mapValuesAt(ev, series, (v) => f(v));
}

function mapValuesAt(
  ev: Evaluator,
  series: StepSeries[],
  f: (v: number, step: number) => number | undefined,
): EvalValue {
  const steps = ev.steps;
  const out: StepSeries[] = [];
  for (const s of series) {
    const d = ev.dropName(s.labels);
    const o = newStepSeries(d.labels, steps, d.dropName || s.dropName);
    let any = false;
    for (let i = 0; i < steps; i++) {
      if (!s.has[i]) continue;
      const r = f(s.vals[i]!, i);
      if (r === undefined) continue;
      o.has[i] = 1;
      o.vals[i] = r;
      any = true;
    }
    if (any) out.push(o);
  }
  return { kind: 'vector', series: ev.mergeSameLabels(out) };
}

function stringArg(e: Expr): string {
  const u = unwrapParens(e);
  if (u.type !== 'StringLiteral') throw new ExecutionError('expected a string literal argument');
  return u.val;
}

async function labelReplace(ev: Evaluator, call: Call): Promise<EvalValue> {
  const series = await ev.evalVector(call.args[0]!);
  const dst = stringArg(call.args[1]!);
  const repl = stringArg(call.args[2]!);
  const src = stringArg(call.args[3]!);
  const regexStr = stringArg(call.args[4]!);
  if (!isValidLabelNameUtf8(dst))
    throw new ExecutionError(
      `invalid destination label name in label_replace(): ${goQuote(dst).slice(1, -1)}`,
    );
  let re: ReturnType<typeof compileAnchoredRe2>;
  try {
    re = compileAnchoredRe2(regexStr);
  } catch {
    throw new ExecutionError(`invalid regular expression in label_replace(): ${regexStr}`);
  }
  const out: StepSeries[] = [];
  const cache = new Map<string, LabelSet>();
  for (const s of series) {
    const value = s.labels[src] ?? '';
    const m = execAnchoredRe2(re, value);
    let labels = s.labels;
    let dropName = s.dropName;
    if (m) {
      const res = expandTemplate(repl, m);
      const key = labelKey(labels) + '\u0003' + res;
      let next = cache.get(key);
      if (!next) {
        const copy: Record<string, string> = { ...labels };
        if (res === '') delete copy[dst];
        else copy[dst] = res;
        next = copy;
        cache.set(key, next);
      }
      labels = next;
      if (dst === METRIC_NAME_LABEL) dropName = false;
    }
    out.push({ labels, vals: s.vals, has: s.has, dropName });
  }
  return { kind: 'vector', series: ev.mergeSameLabels(out) };
}

async function labelJoin(ev: Evaluator, call: Call): Promise<EvalValue> {
  const series = await ev.evalVector(call.args[0]!);
  const dst = stringArg(call.args[1]!);
  const sep = stringArg(call.args[2]!);
  const srcs = call.args.slice(3).map(stringArg);
  for (const s of srcs) {
    if (!isValidLabelNameUtf8(s)) throw new ExecutionError(`invalid source label name in label_join(): ${s}`);
  }
  if (!isValidLabelNameUtf8(dst))
    throw new ExecutionError(`invalid destination label name in label_join(): ${dst}`);
  const out: StepSeries[] = [];
  for (const s of series) {
    const joined = srcs.map((l) => s.labels[l] ?? '').join(sep);
    const copy: Record<string, string> = { ...s.labels };
    if (joined === '') delete copy[dst];
    else copy[dst] = joined;
    out.push({
      labels: copy,
      vals: s.vals,
      has: s.has,
      dropName: dst === METRIC_NAME_LABEL ? false : s.dropName,
    });
  }
  return { kind: 'vector', series: ev.mergeSameLabels(out) };
}

export { withoutMetricName };
