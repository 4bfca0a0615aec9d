/**
 * The PromQL syntax tree, as Prometheus 3's parser builds it (promql/parser/ast.go), in plain objects.
 *
 * Positions are byte-less: `pos` is the index of the node's first character in the query string (UTF-16 code
 * units, equal to Prometheus's byte offsets for ASCII queries) and `end` the index after its last character.
 * Annotations and errors render them as `line:column`.
 */
import type { LabelMatcher } from '../../model/labels.js';
import type { FunctionDef } from './functions.js';

export type ValueType = 'scalar' | 'vector' | 'matrix' | 'string';

export interface PosRange {
  readonly pos: number;
  readonly end: number;
}

/** A time offset or range that may depend on the query (`step()`, `range()`) — resolved before evaluation. */
export type DurationExpr =
  | { readonly kind: 'literal'; readonly ms: number }
  | { readonly kind: 'step' }
  | { readonly kind: 'range' }
  | { readonly kind: 'unary'; readonly op: '-' | '+'; readonly expr: DurationExpr }
  | {
      readonly kind: 'binary';
      readonly op: '+' | '-' | '*' | '/' | '%' | '^';
      readonly lhs: DurationExpr;
      readonly rhs: DurationExpr;
    }
  | { readonly kind: 'call'; readonly fn: 'min_of' | 'max_of'; readonly args: readonly DurationExpr[] };

/** `@ <timestamp>`, `@ start()` or `@ end()`. */
export type AtModifier = { readonly kind: 'time'; readonly ms: number } | { readonly kind: 'start' | 'end' };

export interface NumberLiteral extends PosRange {
  readonly type: 'NumberLiteral';
  readonly val: number;
  /** Set when the number was written as a duration (`5m`): durations are numbers of seconds. */
  readonly duration?: DurationExpr;
}

export interface StringLiteral extends PosRange {
  readonly type: 'StringLiteral';
  readonly val: string;
}

export interface VectorSelector extends PosRange {
  readonly type: 'VectorSelector';
  /** The metric name written before the braces, if any. */
  readonly name: string | undefined;
  /** Every matcher, including `__name__="<name>"` for a written name. */
  readonly matchers: readonly LabelMatcher[];
  offset: DurationExpr | undefined;
  at: AtModifier | undefined;
}

export interface MatrixSelector extends PosRange {
  readonly type: 'MatrixSelector';
  readonly vs: VectorSelector;
  readonly range: DurationExpr;
}

export interface SubqueryExpr extends PosRange {
  readonly type: 'SubqueryExpr';
  readonly expr: Expr;
  readonly range: DurationExpr;
  /** Undefined: the default evaluation interval (`[5m:]`). */
  readonly step: DurationExpr | undefined;
  offset: DurationExpr | undefined;
  at: AtModifier | undefined;
}

export interface ParenExpr extends PosRange {
  readonly type: 'ParenExpr';
  readonly expr: Expr;
}

export interface UnaryExpr extends PosRange {
  readonly type: 'UnaryExpr';
  readonly op: '-' | '+';
  readonly expr: Expr;
}

// Overlaps lexer.ts TokenKind on the symbols: tokens and operators are different sets (`,`, `atan2`).
export type BinaryOp =
  | '+'
  | '-'
  | '*'
  | '/'
  | '%'
  | '^'
  | 'atan2'
  | '</'
  | '>/'
  | '=='
  | '!='
  | '<'
  | '>'
  | '<='
  | '>='
  | 'and'
  | 'or'
  | 'unless';

export type Cardinality = 'one-to-one' | 'many-to-one' | 'one-to-many' | 'many-to-many';

export interface VectorMatching {
  readonly card: Cardinality;
  /** The labels of `on(...)` / `ignoring(...)`. */
  readonly matchingLabels: readonly string[];
  /** True for `on(...)`, false for `ignoring(...)` or no clause. */
  readonly on: boolean;
  /** The labels of `group_left(...)` / `group_right(...)` copied from the "one" side. */
  readonly include: readonly string[];
  /** `fill(v)` / `fill_left(v)` / `fill_right(v)`: values used for a missing side. */
  readonly fillLeft: number | undefined;
  readonly fillRight: number | undefined;
}

export interface BinaryExpr extends PosRange {
  readonly type: 'BinaryExpr';
  readonly op: BinaryOp;
  readonly lhs: Expr;
  readonly rhs: Expr;
  /** Only set when both sides are instant vectors. */
  readonly matching: VectorMatching | undefined;
  readonly returnBool: boolean;
}

export type AggregateOp =
  | 'sum'
  | 'avg'
  | 'count'
  | 'min'
  | 'max'
  | 'group'
  | 'stddev'
  | 'stdvar'
  | 'topk'
  | 'bottomk'
  | 'count_values'
  | 'quantile'
  | 'limitk'
  | 'limit_ratio';

export interface AggregateExpr extends PosRange {
  readonly type: 'AggregateExpr';
  readonly op: AggregateOp;
  readonly expr: Expr;
  readonly param: Expr | undefined;
  readonly grouping: readonly string[];
  readonly without: boolean;
}

export interface Call extends PosRange {
  readonly type: 'Call';
  readonly func: FunctionDef;
  readonly args: readonly Expr[];
}

export type Expr =
  | NumberLiteral
  | StringLiteral
  | VectorSelector
  | MatrixSelector
  | SubqueryExpr
  | ParenExpr
  | UnaryExpr
  | BinaryExpr
  | AggregateExpr
  | Call;

export const COMPARISON_OPS: ReadonlySet<BinaryOp> = new Set(['==', '!=', '<', '>', '<=', '>=']);
export const SET_OPS: ReadonlySet<BinaryOp> = new Set(['and', 'or', 'unless']);

/** The type an expression evaluates to (promql/parser/ast.go Type()). */
export function exprType(e: Expr): ValueType {
  switch (e.type) {
    case 'NumberLiteral':
      return 'scalar';
    case 'StringLiteral':
      return 'string';
    case 'VectorSelector':
      return 'vector';
    case 'MatrixSelector':
    case 'SubqueryExpr':
      return 'matrix';
    case 'ParenExpr':
    case 'UnaryExpr':
      return exprType(e.expr);
    case 'BinaryExpr':
      return exprType(e.lhs) === 'scalar' && exprType(e.rhs) === 'scalar' ? 'scalar' : 'vector';
    case 'AggregateExpr':
      return 'vector';
    case 'Call':
      return e.func.returnType;
  }
}

/** Strips parentheses: `((x))` → `x`. */
export function unwrapParens(e: Expr): Expr {
  let cur = e;
  while (cur.type === 'ParenExpr') cur = cur.expr;
  return cur;
}

/** Visits every node, parents before children. */
export function walk(e: Expr, visit: (node: Expr) => void): void {
  visit(e);
  switch (e.type) {
    case 'MatrixSelector':
      walk(e.vs, visit);
      return;
    case 'SubqueryExpr':
    case 'ParenExpr':
    case 'UnaryExpr':
      walk(e.expr, visit);
      return;
    case 'BinaryExpr':
      walk(e.lhs, visit);
      walk(e.rhs, visit);
      return;
    case 'AggregateExpr':
      if (e.param) walk(e.param, visit);
      walk(e.expr, visit);
      return;
    case 'Call':
      for (const a of e.args) walk(a, visit);
      return;
    default:
      return;
  }
}
