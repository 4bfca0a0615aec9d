/**
 * trainwatch's PromQL: a parser and an engine with Prometheus 3's semantics, evaluated over the storage's
 * `Querier`. Used by the Prometheus HTTP API (`src/query/prom-api.ts`), alerting rules and the dashboard.
 *
 * ```ts
 * import { PromqlEngine, tenantQueryable } from '../query/promql/index.js';
 * const engine = new PromqlEngine();                       // options: lookback, limits, timeout
 * const source = tenantQueryable(storage, 'team-a');       // one tenant's series, `tenant` label hidden
 * const r = await engine.instantQuery(source, 'avg by (job_id) (gpu_utilization_ratio) < 0.1', Date.now());
 * if (r.value.resultType === 'vector') for (const s of r.value.samples) console.log(s.labels, s.v);
 * const m = await engine.rangeQuery(source, 'rate(train_step[1m])', start, end, 15_000);  // resultType 'matrix'
 * ```
 *
 * Errors are typed ({@link PromqlError} subclasses carry Prometheus's `errorType` and HTTP status):
 * {@link ParseError} (`1:5: parse error: ...`), {@link ExecutionError}, {@link TooManySamplesError},
 * {@link TooManySeriesError}, {@link QueryTimeoutError}, {@link QueryCanceledError}.
 */
export type {
  AggregateExpr,
  BinaryExpr,
  Call,
  Expr,
  MatrixSelector,
  NumberLiteral,
  StringLiteral,
  SubqueryExpr,
  ValueType,
  VectorSelector,
} from './ast.js';
export { exprType, walk } from './ast.js';
export {
  type EngineOptions,
  PromqlEngine,
  type Queryable,
  type QueryOptions,
} from './engine.js';
export {
  ExecutionError,
  ParseError,
  PromqlError,
  type PromqlErrorType,
  QueryCanceledError,
  QueryTimeoutError,
  SubqueryResolutionError,
  TooManySamplesError,
  TooManySeriesError,
} from './errors.js';
export { FUNCTIONS, type FunctionDef } from './functions.js';
export { enforceTenant, enforceTenantExpr } from './inject.js';
export { MAX_EXPRESSION_DEPTH, parseExpr, parseMetricSelector } from './parser.js';
export { exprToString } from './print.js';
export { hideTenantLabel, tenantQueryable } from './tenant.js';
export {
  type InstantSample,
  type QueryResult,
  type QueryStats,
  type QueryValue,
  type RangeSeries,
  ruleVector,
} from './value.js';
