/**
 * The PromQL function table: names, argument and return types (promql/parser/functions.go). The parser
 * type-checks calls against it; the evaluator dispatches on `name`.
 *
 * `variadic`: 0 = exactly `argTypes.length` arguments; n > 0 = up to n trailing arguments are optional;
 * -1 = the last argument type repeats without limit.
 */
import type { ValueType } from './ast.js';

export interface FunctionDef {
  readonly name: string;
  readonly argTypes: readonly ValueType[];
  readonly variadic: number;
  readonly returnType: ValueType;
  /** Behind Prometheus's `--enable-feature=promql-experimental-functions`. trainwatch enables them all. */
  readonly experimental: boolean;
  /** Needs native histograms; trainwatch stores floats only, so these fail with a clear error. */
  readonly nativeHistogram: boolean;
}

function fn(
  name: string,
  argTypes: ValueType[],
  returnType: ValueType,
  opts: { variadic?: number; experimental?: boolean; nativeHistogram?: boolean } = {},
): FunctionDef {
  return {
    name,
    argTypes,
    returnType,
    variadic: opts.variadic ?? 0,
    experimental: opts.experimental ?? false,
    nativeHistogram: opts.nativeHistogram ?? false,
  };
}

const V: ValueType = 'vector';
const M: ValueType = 'matrix';
const S: ValueType = 'scalar';
const STR: ValueType = 'string';

// One row per function, as Prometheus's functions.go: alike rows are the table's data, not copies.
const DEFS: FunctionDef[] = [
  fn('abs', [V], V),
  fn('absent', [V], V),
  fn('absent_over_time', [M], V),
  fn('acos', [V], V),
  fn('acosh', [V], V),
  fn('asin', [V], V),
  fn('asinh', [V], V),
  fn('atan', [V], V),
  fn('atanh', [V], V),
  fn('avg_over_time', [M], V),
  fn('ceil', [V], V),
  fn('changes', [M], V),
  fn('clamp', [V, S, S], V),
  fn('clamp_max', [V, S], V),
  fn('clamp_min', [V, S], V),
  fn('cos', [V], V),
  fn('cosh', [V], V),
  fn('count_over_time', [M], V),
  fn('days_in_month', [V], V, { variadic: 1 }),
  fn('day_of_month', [V], V, { variadic: 1 }),
  fn('day_of_week', [V], V, { variadic: 1 }),
  fn('day_of_year', [V], V, { variadic: 1 }),
  fn('deg', [V], V),
  fn('delta', [M], V),
  fn('deriv', [M], V),
  fn('double_exponential_smoothing', [M, S, S], V, { experimental: true }),
  fn('exp', [V], V),
  fn('first_over_time', [M], V, { experimental: true }),
  fn('floor', [V], V),
  fn('histogram_avg', [V], V, { nativeHistogram: true }),
  fn('histogram_count', [V], V, { nativeHistogram: true }),
  fn('histogram_fraction', [S, S, V], V),
  fn('histogram_quantile', [S, V], V),
  fn('histogram_quantiles', [V, STR, S], V, { variadic: -1, experimental: true }),
  fn('histogram_stddev', [V], V, { nativeHistogram: true }),
  fn('histogram_stdvar', [V], V, { nativeHistogram: true }),
  fn('histogram_sum', [V], V, { nativeHistogram: true }),
  fn('hour', [V], V, { variadic: 1 }),
  fn('idelta', [M], V),
  fn('increase', [M], V),
  fn('info', [V, V], V, { variadic: 1, experimental: true }),
  fn('irate', [M], V),
  fn('label_replace', [V, STR, STR, STR, STR], V),
  fn('label_join', [V, STR, STR, STR], V, { variadic: -1 }),
  fn('last_over_time', [M], V),
  fn('ln', [V], V),
  fn('log10', [V], V),
  fn('log2', [V], V),
  fn('mad_over_time', [M], V, { experimental: true }),
  fn('max_over_time', [M], V),
  fn('min_over_time', [M], V),
  fn('minute', [V], V, { variadic: 1 }),
  fn('month', [V], V, { variadic: 1 }),
  fn('pi', [], S),
  // Query-shape functions of Prometheus 3's duration expressions, also usable as scalars.
  fn('step', [], S, { experimental: true }),
  fn('range', [], S, { experimental: true }),
  fn('start', [], S, { experimental: true }),
  fn('end', [], S, { experimental: true }),
  fn('min_of', [S, S], S, { experimental: true }),
  fn('max_of', [S, S], S, { experimental: true }),
  fn('predict_linear', [M, S], V),
  fn('present_over_time', [M], V),
  fn('quantile_over_time', [S, M], V),
  fn('rad', [V], V),
  fn('rate', [M], V),
  fn('resets', [M], V),
  fn('round', [V, S], V, { variadic: 1 }),
  fn('scalar', [V], S),
  fn('sgn', [V], V),
  fn('sin', [V], V),
  fn('sinh', [V], V),
  fn('sort', [V], V),
  fn('sort_desc', [V], V),
  fn('sort_by_label', [V, STR], V, { variadic: -1, experimental: true }),
  fn('sort_by_label_desc', [V, STR], V, { variadic: -1, experimental: true }),
  fn('sqrt', [V], V),
  fn('start_timestamp', [V], V, { experimental: true }),
  fn('stddev_over_time', [M], V),
  fn('stdvar_over_time', [M], V),
  fn('sum_over_time', [M], V),
  fn('tan', [V], V),
  fn('tanh', [V], V),
  fn('time', [], S),
  fn('timestamp', [V], V),
  fn('ts_of_first_over_time', [M], V, { experimental: true }),
  fn('ts_of_last_over_time', [M], V, { experimental: true }),
  fn('ts_of_max_over_time', [M], V, { experimental: true }),
  fn('ts_of_min_over_time', [M], V, { experimental: true }),
  fn('vector', [S], V),
  fn('year', [V], V, { variadic: 1 }),
];

export const FUNCTIONS: ReadonlyMap<string, FunctionDef> = new Map(DEFS.map((d) => [d.name, d]));

/** Functions that keep the metric name of their input (everything else drops it, as Prometheus does). */
export const KEEPS_METRIC_NAME: ReadonlySet<string> = new Set([
  'last_over_time',
  'first_over_time',
  'sort',
  'sort_desc',
  'sort_by_label',
  'sort_by_label_desc',
  'label_replace',
  'label_join',
  'info',
]);
