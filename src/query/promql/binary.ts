/**
 * Binary operators (promql/engine.go VectorAnd/Or/Unless, VectorBinop, VectorscalarBinop) with vector
 * matching, evaluated over all steps at once. Match signatures are computed and interned once per series;
 * per step only integer stamps are compared, so no map lookup or string is built per sample.
 */
import { type LabelSet, METRIC_NAME_LABEL } from '../../model/labels.js';
import type { BinaryExpr, BinaryOp, VectorMatching } from './ast.js';
import { COMPARISON_OPS, SET_OPS } from './ast.js';
import { ExecutionError } from './errors.js';
import type { Evaluator } from './evaluator.js';
import { labelKey, labelsString, withoutMetricName } from './labels-util.js';
import { type EvalValue, newStepSeries, type StepSeries } from './value.js';

/** Go's math.Pow where JavaScript's `**` differs (1^NaN, (-1)^±Inf, x^0). */
export function goPow(x: number, y: number): number {
  if (y === 0) return 1;
  if (x === 1) return 1;
  if (x === -1 && (y === Number.POSITIVE_INFINITY || y === Number.NEGATIVE_INFINITY)) return 1;
  return x ** y;
}

export function arith(op: BinaryOp, l: number, r: number): number {
  switch (op) {
    case '+':
      return l + r;
    case '-':
      return l - r;
    case '*':
      return l * r;
    case '/':
      return l / r;
    case '%':
      return l % r;
    case '^':
      return goPow(l, r);
    case 'atan2':
      return Math.atan2(l, r);
    default:
      throw new ExecutionError(`operator ${JSON.stringify(op)} is not an arithmetic operator`);
  }
}

export function compare(op: BinaryOp, l: number, r: number): boolean {
  switch (op) {
    case '==':
      return l === r;
    case '!=':
      return l !== r;
    case '<':
      return l < r;
    case '>':
      return l > r;
    case '<=':
      return l <= r;
    case '>=':
      return l >= r;
    default:
      throw new ExecutionError(`operator ${JSON.stringify(op)} is not a comparison operator`);
  }
}

export async function evalBinary(ev: Evaluator, e: BinaryExpr): Promise<EvalValue> {
  const lv = await ev.eval(e.lhs);
  const rv = await ev.eval(e.rhs);
  const steps = ev.steps;
  const isCmp = COMPARISON_OPS.has(e.op);
  if (e.op === '</' || e.op === '>/') {
    throw new ExecutionError(
      `the trim operator ${e.op} applies to native histograms, which trainwatch does not store`,
    );
  }
  if (lv.kind === 'scalar' && rv.kind === 'scalar') {
    const out = new Float64Array(steps);
    for (let i = 0; i < steps; i++) {
      const l = lv.vals[i]!;
      const r = rv.vals[i]!;
      out[i] = isCmp ? (compare(e.op, l, r) ? 1 : 0) : arith(e.op, l, r);
    }
    return { kind: 'scalar', vals: out };
  }
  if (lv.kind === 'vector' && rv.kind === 'vector') {
    if (SET_OPS.has(e.op))
      return { kind: 'vector', series: setOp(ev, e.op, e.matching!, lv.series, rv.series) };
    return { kind: 'vector', series: vectorBinop(ev, e, lv.series, rv.series) };
  }
  if (lv.kind === 'vector' && rv.kind === 'scalar') {
    return { kind: 'vector', series: vectorScalar(ev, e, lv.series, rv.vals, false) };
  }
  if (lv.kind === 'scalar' && rv.kind === 'vector') {
    return { kind: 'vector', series: vectorScalar(ev, e, rv.series, lv.vals, true) };
  }
  throw new ExecutionError('binary expression must contain only scalar and instant vector types');
}

function vectorScalar(
  ev: Evaluator,
  e: BinaryExpr,
  series: StepSeries[],
  scalar: Float64Array,
  scalarOnLeft: boolean,
): StepSeries[] {
  const steps = ev.steps;
  const isCmp = COMPARISON_OPS.has(e.op);
  const keepName = isCmp && !e.returnBool;
  const out: StepSeries[] = [];
  for (const s of series) {
    ev.checkInterrupt('binary operation');
    let labels = s.labels;
    let dropName = s.dropName;
    if (!keepName) {
      const d = ev.dropName(labels);
      labels = d.labels;
      dropName = d.dropName || dropName;
    }
    const o = newStepSeries(labels, steps, dropName);
    let any = false;
    for (let i = 0; i < steps; i++) {
      if (!s.has[i]) continue;
      const v = s.vals[i]!;
      const c = scalar[i]!;
      const l = scalarOnLeft ? c : v;
      const r = scalarOnLeft ? v : c;
      let value: number;
      if (isCmp) {
        const keep = compare(e.op, l, r);
        if (e.returnBool) value = keep ? 1 : 0;
        else if (keep) value = v;
        else continue;
      } else {
        value = arith(e.op, l, r);
      }
      o.has[i] = 1;
      o.vals[i] = value;
      any = true;
    }
    if (any) out.push(o);
  }
  return keepName ? out : ev.mergeSameLabels(out);
}

/** The labels that decide which series match: `on(...)` labels, or all but `ignoring(...)` and the name. */
function matchLabels(labels: LabelSet, m: VectorMatching): LabelSet {
  const out: Record<string, string> = {};
  if (m.on) {
    for (const n of m.matchingLabels) {
      const v = labels[n];
      if (v !== undefined && v !== '') out[n] = v;
    }
  } else {
    const ignored = new Set(m.matchingLabels);
    for (const n of Object.keys(labels)) {
      if (n === METRIC_NAME_LABEL || ignored.has(n)) continue;
      out[n] = labels[n]!;
    }
  }
  return out;
}

/** Interns each series' match signature as a small integer. */
function signatures(series: StepSeries[], m: VectorMatching, ids: Map<string, number>): Int32Array {
  const out = new Int32Array(series.length);
  for (let k = 0; k < series.length; k++) {
    const key = labelKey(matchLabels(series[k]!.labels, m));
    let id = ids.get(key);
    if (id === undefined) {
      id = ids.size;
      ids.set(key, id);
    }
    out[k] = id;
  }
  return out;
}

function setOp(
  ev: Evaluator,
  op: BinaryOp,
  m: VectorMatching,
  lhs: StepSeries[],
  rhs: StepSeries[],
): StepSeries[] {
  const steps = ev.steps;
  const ids = new Map<string, number>();
  const ls = signatures(lhs, m, ids);
  const rs = signatures(rhs, m, ids);
  const stamp = new Int32Array(ids.size);
  if (op === 'or') {
    const out: StepSeries[] = [...lhs];
    const rOut = rhs.map((s) => newStepSeries(s.labels, steps, s.dropName));
    for (let i = 0; i < steps; i++) {
      for (let k = 0; k < lhs.length; k++) if (lhs[k]!.has[i]) stamp[ls[k]!] = i + 1;
      for (let k = 0; k < rhs.length; k++) {
        const s = rhs[k]!;
        if (!s.has[i] || stamp[rs[k]!] === i + 1) continue;
        rOut[k]!.has[i] = 1;
        rOut[k]!.vals[i] = s.vals[i]!;
      }
    }
    for (const s of rOut) if (s.has.includes(1)) out.push(s);
    return ev.mergeSameLabels(out);
  }
  const out: StepSeries[] = lhs.map((s) => newStepSeries(s.labels, steps, s.dropName));
  const wantPresent = op === 'and';
  for (let i = 0; i < steps; i++) {
    for (let k = 0; k < rhs.length; k++) if (rhs[k]!.has[i]) stamp[rs[k]!] = i + 1;
    for (let k = 0; k < lhs.length; k++) {
      const s = lhs[k]!;
      if (!s.has[i]) continue;
      if ((stamp[ls[k]!] === i + 1) !== wantPresent) continue;
      out[k]!.has[i] = 1;
      out[k]!.vals[i] = s.vals[i]!;
    }
  }
  return out.filter((s) => s.has.includes(1));
}

function vectorBinop(ev: Evaluator, e: BinaryExpr, lhsIn: StepSeries[], rhsIn: StepSeries[]): StepSeries[] {
  const m = e.matching!;
  const steps = ev.steps;
  const isCmp = COMPARISON_OPS.has(e.op);
  const oneToMany = m.card === 'one-to-many';
  // The "many" side is iterated (L), the "one" side is hashed (R); for group_right they swap.
  const L = oneToMany ? rhsIn : lhsIn;
  const R = oneToMany ? lhsIn : rhsIn;
  // Fill modifiers name the sides after that swap (as Prometheus's tests define them).
  const fillL = m.fillLeft;
  const fillR = m.fillRight;
  const ids = new Map<string, number>();
  const lSig = signatures(L, m, ids);
  const rSig = signatures(R, m, ids);
  const nSig = ids.size;
  const rStamp = new Int32Array(nSig);
  const rIdx = new Int32Array(nSig);
  const lStamp = new Int32Array(nSig);
  const outByPair = new Map<number, StepSeries>();
  const outList: StepSeries[] = [];
  const nR = R.length + 1;
  const dropsName = !isCmp || e.returnBool;
  const include = m.include;

  const resultLabels = (
    l: StepSeries | undefined,
    r: StepSeries | undefined,
  ): { labels: LabelSet; dropName: boolean } => {
    if (!l) {
      // Only the "one" side is present (filled "many" side): the match group's labels.
      return { labels: matchLabels(r!.labels, m), dropName: false };
    }
    const copy: Record<string, string> = { ...l.labels };
    let dropName = l.dropName;
    if (dropsName) {
      if (ev.q.delayedNameRemoval) dropName = true;
      else {
        delete copy[METRIC_NAME_LABEL];
        delete copy.__type__;
        delete copy.__unit__;
      }
    }
    if (m.card === 'one-to-one') {
      if (m.on) {
        const keep = new Set(m.matchingLabels);
        for (const n of Object.keys(copy)) if (!keep.has(n)) delete copy[n];
      } else {
        for (const n of m.matchingLabels) delete copy[n];
      }
    }
    for (const n of include) {
      const v = r?.labels[n];
      if (v !== undefined && v !== '') copy[n] = v;
      else delete copy[n];
    }
    return { labels: copy, dropName };
  };

  const emit = (li: number, ri: number, step: number, value: number) => {
    const key = (li + 1) * nR + (ri + 1);
    let o = outByPair.get(key);
    if (!o) {
      const r = resultLabels(li >= 0 ? L[li] : undefined, ri >= 0 ? R[ri] : undefined);
      o = newStepSeries(r.labels, steps, r.dropName);
      outByPair.set(key, o);
      outList.push(o);
    }
    o.has[step] = 1;
    o.vals[step] = value;
  };

  const compute = (fl: number, fr: number): number | undefined => {
    if (!isCmp) return arith(e.op, fl, fr);
    const keep = compare(e.op, fl, fr);
    if (e.returnBool) return keep ? 1 : 0;
    return keep ? fl : undefined;
  };

  for (let i = 0; i < steps; i++) {
    ev.checkInterrupt('binary operation');
    const stamp = i + 1;
    for (let k = 0; k < R.length; k++) {
      const s = R[k]!;
      if (!s.has[i]) continue;
      const sig = rSig[k]!;
      if (rStamp[sig] === stamp) {
        const other = R[rIdx[sig]!]!;
        const oneSide = oneToMany ? 'left' : 'right';
        // The two series in sorted order, as Prometheus names them: the message then does not depend on the
        // order the operand's series were read in.
        const [first, second] = [labelsString(s.labels), labelsString(other.labels)].sort();
        throw new ExecutionError(
          `found duplicate series for the match group ${labelsString(matchLabels(s.labels, m))} on the ${oneSide} hand-side of the operation: [${first}, ${second}];many-to-many matching not allowed: matching labels must be unique on one side`,
        );
      }
      rStamp[sig] = stamp;
      rIdx[sig] = k;
    }
    for (let k = 0; k < L.length; k++) {
      const s = L[k]!;
      if (!s.has[i]) continue;
      const sig = lSig[k]!;
      const matched = rStamp[sig] === stamp;
      if (m.card === 'one-to-one' && matched && lStamp[sig] === stamp) {
        throw new ExecutionError(
          'multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)',
        );
      }
      lStamp[sig] = stamp;
      let lv = s.vals[i]!;
      let rv: number;
      let ri = -1;
      if (matched) {
        ri = rIdx[sig]!;
        rv = R[ri]!.vals[i]!;
      } else if (fillR !== undefined) {
        rv = fillR;
      } else {
        continue;
      }
      let fl = lv;
      let fr = rv;
      if (oneToMany) {
        fl = rv;
        fr = lv;
      }
      const value = compute(fl, fr);
      if (value === undefined) continue;
      lv = value;
      emit(k, ri, i, value);
    }
    if (fillL !== undefined) {
      for (let k = 0; k < R.length; k++) {
        const s = R[k]!;
        if (!s.has[i]) continue;
        const sig = rSig[k]!;
        if (lStamp[sig] === stamp) continue;
        let fl = fillL;
        let fr = s.vals[i]!;
        if (oneToMany) {
          fl = fr;
          fr = fillL;
        }
        const value = compute(fl, fr);
        if (value === undefined) continue;
        emit(-1, k, i, value);
      }
    }
  }
  // Distinct pairs may produce the same result labels; at one step that is an error.
  if (m.card !== 'one-to-one') {
    const seen = new Map<string, StepSeries>();
    for (const o of outList) {
      const key = labelKey(o.labels);
      const prev = seen.get(key);
      if (!prev) {
        seen.set(key, o);
        continue;
      }
      for (let i = 0; i < steps; i++) {
        if (o.has[i] && prev.has[i])
          throw new ExecutionError('multiple matches for labels: grouping labels must ensure unique matches');
      }
    }
  }
  return ev.mergeSameLabels(outList);
}

export { withoutMetricName };
