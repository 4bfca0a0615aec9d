/**
 * Prints a PromQL syntax tree back as PromQL (Prometheus's `expr.String()`), for forwarding rewritten queries
 * to a TSDB (inject.ts) and for messages.
 *
 * Invariants (tested): the output parses with our parser to a tree that evaluates the same, and printing that
 * tree again gives the same text (print → parse → print is stable). Parentheses written in the query are kept
 * (they are ParenExpr nodes); others are added only where precedence needs them, so a tree built by hand prints
 * correctly too.
 *
 * Regex matchers print their pattern as the parser stored it: the RE2 source translated to JavaScript
 * (regex.ts). The translation writes only constructs RE2 also reads the same way (character classes for
 * `(?i)` and POSIX classes, escaped literals for `\Q…\E`), so the printed query means the same to Prometheus.
 */
import { isValidLabelName } from '../../model/labels.js';
import { NON_METRIC_WORDS } from '../../model/promql-words.js';
import type {
  AtModifier,
  BinaryExpr,
  BinaryOp,
  DurationExpr,
  Expr,
  VectorMatching,
  VectorSelector,
} from './ast.js';
import { goQuote } from './lexer.js';
import { PRECEDENCE, UNARY_OPERAND_MIN_PREC as UNARY_PREC } from './parser.js';

const METRIC_NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

export function exprToString(e: Expr): string {
  switch (e.type) {
    case 'NumberLiteral': {
      const d = e.duration;
      if (d?.kind === 'literal' && Number.isInteger(d.ms) && d.ms > 0) {
        if (d.ms / 1000 === e.val) return formatDuration(d.ms);
        if (-d.ms / 1000 === e.val) return `-${formatDuration(d.ms)}`;
      }
      return formatNumber(e.val);
    }
    case 'StringLiteral':
      return goQuote(e.val);
    case 'VectorSelector':
      return selectorText(e) + modifiers(e.offset, e.at);
    case 'MatrixSelector':
      return `${selectorText(e.vs)}[${durationText(e.range)}]${modifiers(e.vs.offset, e.vs.at)}`;
    case 'SubqueryExpr': {
      const inner =
        e.expr.type === 'BinaryExpr' || e.expr.type === 'UnaryExpr'
          ? `(${exprToString(e.expr)})`
          : exprToString(e.expr);
      const step = e.step ? durationText(e.step) : '';
      return `${inner}[${durationText(e.range)}:${step}]${modifiers(e.offset, e.at)}`;
    }
    case 'ParenExpr':
      return `(${exprToString(e.expr)})`;
    case 'UnaryExpr': {
      const inner = exprToString(e.expr);
      const needsParens =
        (e.expr.type === 'BinaryExpr' && PRECEDENCE[e.expr.op] < UNARY_PREC) ||
        e.expr.type === 'UnaryExpr' ||
        (e.expr.type === 'NumberLiteral' && inner.startsWith('-'));
      return `${e.op}${needsParens ? `(${inner})` : inner}`;
    }
    case 'BinaryExpr':
      return binaryText(e);
    case 'AggregateExpr': {
      let s: string = e.op;
      if (e.without || e.grouping.length > 0)
        s += ` ${e.without ? 'without' : 'by'} (${e.grouping.map(labelNameText).join(', ')})`;
      const args = e.param ? `${exprToString(e.param)}, ${exprToString(e.expr)}` : exprToString(e.expr);
      return e.without || e.grouping.length > 0 ? `${s} (${args})` : `${s}(${args})`;
    }
    case 'Call':
      return `${e.func.name}(${e.args.map(exprToString).join(', ')})`;
  }
}

function binaryText(e: BinaryExpr): string {
  const prec = PRECEDENCE[e.op];
  const rightAssoc = e.op === '^';
  let lhs = exprToString(e.lhs);
  let rhs = exprToString(e.rhs);
  const l = e.lhs;
  const r = e.rhs;
  if (
    (l.type === 'BinaryExpr' && (PRECEDENCE[l.op] < prec || (rightAssoc && PRECEDENCE[l.op] === prec))) ||
    // `-a ^ b` would be `-(a ^ b)`; a unary operand elsewhere binds tighter than any binary operator.
    (rightAssoc && (l.type === 'UnaryExpr' || (l.type === 'NumberLiteral' && lhs.startsWith('-'))))
  )
    lhs = `(${lhs})`;
  if (r.type === 'BinaryExpr' && (PRECEDENCE[r.op] < prec || (!rightAssoc && PRECEDENCE[r.op] === prec)))
    rhs = `(${rhs})`;
  let op: string = e.op;
  if (e.returnBool) op += ' bool';
  if (e.matching) op += matchingText(e.op, e.matching);
  return `${lhs} ${op} ${rhs}`;
}

function matchingText(op: BinaryOp, m: VectorMatching): string {
  let s = '';
  const labels = `(${m.matchingLabels.map(labelNameText).join(', ')})`;
  if (m.on) s += ` on${labels}`;
  else if (m.matchingLabels.length > 0) s += ` ignoring${labels}`;
  if (m.card === 'many-to-one' || m.card === 'one-to-many') {
    // Always with parentheses: `group_left (x)` would read a parenthesised right operand as its label list.
    s += ` ${m.card === 'many-to-one' ? 'group_left' : 'group_right'}(${m.include.map(labelNameText).join(', ')})`;
  }
  void op;
  if (m.fillLeft !== undefined && m.fillRight !== undefined && Object.is(m.fillLeft, m.fillRight))
    s += ` fill(${formatNumber(m.fillLeft)})`;
  else {
    if (m.fillLeft !== undefined) s += ` fill_left(${formatNumber(m.fillLeft)})`;
    if (m.fillRight !== undefined) s += ` fill_right(${formatNumber(m.fillRight)})`;
  }
  return s;
}

function labelNameText(name: string): string {
  return isValidLabelName(name) ? name : goQuote(name);
}

/** `name{a="1"}`, `{__name__=~"x.*"}`: the metric name bare when it was written so and reads back the same. */
function selectorText(vs: VectorSelector): string {
  let matchers = vs.matchers;
  let prefix = '';
  const first = matchers.find((m) => m.name === '__name__');
  if (
    vs.name !== undefined &&
    first?.type === '=' &&
    first.value === vs.name &&
    METRIC_NAME_RE.test(vs.name) &&
    !NON_METRIC_WORDS.has(vs.name.toLowerCase())
  ) {
    prefix = vs.name;
    matchers = matchers.filter((m) => m !== first);
    if (matchers.length === 0) return prefix;
  }
  return `${prefix}{${matchers.map((m) => `${labelNameText(m.name)}${m.type}${goQuote(m.value)}`).join(', ')}}`;
}

function modifiers(offset: DurationExpr | undefined, at: AtModifier | undefined): string {
  let s = '';
  if (offset !== undefined) s += ` offset ${offsetText(offset)}`;
  if (at !== undefined) s += ` @ ${at.kind === 'time' ? formatNumber(at.ms / 1000) : `${at.kind}()`}`;
  return s;
}

/** After `offset`: a signed atom; anything else in parentheses. */
function offsetText(d: DurationExpr): string {
  if (d.kind === 'binary') return `(${durationText(d)})`;
  return durationText(d);
}

/** A duration expression inside `[...]` (or parenthesised after `offset`). */
export function durationText(d: DurationExpr): string {
  switch (d.kind) {
    case 'literal':
      if (d.ms < 0) return `-${durationText({ kind: 'literal', ms: -d.ms })}`;
      // Sub-millisecond durations have no duration syntax: seconds as a number mean the same.
      return Number.isInteger(d.ms) ? formatDuration(d.ms) : formatNumber(d.ms / 1000);
    case 'step':
    case 'range':
      return `${d.kind}()`;
    case 'unary':
      return `${d.op}${durationOperand(d.expr)}`;
    case 'binary':
      return `${durationOperand(d.lhs)} ${d.op} ${durationOperand(d.rhs)}`;
    case 'call':
      return `${d.fn}(${d.args.map(durationText).join(', ')})`;
  }
}

function durationOperand(d: DurationExpr): string {
  return d.kind === 'binary' || d.kind === 'unary' || (d.kind === 'literal' && d.ms < 0)
    ? `(${durationText(d)})`
    : durationText(d);
}

const UNITS: readonly [string, number][] = [
  ['y', 365 * 24 * 3_600_000],
  ['w', 7 * 24 * 3_600_000],
  ['d', 24 * 3_600_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
  ['ms', 1],
];

/** Prometheus's duration format: `1h30m`, `90s` → `1m30s`, `0s`. `ms` is a non-negative integer. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let s = '';
  let rest = ms;
  for (const [unit, size] of UNITS) {
    if (rest >= size) {
      const n = Math.floor(rest / size);
      s += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return s;
}

/** A float as PromQL reads it back exactly: shortest round-trip digits, `Inf`, `NaN`, `-0`. */
export function formatNumber(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return 'Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  if (Object.is(v, -0)) return '-0';
  return String(v);
}
