/**
 * Classic (`le`-bucketed) histogram functions: histogram_quantile, histogram_quantiles, histogram_fraction
 * (promql/quantile.go). Native histograms are not stored by trainwatch, so only float bucket series are seen.
 */
import type { LabelSet } from '../../model/labels.js';
import type { Call } from './ast.js';
import type { Evaluator } from './evaluator.js';
import { formatGoFloatF, formatGoFloatG, labelKey } from './labels-util.js';
import { type EvalValue, newStepSeries, type StepSeries } from './value.js';

const BUCKET_LABEL = 'le';
const SMALL_DELTA_TOLERANCE = 1e-12;
const MIN_NORMAL = 2.2250738585072014e-308;

/** Go's strconv.ParseFloat for the syntaxes that appear in `le` labels; undefined when invalid. */
export function parseGoFloat(s: string): number | undefined {
  if (/^[+-]?(inf|infinity)$/i.test(s))
    return s.startsWith('-') ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  if (/^[+-]?nan$/i.test(s)) return Number.NaN;
  if (/^[+-]?(\d+(_\d+)*\.?(\d+(_\d+)*)?|\.\d+(_\d+)*)([eE][+-]?\d+)?$/.test(s)) {
    if (s.includes('_')) return undefined;
    return Number(s);
  }
  if (/^[+-]?0[xX][0-9a-fA-F]+$/.test(s)) {
    const neg = s.startsWith('-');
    const v = Number.parseInt(s.replace(/^[+-]/, ''), 16);
    return neg ? -v : v;
  }
  return undefined;
}

/** Prometheus's almost.Equal. */
export function almostEqual(a: number, b: number, epsilon: number): boolean {
  if (Number.isNaN(a) && Number.isNaN(b)) return true;
  if (a === b) return true;
  const absSum = Math.abs(a) + Math.abs(b);
  const diff = Math.abs(a - b);
  if (a === 0 || b === 0 || absSum < MIN_NORMAL) return diff < epsilon * MIN_NORMAL;
  return diff / Math.min(absSum, Number.MAX_VALUE) < epsilon;
}

interface Buckets {
  ub: Float64Array;
  count: Float64Array;
  n: number;
}

/** Sorts by upper bound and merges equal bounds (coalesceBuckets); works in place. */
function sortAndCoalesce(b: Buckets): void {
  const idx = Array.from({ length: b.n }, (_, i) => i).sort((x, y) => b.ub[x]! - b.ub[y]!);
  const ub = idx.map((i) => b.ub[i]!);
  const count = idx.map((i) => b.count[i]!);
  let k = 0;
  let lastUb = ub[0]!;
  let lastCount = count[0]!;
  for (let i = 1; i < ub.length; i++) {
    if (ub[i] === lastUb) {
      lastCount += count[i]!;
    } else {
      b.ub[k] = lastUb;
      b.count[k] = lastCount;
      k++;
      lastUb = ub[i]!;
      lastCount = count[i]!;
    }
  }
  b.ub[k] = lastUb;
  b.count[k] = lastCount;
  b.n = k + 1;
}

function ensureMonotonic(b: Buckets): boolean {
  let forced = false;
  let prev = b.count[0]!;
  for (let i = 1; i < b.n; i++) {
    const curr = b.count[i]!;
    if (curr === prev) continue;
    if (almostEqual(prev, curr, SMALL_DELTA_TOLERANCE)) {
      b.count[i] = prev;
      continue;
    }
    if (curr < prev) {
      b.count[i] = prev;
      forced = true;
      continue;
    }
    prev = curr;
  }
  return forced;
}

/** Prometheus's BucketQuantile; returns [value, forcedMonotonic]. */
export function bucketQuantile(q: number, b: Buckets): [number, boolean] {
  if (Number.isNaN(q)) return [Number.NaN, false];
  if (q < 0) return [Number.NEGATIVE_INFINITY, false];
  if (q > 1) return [Number.POSITIVE_INFINITY, false];
  sortAndCoalesce(b);
  if (b.ub[b.n - 1] !== Number.POSITIVE_INFINITY) return [Number.NaN, false];
  const forced = ensureMonotonic(b);
  if (b.n < 2) return [Number.NaN, false];
  const observations = b.count[b.n - 1]!;
  if (observations === 0) return [Number.NaN, false];
  let rank = q * observations;
  let idx = 0;
  // sort.Search over the first n-1 buckets: first with count >= rank.
  let lo = 0;
  let hi = b.n - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (b.count[mid]! >= rank) hi = mid;
    else lo = mid + 1;
  }
  idx = lo;
  if (idx === b.n - 1) return [b.ub[b.n - 2]!, forced];
  if (idx === 0 && b.ub[0]! <= 0) return [b.ub[0]!, forced];
  let bucketStart = 0;
  const bucketEnd = b.ub[idx]!;
  let count = b.count[idx]!;
  if (idx > 0) {
    bucketStart = b.ub[idx - 1]!;
    count -= b.count[idx - 1]!;
    rank -= b.count[idx - 1]!;
  }
  return [bucketStart + (bucketEnd - bucketStart) * (rank / count), forced];
}

/** Prometheus's BucketFraction for classic buckets. */
export function bucketFraction(lower: number, upper: number, b: Buckets): number {
  sortAndCoalesce(b);
  if (b.n === 0 || b.ub[b.n - 1] !== Number.POSITIVE_INFINITY) return Number.NaN;
  const count = b.count[b.n - 1]!;
  if (count === 0 || Number.isNaN(lower) || Number.isNaN(upper)) return Number.NaN;
  if (lower >= upper) return 0;
  let rank = 0;
  let lowerRank = 0;
  let upperRank = 0;
  let lowerSet = false;
  let upperSet = false;
  // As histogram_quantile assumes: when the lowest bucket's upper bound is above 0 the observations are taken
  // to be non-negative, so that bucket spans [0, ub] and a bound inside it interpolates instead of giving NaN.
  const firstLowerBound = b.ub[0]! > 0 ? 0 : Number.NEGATIVE_INFINITY;
  for (let i = 0; i < b.n; i++) {
    const lowerBound = i > 0 ? b.ub[i - 1]! : firstLowerBound;
    const upperBound = b.ub[i]!;
    const bc = b.count[i]!;
    const interpolate = (v: number) => rank + ((bc - rank) * (v - lowerBound)) / (upperBound - lowerBound);
    if (!lowerSet && lowerBound >= lower) {
      lowerRank = rank;
      lowerSet = true;
    }
    if (!upperSet && lowerBound >= upper) {
      upperRank = rank;
      upperSet = true;
    }
    if (lowerSet && upperSet) break;
    if (!lowerSet && lowerBound < lower && upperBound > lower) {
      lowerRank = interpolate(lower);
      lowerSet = true;
    }
    if (!upperSet && lowerBound < upper && upperBound > upper) {
      upperRank = interpolate(upper);
      upperSet = true;
    }
    if (lowerSet && upperSet) break;
    rank = bc;
  }
  if (!lowerSet || lowerRank > count) lowerRank = count;
  if (!upperSet || upperRank > count) upperRank = count;
  return (upperRank - lowerRank) / count;
}

interface BucketGroup {
  readonly labels: LabelSet;
  readonly dropName: boolean;
  readonly members: { series: StepSeries; ub: number }[];
  readonly metricName: string;
}

/** Groups bucket series by their labels without `le`; warns about series with a malformed `le`. */
function groupBuckets(ev: Evaluator, call: Call, series: StepSeries[]): BucketGroup[] {
  const groups = new Map<string, BucketGroup>();
  const arg = call.args[call.args.length - 1]!;
  const vecArg = call.func.name === 'histogram_quantiles' ? call.args[0]! : arg;
  for (const s of series) {
    const leRaw = s.labels[BUCKET_LABEL];
    const ub = leRaw === undefined ? undefined : parseGoFloat(leRaw);
    if (ub === undefined) {
      ev.q.annotations.warn(
        `bucket label "le" is missing or has a malformed value of ${JSON.stringify(leRaw ?? '')} for metric name ${JSON.stringify(s.labels.__name__ ?? '')}`,
        vecArg,
      );
      continue;
    }
    const rest: Record<string, string> = {};
    for (const k of Object.keys(s.labels)) if (k !== BUCKET_LABEL) rest[k] = s.labels[k]!;
    const key = labelKey(rest);
    let g = groups.get(key);
    if (!g) {
      const d = ev.dropName(rest);
      g = { labels: d.labels, dropName: d.dropName, members: [], metricName: s.labels.__name__ ?? '' };
      groups.set(key, g);
    }
    g.members.push({ series: s, ub });
  }
  return [...groups.values()];
}

function collect(g: BucketGroup, step: number, b: Buckets): boolean {
  b.n = 0;
  for (const m of g.members) {
    if (!m.series.has[step]) continue;
    b.ub[b.n] = m.ub;
    b.count[b.n] = m.series.vals[step]!;
    b.n++;
  }
  return b.n > 0;
}

function newBuckets(size: number): Buckets {
  return { ub: new Float64Array(size), count: new Float64Array(size), n: 0 };
}

function warnQuantiles(ev: Evaluator, call: Call, qs: Float64Array, at: Call['args'][number]): void {
  for (const q of qs) {
    if (Number.isNaN(q) || q < 0 || q > 1) {
      ev.q.annotations.warn(`quantile value should be between 0 and 1, got ${formatGoFloatG(q)}`, at);
      return;
    }
  }
  void call;
}

/**
 * One bucket group's quantile `qs[i]` at every step i, as a series labelled `labels`: histogram_quantile's and
 * histogram_quantiles' step loop. `monotonicityFixed` runs at each step whose buckets had to be made monotonic.
 */
function groupQuantiles(
  ev: Evaluator,
  g: BucketGroup,
  qs: Float64Array,
  labels: Record<string, string>,
  monotonicityFixed?: () => void,
): StepSeries {
  const b = newBuckets(g.members.length);
  const s = newStepSeries(labels, ev.steps, g.dropName);
  for (let i = 0; i < ev.steps; i++) {
    if (!collect(g, i, b)) continue;
    const [v, forced] = bucketQuantile(qs[i]!, b);
    if (forced && monotonicityFixed) monotonicityFixed();
    s.has[i] = 1;
    s.vals[i] = v;
  }
  return s;
}

export async function evalHistogramQuantile(ev: Evaluator, call: Call): Promise<EvalValue> {
  const qs = await ev.evalScalar(call.args[0]!);
  const series = await ev.evalVector(call.args[1]!);
  warnQuantiles(ev, call, qs, call.args[0]!);
  const out: StepSeries[] = [];
  for (const g of groupBuckets(ev, call, series)) {
    const monotonicityFixed = () =>
      ev.q.annotations.info(
        `input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name ${JSON.stringify(g.metricName)}`,
        call.args[1]!,
      );
    out.push(groupQuantiles(ev, g, qs, g.labels, monotonicityFixed));
  }
  return { kind: 'vector', series: ev.mergeSameLabels(out) };
}

export async function evalHistogramQuantiles(ev: Evaluator, call: Call): Promise<EvalValue> {
  const series = await ev.evalVector(call.args[0]!);
  const labelArg = call.args[1]!;
  const label = labelArg.type === 'StringLiteral' ? labelArg.val : 'quantile';
  const qArgs: { expr: Call['args'][number]; vals: Float64Array }[] = [];
  for (const a of call.args.slice(2)) qArgs.push({ expr: a, vals: await ev.evalScalar(a) });
  for (const q of qArgs) warnQuantiles(ev, call, q.vals, q.expr);
  const groups = groupBuckets(ev, call, series);
  const out: StepSeries[] = [];
  for (const q of qArgs) {
    for (const g of groups)
      out.push(groupQuantiles(ev, g, q.vals, { ...g.labels, [label]: formatGoFloatF(q.vals[0]!) }));
  }
  return { kind: 'vector', series: ev.mergeSameLabels(out) };
}

export async function evalHistogramFraction(ev: Evaluator, call: Call): Promise<EvalValue> {
  const lower = await ev.evalScalar(call.args[0]!);
  const upper = await ev.evalScalar(call.args[1]!);
  const series = await ev.evalVector(call.args[2]!);
  const out: StepSeries[] = [];
  for (const g of groupBuckets(ev, call, series)) {
    const b = newBuckets(g.members.length);
    const s = newStepSeries(g.labels, ev.steps, g.dropName);
    for (let i = 0; i < ev.steps; i++) {
      if (!collect(g, i, b)) continue;
      s.has[i] = 1;
      s.vals[i] = bucketFraction(lower[i]!, upper[i]!, b);
    }
    out.push(s);
  }
  return { kind: 'vector', series: ev.mergeSameLabels(out) };
}
