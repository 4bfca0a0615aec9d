/**
 * Aggregation operators (promql/engine.go aggregation / aggregationK / aggregationCountValues), over all
 * steps at once: each input series is assigned to its group once, then values are folded per step into
 * per-group typed-array accumulators.
 */
import { type LabelSet, METRIC_NAME_LABEL } from '../../model/labels.js';
import type { AggregateExpr } from './ast.js';
import { ExecutionError } from './errors.js';
import type { Evaluator } from './evaluator.js';
import { formatGoFloatF, formatGoFloatG, labelKey, labelsHash } from './labels-util.js';
import { goQuote, hasInvalidUtf8 } from './lexer.js';
import { kahanSumInc, quantileOf } from './range-functions.js';
import { type EvalValue, newStepSeries, type StepSeries } from './value.js';

const NAME_LIKE = new Set([METRIC_NAME_LABEL, '__type__', '__unit__']);
/** float64(math.MaxUint64) as Go computes it: rounds to 2^64. */
const MAX_UINT64 = 2 ** 64;

interface Group {
  readonly labels: LabelSet;
  readonly members: number[];
  dropName: boolean;
}

/** Assigns every series to its group (by / without); groups in order of first appearance. */
function groupSeries(
  ev: Evaluator,
  e: AggregateExpr,
  series: StepSeries[],
): { groups: Group[]; groupOf: Int32Array } {
  const groups: Group[] = [];
  const byKey = new Map<string, number>();
  const groupOf = new Int32Array(series.length);
  const grouping = new Set(e.grouping);
  for (let k = 0; k < series.length; k++) {
    const s = series[k]!;
    const labels: Record<string, string> = {};
    if (e.without) {
      for (const n of Object.keys(s.labels)) {
        if (grouping.has(n) || NAME_LIKE.has(n)) continue;
        labels[n] = s.labels[n]!;
      }
    } else {
      for (const n of e.grouping) {
        const v = s.labels[n];
        if (v !== undefined && v !== '') labels[n] = v;
      }
    }
    const key = labelKey(labels);
    let g = byKey.get(key);
    if (g === undefined) {
      g = groups.length;
      byKey.set(key, g);
      groups.push({ labels, members: [], dropName: false });
    }
    const group = groups[g]!;
    group.members.push(k);
    if (s.dropName && METRIC_NAME_LABEL in labels) group.dropName = true;
    groupOf[k] = g;
  }
  void ev;
  return { groups, groupOf };
}

export async function evalAggregate(ev: Evaluator, e: AggregateExpr): Promise<EvalValue> {
  const steps = ev.steps;
  switch (e.op) {
    case 'topk':
    case 'bottomk':
    case 'limitk':
    case 'limit_ratio':
      return aggregateK(ev, e);
    case 'count_values':
      return countValues(ev, e);
    default:
      break;
  }
  const param = e.op === 'quantile' ? await ev.evalScalar(e.param!) : undefined;
  const series = await ev.evalVector(e.expr);
  const { groups } = groupSeries(ev, e, series);
  if (param) {
    for (let i = 0; i < steps; i++) {
      const q = param[i]!;
      if (Number.isNaN(q) || q < 0 || q > 1) {
        ev.q.annotations.warn(`quantile value should be between 0 and 1, got ${formatGoFloatG(q)}`, e.param!);
        break;
      }
    }
  }
  const out: StepSeries[] = [];
  const ks = new Float64Array(2);
  let scratch = new Float64Array(16);
  for (const g of groups) {
    ev.checkInterrupt('aggregation');
    const o = newStepSeries(g.labels, steps, g.dropName);
    const members = g.members.map((k) => series[k]!);
    for (let i = 0; i < steps; i++) {
      let count = 0;
      let value = 0;
      let kahanC = 0;
      let mean = 0;
      let incremental = false;
      let n = 0;
      for (const s of members) {
        if (!s.has[i]) continue;
        const f = s.vals[i]!;
        count++;
        if (count === 1) {
          value = f;
          mean = f;
          if (e.op === 'stddev' || e.op === 'stdvar') {
            // Welford from zero, so a lone NaN or ±Inf gives NaN as in Prometheus.
            mean = f;
            value = f * (f - mean);
          }
          if (e.op === 'quantile') {
            if (scratch.length < members.length) scratch = new Float64Array(members.length * 2);
            scratch[n++] = f;
          }
          continue;
        }
        switch (e.op) {
          case 'sum':
            kahanSumInc(f, value, kahanC, ks);
            value = ks[0]!;
            kahanC = ks[1]!;
            break;
          // Twin: range-functions.ts avgOverTime (as in Prometheus): Kahan, then incremental mean, inline.
          case 'avg':
            if (!incremental) {
              kahanSumInc(f, value, kahanC, ks);
              if (ks[0] !== Number.POSITIVE_INFINITY && ks[0] !== Number.NEGATIVE_INFINITY) {
                value = ks[0]!;
                kahanC = ks[1]!;
                break;
              }
              incremental = true;
              mean = value / (count - 1);
              kahanC /= count - 1;
            }
            if (mean === Number.POSITIVE_INFINITY || mean === Number.NEGATIVE_INFINITY) {
              if ((f === Number.POSITIVE_INFINITY || f === Number.NEGATIVE_INFINITY) && mean > 0 === f > 0)
                break;
              if (Number.isFinite(f)) break;
            }
            {
              const q = (count - 1) / count;
              kahanSumInc(f / count, q * mean, q * kahanC, ks);
              mean = ks[0]!;
              kahanC = ks[1]!;
            }
            break;
          case 'min':
            if (value > f || Number.isNaN(value)) value = f;
            break;
          case 'max':
            if (value < f || Number.isNaN(value)) value = f;
            break;
          case 'stddev':
          case 'stdvar': {
            const delta = f - mean;
            mean += delta / count;
            value += delta * (f - mean);
            break;
          }
          case 'quantile':
            scratch[n++] = f;
            break;
          default:
            break;
        }
      }
      if (count === 0) continue;
      let r: number;
      switch (e.op) {
        case 'sum':
          r =
            value === Number.POSITIVE_INFINITY || value === Number.NEGATIVE_INFINITY ? value : value + kahanC;
          break;
        case 'avg':
          r = incremental ? mean + kahanC : value / count + kahanC / count;
          break;
        case 'count':
          r = count;
          break;
        case 'group':
          r = 1;
          break;
        case 'stdvar':
          r = value / count;
          break;
        case 'stddev':
          r = Math.sqrt(value / count);
          break;
        case 'quantile':
          r = quantileOf(param![i]!, scratch, n);
          break;
        default:
          r = value;
      }
      o.has[i] = 1;
      o.vals[i] = r;
    }
    out.push(o);
  }
  return { kind: 'vector', series: out };
}

async function countValues(ev: Evaluator, e: AggregateExpr): Promise<EvalValue> {
  const labelValue = await ev.eval(e.param!);
  const label = labelValue.kind === 'string' ? labelValue.val : '';
  if (label === '' || hasInvalidUtf8(label)) throw new ExecutionError(`invalid label name ${goQuote(label)}`);
  const series = await ev.evalVector(e.expr);
  const { groups } = groupSeries(ev, e, series);
  const steps = ev.steps;
  const out: StepSeries[] = [];
  for (const g of groups) {
    const byValue = new Map<string, StepSeries>();
    for (let i = 0; i < steps; i++) {
      for (const k of g.members) {
        const s = series[k]!;
        if (!s.has[i]) continue;
        const str = formatGoFloatF(s.vals[i]!);
        let o = byValue.get(str);
        if (!o) {
          o = newStepSeries({ ...g.labels, [label]: str }, steps);
          byValue.set(str, o);
          out.push(o);
        }
        if (!o.has[i]) {
          o.has[i] = 1;
          o.vals[i] = 0;
        }
        o.vals[i]!++;
      }
    }
  }
  return { kind: 'vector', series: ev.mergeSameLabels(out) };
}

/** topk, bottomk, limitk, limit_ratio: the output series are input series, kept at the steps they win. */
async function aggregateK(ev: Evaluator, e: AggregateExpr): Promise<EvalValue> {
  const steps = ev.steps;
  const param = await ev.evalScalar(e.param!);
  const series = await ev.evalVector(e.expr);
  const { groups } = groupSeries(ev, e, series);
  const isRatio = e.op === 'limit_ratio';
  const ratios = new Float64Array(steps);
  const ks = new Float64Array(steps);
  for (let i = 0; i < steps; i++) {
    const p = param[i]!;
    if (isRatio) {
      if (Number.isNaN(p)) throw new ExecutionError('Ratio value is NaN');
      let r = p;
      if (r < -1 || r > 1) {
        const capped = r < -1 ? -1 : 1;
        ev.q.annotations.warn(
          `ratio value should be between -1 and 1, got ${formatGoFloatG(r)}, capping to ${formatGoFloatG(capped)}`,
          e.param!,
        );
        r = capped;
      }
      ratios[i] = r;
    } else {
      if (Number.isNaN(p)) throw new ExecutionError('Parameter value is NaN');
      ks[i] = p >= 9.2e18 ? Number.MAX_SAFE_INTEGER : Math.trunc(p);
    }
  }
  // Created when a series first wins a step: most input series of a fleet-wide topk never do.
  const kept: (StepSeries | undefined)[] = new Array(series.length);
  const ever = new Uint8Array(series.length);
  const best: number[] = [];
  // Ranks at the first step, for the result order of instant queries.
  const firstOrder: number[] = [];
  const hashFraction = isRatio ? series.map((s) => Number(labelsHash(s.labels)) / MAX_UINT64) : undefined;
  for (const g of groups) {
    const cand: number[] = [];
    for (let i = 0; i < steps; i++) {
      cand.length = 0;
      for (const k of g.members) if (series[k]!.has[i]) cand.push(k);
      if (cand.length === 0) continue;
      let chosen: number[];
      if (isRatio) {
        const r = ratios[i]!;
        chosen = cand.filter((k) => (r >= 0 ? hashFraction![k]! < r : hashFraction![k]! >= 1 + r));
      } else {
        const k = ks[i]!;
        if (k < 1) continue;
        if (e.op === 'limitk') {
          chosen = cand.slice(0, k);
        } else if (k <= SELECT_K_MAX && k < cand.length) {
          chosen = selectK(series, cand, i, k, e.op === 'topk', best);
        } else {
          const top = e.op === 'topk';
          const sorted = [...cand].sort((a, b) => {
            const x = series[a]!.vals[i]!;
            const y = series[b]!.vals[i]!;
            if (Number.isNaN(x)) return Number.isNaN(y) ? 0 : 1;
            if (Number.isNaN(y)) return -1;
            return top ? y - x : x - y;
          });
          chosen = sorted.slice(0, k);
        }
      }
      for (const k of chosen) {
        let o = kept[k];
        if (o === undefined) {
          o = newStepSeries(series[k]!.labels, steps, series[k]!.dropName);
          kept[k] = o;
        }
        o.has[i] = 1;
        o.vals[i] = series[k]!.vals[i]!;
        if (!ever[k]) {
          ever[k] = 1;
          if (i === 0) firstOrder.push(k);
        }
      }
    }
  }
  const order = [...firstOrder];
  const ordered = new Uint8Array(series.length);
  for (const k of firstOrder) ordered[k] = 1;
  for (let k = 0; k < series.length; k++) if (ever[k] && !ordered[k]) order.push(k);
  return { kind: 'vector', series: order.map((k) => kept[k]!) };
}

/** Up to this k, topk/bottomk keep a sorted buffer of k winners instead of sorting every candidate. */
const SELECT_K_MAX = 64;

/**
 * The first k of `cand` (series indices in ascending order, all present at step `i`) in the order of the
 * stable sort that the general path uses — by value, descending for topk and ascending for bottomk, NaN
 * last, equal values (and ±Inf against itself, and NaN against NaN) in candidate order — in
 * O(cand × log k + winners × k) instead of a comparator sort of every candidate. `best` is reused.
 */
function selectK(
  series: StepSeries[],
  cand: number[],
  i: number,
  k: number,
  top: boolean,
  best: number[],
): number[] {
  best.length = 0;
  // `bv` mirrors the values of `best` (NaN sorts last); a candidate enters only if it sorts strictly
  // before the current last winner, because on a tie the earlier candidate stays ahead.
  const bv = new Float64Array(k);
  for (let c = 0; c < cand.length; c++) {
    const idx = cand[c]!;
    const v = series[idx]!.vals[i]!;
    const n = best.length;
    if (n === k && !before(v, bv[n - 1]!, top)) continue;
    // Insert after every winner that it does not sort strictly before.
    let pos = n === k ? n - 1 : n;
    while (pos > 0 && before(v, bv[pos - 1]!, top)) pos--;
    const last = n === k ? n - 1 : n;
    for (let m = last; m > pos; m--) {
      best[m] = best[m - 1]!;
      bv[m] = bv[m - 1]!;
    }
    best[pos] = idx;
    bv[pos] = v;
  }
  return best;
}

/** Whether value a sorts strictly before value b (topk: greater first; bottomk: smaller first; NaN last). */
function before(a: number, b: number, top: boolean): boolean {
  if (Number.isNaN(a)) return false;
  if (Number.isNaN(b)) return true;
  return top ? a > b : a < b;
}
