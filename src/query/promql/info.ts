/**
 * `info(v [, {selector}])` (experimental in Prometheus 3, promql/info.go): adds the data labels of matching
 * info series (`target_info` by default) to each series of `v`. An info series matches a series when they
 * share the identifying labels `instance` and `job` (those the series has). The info series are looked up at
 * the same moment the series' samples were read: its `@` and `offset`, and those of the subqueries around it.
 */

import { isStaleNaN } from '../../model/batch.js';
import { LabelMatcher, type LabelSet, METRIC_NAME_LABEL } from '../../model/labels.js';
import type { Call, Expr, SubqueryExpr, VectorSelector } from './ast.js';
import { ExecutionError } from './errors.js';
import type { Evaluator } from './evaluator.js';
import { labelKey, labelsString } from './labels-util.js';
import { type EvalValue, newStepSeries, type StepSeries } from './value.js';

const TARGET_INFO = 'target_info';
const IDENTIFYING = ['instance', 'job'];

function escapeRegex(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

/** The subqueries on the way to the first selector (pre-order), and that selector. */
function pathToSelector(
  e: Expr,
  path: SubqueryExpr[],
): { path: SubqueryExpr[]; vs: VectorSelector } | undefined {
  switch (e.type) {
    case 'VectorSelector':
      return { path, vs: e };
    case 'MatrixSelector':
      return { path, vs: e.vs };
    case 'SubqueryExpr':
      return pathToSelector(e.expr, [...path, e]);
    case 'ParenExpr':
    case 'UnaryExpr':
      return pathToSelector(e.expr, path);
    case 'BinaryExpr':
      return pathToSelector(e.lhs, path) ?? pathToSelector(e.rhs, path);
    case 'AggregateExpr':
      return (e.param ? pathToSelector(e.param, path) : undefined) ?? pathToSelector(e.expr, path);
    case 'Call':
      for (const a of e.args) {
        const r = pathToSelector(a, path);
        if (r) return r;
      }
      return undefined;
    default:
      return undefined;
  }
}

function identity(name: string, labels: LabelSet): string {
  let sig = name;
  for (const l of IDENTIFYING)
    if (labels[l] !== undefined && labels[l] !== '') sig += `\u0000${l}=${labels[l]}`;
  return sig;
}

export async function evalInfo(ev: Evaluator, call: Call): Promise<EvalValue> {
  const steps = ev.steps;
  const base = await ev.evalVector(call.args[0]!);
  const selector = call.args[1]?.type === 'VectorSelector' ? call.args[1] : undefined;

  // Which info metrics: the selector's __name__ matchers; only negative ones narrow all `*_info` metrics.
  const nameMatchers: LabelMatcher[] = selector
    ? selector.matchers.filter((m) => m.name === METRIC_NAME_LABEL)
    : [new LabelMatcher('=', METRIC_NAME_LABEL, TARGET_INFO)];
  const hasPositive = nameMatchers.some((m) => m.type === '=' || m.type === '=~');
  if (selector && !hasPositive) {
    nameMatchers.push(
      nameMatchers.length > 0
        ? new LabelMatcher('=~', METRIC_NAME_LABEL, '.+_info')
        : new LabelMatcher('=', METRIC_NAME_LABEL, TARGET_INFO),
    );
  }
  const dataMatchers = new Map<string, LabelMatcher[]>();
  for (const m of selector?.matchers ?? []) {
    if (m.name === METRIC_NAME_LABEL) continue;
    dataMatchers.set(m.name, [...(dataMatchers.get(m.name) ?? []), m]);
  }
  const allDataMatchEmpty = [...dataMatchers.values()].every((ms) => ms.every((m) => m.matches('')));
  // Info series themselves pass through unenriched.
  const ignored = base.map(
    (s) => hasPositive && nameMatchers.every((m) => m.matches(s.labels[METRIC_NAME_LABEL])),
  );

  // The moment each step's samples were read, to look the info series up at.
  const found = pathToSelector(call.args[0]!, []);
  const refTime = (i: number): number => {
    let t = ev.stepTime(i);
    if (!found) return t;
    for (const sq of found.path) t = (ev.atTime(sq.at) ?? t) - ev.resolveDuration(sq.offset);
    return (ev.atTime(found.vs.at) ?? t) - ev.resolveDuration(found.vs.offset);
  };
  const refs = new Float64Array(steps);
  for (let i = 0; i < steps; i++) refs[i] = refTime(i);

  // Fetch the candidate info series for the identities present.
  const idValues = new Map<string, Set<string>>();
  base.forEach((s, k) => {
    if (ignored[k]) return;
    for (const l of IDENTIFYING) {
      const v = s.labels[l];
      if (v === undefined || v === '') continue;
      if (!idValues.has(l)) idValues.set(l, new Set());
      idValues.get(l)!.add(v);
    }
  });
  interface InfoSeries {
    labels: LabelSet;
    name: string;
    sig: string;
    /** Timestamp of the sample in force at each step; NaN when none. */
    at: Float64Array;
  }
  const infos: InfoSeries[] = [];
  if (idValues.size > 0) {
    const matchers = [
      ...nameMatchers,
      ...[...idValues].map(([l, vs]) => new LabelMatcher('=~', l, [...vs].map(escapeRegex).join('|'))),
      ...[...dataMatchers.values()].flat(),
    ];
    const lookback = ev.q.lookbackMs;
    let minT = Number.POSITIVE_INFINITY;
    let maxT = Number.NEGATIVE_INFINITY;
    for (const t of refs) {
      minT = Math.min(minT, t - lookback + 1);
      maxT = Math.max(maxT, t);
    }
    for (const sel of await ev.select(matchers, minT, maxT, { minT, maxT })) {
      ev.checkInterrupt('info');
      const at = new Float64Array(steps).fill(Number.NaN);
      // Staleness is recorded while iterating: a NaN payload does not survive a plain array.
      const ts: number[] = [];
      const stale: boolean[] = [];
      const it = sel.iterator();
      while (it.next()) {
        ts.push(it.t);
        stale.push(isStaleNaN(it.v));
      }
      for (let i = 0; i < steps; i++) {
        const t = refs[i]!;
        let lo = 0;
        let hi = ts.length;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (ts[mid]! <= t) lo = mid + 1;
          else hi = mid;
        }
        const k = lo - 1;
        if (k >= 0 && ts[k]! > t - lookback && !stale[k]) at[i] = ts[k]!;
      }
      const name = sel.labels[METRIC_NAME_LABEL] ?? '';
      infos.push({ labels: sel.labels, name, sig: identity(name, sel.labels), at });
    }
  }
  const infoNames = [...new Set(infos.map((x) => x.name))];

  const out: StepSeries[] = [];
  const byKey = new Map<string, StepSeries>();
  const emit = (labels: LabelSet, dropName: boolean, step: number, v: number) => {
    const key = labelKey(labels);
    let o = byKey.get(key);
    if (!o) {
      o = newStepSeries(labels, steps, dropName);
      byKey.set(key, o);
      out.push(o);
    }
    if (o.has[step]) throw new ExecutionError('vector cannot contain metrics with the same labelset');
    o.has[step] = 1;
    o.vals[step] = v;
  };
  const current = new Map<string, InfoSeries>();
  for (let i = 0; i < steps; i++) {
    ev.checkInterrupt('info');
    current.clear();
    for (const inf of infos) {
      const t = inf.at[i]!;
      if (Number.isNaN(t)) continue;
      const prev = current.get(inf.sig);
      if (!prev) {
        current.set(inf.sig, inf);
        continue;
      }
      const pt = prev.at[i]!;
      if (pt === t)
        throw new ExecutionError(
          `found duplicate series for info metric: existing ${labelsString(prev.labels)} @ ${pt}, new ${labelsString(inf.labels)} @ ${t}`,
        );
      if (t > pt) current.set(inf.sig, inf);
    }
    for (let k = 0; k < base.length; k++) {
      const s = base[k]!;
      if (!s.has[i]) continue;
      if (ignored[k]) {
        emit(s.labels, s.dropName, i, s.vals[i]!);
        continue;
      }
      const added: Record<string, string> = {};
      let matched = false;
      for (const name of infoNames) {
        const inf = current.get(identity(name, s.labels));
        if (!inf) continue;
        matched = true;
        for (const [l, v] of Object.entries(inf.labels)) {
          if (l === METRIC_NAME_LABEL) continue;
          if (dataMatchers.size > 0 && !dataMatchers.has(l)) continue;
          if (added[l] !== undefined && added[l] !== v) throw new ExecutionError(`conflicting label: ${l}`);
          if (s.labels[l] !== undefined) continue;
          added[l] = v;
        }
      }
      if (!matched && !allDataMatchEmpty) continue;
      const labels = Object.keys(added).length === 0 ? s.labels : { ...s.labels, ...added };
      emit(labels, s.dropName, i, s.vals[i]!);
    }
  }
  return { kind: 'vector', series: out };
}
