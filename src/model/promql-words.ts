/**
 * PromQL's reserved words, written once: the query stage's parser and printer (src/query/promql) and the
 * dashboard's query helpers (src/ui/lib/units.ts, which finds the metric names a query selects) must agree on
 * which identifiers are not metric names. Plain data, free of Node imports, so both tsconfigs compile it.
 */

/** Aggregation operators that take a parameter before the vector (`topk(3, x)`). */
export const PARAM_AGGREGATORS: ReadonlySet<string> = new Set([
  'topk',
  'bottomk',
  'count_values',
  'quantile',
  'limitk',
  'limit_ratio',
]);

/** Every aggregation operator. */
export const AGGREGATORS: ReadonlySet<string> = new Set([
  'sum',
  'avg',
  'count',
  'min',
  'max',
  'group',
  'stddev',
  'stdvar',
  ...PARAM_AGGREGATORS,
]);

/** Binary operators written as words (the others are symbols). */
export const KEYWORD_OPERATORS: ReadonlySet<string> = new Set(['and', 'or', 'unless', 'atan2']);

/** Keywords of the grouping, vector-matching and offset modifiers. */
export const MODIFIER_KEYWORDS: ReadonlySet<string> = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
]);

/**
 * Words the parser reads as something else than a metric name where one could start: a bare metric of such
 * a name must be written `{__name__="..."}`.
 */
export const NON_METRIC_WORDS: ReadonlySet<string> = new Set([
  ...AGGREGATORS,
  ...KEYWORD_OPERATORS,
  ...MODIFIER_KEYWORDS,
  'inf',
  'nan',
]);
