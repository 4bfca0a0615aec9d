/**
 * PromQL's reserved words, written once for the parser and printer (src/query/promql) and the dashboard, which
 * picks the metric names out of a query for their units (src/ui/lib/units.ts). Pure and free of Node imports,
 * so that both tsconfigs compile it.
 */

/** The aggregation operators, which may be followed by `by (…)` before their parenthesis. */
export const PROMQL_AGGREGATORS: ReadonlySet<string> = new Set([
  'sum',
  'avg',
  'count',
  'min',
  'max',
  'group',
  'stddev',
  'stdvar',
  'topk',
  'bottomk',
  'count_values',
  'quantile',
  'limitk',
  'limit_ratio',
]);

/** Words the parser reads as something else than a metric name where one could start (lower case). */
export const PROMQL_RESERVED: ReadonlySet<string> = new Set([
  ...PROMQL_AGGREGATORS,
  'and',
  'or',
  'unless',
  'atan2',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'inf',
  'nan',
]);
