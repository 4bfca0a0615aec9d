/**
 * PromQL parser: a precedence-climbing parser over the grammar of Prometheus 3 (promql/parser/
 * generated_parser.y), with the same operator precedences, type checks and error messages (`1:5: parse
 * error: ...`). Includes the experimental syntax Prometheus's test suite enables: duration expressions
 * (`[5m+30s]`, `offset step()`, `min_of`/`max_of`) and binary-operator fill modifiers (`fill(0)`).
 *
 * Longer than 600 lines on purpose: one hand-written recursive-descent parser, whose methods call each other
 * over one token cursor; split across files it would read worse (the lexer is apart, in lexer.ts).
 */
import { LabelMatcher, type MatchType, METRIC_NAME_LABEL } from '../../model/labels.js';
import {
  AGGREGATORS,
  KEYWORD_OPERATORS,
  MODIFIER_KEYWORDS,
  PARAM_AGGREGATORS,
} from '../../model/promql-words.js';
import {
  type AggregateExpr,
  type AggregateOp,
  type AtModifier,
  type BinaryExpr,
  type BinaryOp,
  type Cardinality,
  COMPARISON_OPS,
  type DurationExpr,
  type Expr,
  exprType,
  type NumberLiteral,
  SET_OPS,
  type SubqueryExpr,
  type ValueType,
  type VectorMatching,
  type VectorSelector,
} from './ast.js';
import { ParseError } from './errors.js';
import { FUNCTIONS } from './functions.js';
import { goQuote, hasInvalidUtf8, type Token, type TokenKind, tokenize } from './lexer.js';
import { compileGoRegex } from './regex.js';

/** Binary operator precedences (higher binds tighter), from generated_parser.y; the printer uses them too. */
export const PRECEDENCE: Record<BinaryOp, number> = {
  or: 1,
  and: 2,
  unless: 2,
  '==': 3,
  '!=': 3,
  '<': 3,
  '<=': 3,
  '>': 3,
  '>=': 3,
  '+': 4,
  '-': 4,
  '*': 5,
  '/': 5,
  '%': 5,
  atan2: 5,
  '</': 5,
  '>/': 5,
  '^': 6,
};
/** Unary minus binds like `*`: `-a ^ b` is `-(a ^ b)`, `-a * b` is `(-a) * b`. */
export const UNARY_OPERAND_MIN_PREC = 6;

const TYPE_NAMES: Record<ValueType, string> = {
  scalar: 'scalar',
  vector: 'instant vector',
  matrix: 'range vector',
  string: 'string',
};

export function documentedType(t: ValueType): string {
  return TYPE_NAMES[t];
}

const LABEL_NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export interface ParseOptions {
  /** Reject functions marked experimental (Prometheus without `promql-experimental-functions`). */
  readonly disableExperimentalFunctions?: boolean;
}

/** Parses a PromQL expression; throws {@link ParseError} with Prometheus's message and position. */
export function parseExpr(query: string, opts: ParseOptions = {}): Expr {
  const p = new Parser(query, opts);
  return p.parseTop();
}

/** Parses a series selector such as the `match[]` parameter of /api/v1/series: `up{job="x"}`. */
export function parseMetricSelector(query: string): LabelMatcher[] {
  const e = parseExpr(query);
  if (e.type !== 'VectorSelector') {
    throw new ParseError(`expected an instant vector selector, got ${documentedType(exprType(e))}`, query, 0);
  }
  return [...e.matchers];
}

/**
 * Deepest expression tree the parser builds (nested parentheses, calls, unary operators and operator chains
 * together). The parser, the evaluator and the printer recurse over the tree: without a bound, 10,000 nested
 * parentheses overflow the stack (a 500); with it, the query gets a 400 naming the limit. Real queries nest a
 * few dozen levels at most.
 */
export const MAX_EXPRESSION_DEPTH = 1000;

class Parser {
  private readonly tokens: Token[];
  private i = 0;
  /** Current recursion depth of parseBinary / parseDurationExpr (see MAX_EXPRESSION_DEPTH). */
  private depth = 0;
  /** Set while parsing info()'s second argument, whose selector may match the empty set of labels. */
  private allowEmptySelector = false;

  constructor(
    private readonly query: string,
    private readonly opts: ParseOptions,
  ) {
    this.tokens = tokenize(query);
  }

  parseTop(): Expr {
    if (this.peek().kind === 'EOF') throw this.error('no expression found in input', 0);
    const e = this.parseBinary(0);
    const t = this.peek();
    if (t.kind !== 'EOF') throw this.unexpected(t);
    return e;
  }

  // ---- token helpers ----

  private peek(offset = 0): Token {
    return this.tokens[Math.min(this.i + offset, this.tokens.length - 1)]!;
  }

  private next(): Token {
    const t = this.peek();
    if (this.i < this.tokens.length - 1) this.i++;
    return t;
  }

  private isKeyword(t: Token, word: string): boolean {
    return t.kind === 'IDENT' && t.text.toLowerCase() === word;
  }

  private expect(kind: TokenKind, context: string): Token {
    const t = this.peek();
    if (t.kind !== kind) throw this.unexpected(t, context);
    return this.next();
  }

  private error(detail: string, pos: number): ParseError {
    return new ParseError(detail, this.query, pos);
  }

  private describe(t: Token): string {
    switch (t.kind) {
      case 'EOF':
        return 'end of input';
      case 'IDENT': {
        const lower = t.text.toLowerCase();
        if (AGGREGATORS.has(lower)) return `<aggr:${t.text}>`;
        if (KEYWORD_OPERATORS.has(lower)) return `<op:${t.text}>`;
        if (MODIFIER_KEYWORDS.has(lower) || lower === 'start' || lower === 'end') return `<${t.text}>`;
        return `${t.text.includes(':') ? 'metric identifier' : 'identifier'} ${JSON.stringify(t.text)}`;
      }
      case 'NUMBER':
        return `number ${JSON.stringify(t.text)}`;
      case 'DURATION':
        return `duration ${JSON.stringify(t.text)}`;
      case 'STRING':
        return `string ${t.text.length > 10 ? `${JSON.stringify(t.text.slice(0, 10))}...` : JSON.stringify(t.text)}`;
      case '(':
        return '"("';
      case ')':
        return '")"';
      case '{':
        return '"{"';
      case '}':
        return '"}"';
      case '[':
        return '"["';
      case ']':
        return '"]"';
      case ',':
        return '","';
      case ':':
        return '":"';
      case '@':
        return '"@"';
      default:
        return `<op:${t.text}>`;
    }
  }

  private unexpected(t: Token, context?: string, expected?: string): ParseError {
    let msg = `unexpected ${this.describe(t)}`;
    if (context) msg += ` in ${context}`;
    if (expected) msg += `, expected ${expected}`;
    return this.error(msg, t.pos);
  }

  // ---- expressions ----

  private binaryOpAt(t: Token): BinaryOp | undefined {
    // Every binary operator has a precedence: the symbol ones are their token's kind, the word ones IDENTs.
    if (t.kind !== 'IDENT') return Object.hasOwn(PRECEDENCE, t.kind) ? (t.kind as BinaryOp) : undefined;
    const w = t.text.toLowerCase();
    return KEYWORD_OPERATORS.has(w) ? (w as BinaryOp) : undefined;
  }

  /**
   * Comma-separated arguments up to the closing `)` (not consumed), a trailing comma allowed. A function call
   * gives `emptySelectorArg`, the one argument that may be a selector matching the empty string (info's
   * second, -1 for none), for each argument; an aggregation gives none and leaves the enclosing call's rule.
   */
  private parseArgs(emptySelectorArg?: number): Expr[] {
    const args: Expr[] = [];
    if (this.peek().kind === ')') return args;
    while (true) {
      if (emptySelectorArg === undefined) args.push(this.parseBinary(0));
      else {
        this.allowEmptySelector = args.length === emptySelectorArg;
        try {
          args.push(this.parseBinary(0));
        } finally {
          this.allowEmptySelector = false;
        }
      }
      if (this.peek().kind !== ',') return args;
      this.next();
      if (this.peek().kind === ')') return args;
    }
  }

  /** Throws the depth-limit error when a tree `extra` levels below the current recursion gets too deep. */
  private checkDepth(extra: number, pos: number): void {
    if (this.depth + extra > MAX_EXPRESSION_DEPTH)
      throw this.error(`expression nested deeper than ${MAX_EXPRESSION_DEPTH} levels`, pos);
  }

  private parseBinary(minPrec: number): Expr {
    this.depth++;
    this.checkDepth(0, this.peek().pos);
    try {
      let lhs = this.parseUnary();
      // Each operator of a left-associative chain (`a + b + c ...`) puts the tree one level deeper.
      let chain = 0;
      while (true) {
        const t = this.peek();
        const op = this.binaryOpAt(t);
        if (!op) return lhs;
        const prec = PRECEDENCE[op];
        if (prec < minPrec) return lhs;
        this.checkDepth(++chain, t.pos);
        this.next();
        const mods = this.parseBinModifiers(op);
        const rhs = this.parseBinary(op === '^' ? prec : prec + 1);
        lhs = this.makeBinary(op, lhs, rhs, mods, t.pos);
      }
    } finally {
      this.depth--;
    }
  }

  private parseBinModifiers(op: BinaryOp): {
    returnBool: boolean;
    on: boolean | undefined;
    labels: string[];
    card: Cardinality | undefined;
    include: string[];
    fillLeft: number | undefined;
    fillRight: number | undefined;
    pos: number;
  } {
    const pos = this.peek().pos;
    let returnBool = false;
    if (this.isKeyword(this.peek(), 'bool')) {
      this.next();
      returnBool = true;
    }
    let on: boolean | undefined;
    let labels: string[] = [];
    const t = this.peek();
    if (this.isKeyword(t, 'on') || this.isKeyword(t, 'ignoring')) {
      this.next();
      on = t.text.toLowerCase() === 'on';
      labels = this.parseLabelList('grouping opts');
    }
    let card: Cardinality | undefined;
    let include: string[] = [];
    const g = this.peek();
    if (this.isKeyword(g, 'group_left') || this.isKeyword(g, 'group_right')) {
      this.next();
      card = g.text.toLowerCase() === 'group_left' ? 'many-to-one' : 'one-to-many';
      if (this.peek().kind === '(') include = this.parseLabelList('grouping opts');
      if (on === undefined) {
        // group_left without on/ignoring is ignoring(): allowed by the grammar.
        on = false;
      }
    }
    let fillLeft: number | undefined;
    let fillRight: number | undefined;
    while (true) {
      const f = this.peek();
      const w = f.kind === 'IDENT' ? f.text.toLowerCase() : '';
      if ((w === 'fill' || w === 'fill_left' || w === 'fill_right') && this.peek(1).kind === '(') {
        this.next();
        this.next();
        const v = this.parseSignedNumber('fill modifier');
        this.expect(')', 'fill modifier');
        if (w === 'fill' || w === 'fill_left') fillLeft = v;
        if (w === 'fill' || w === 'fill_right') fillRight = v;
        continue;
      }
      break;
    }
    void op;
    return { returnBool, on, labels, card, include, fillLeft, fillRight, pos };
  }

  private parseSignedNumber(context: string): number {
    let sign = 1;
    while (this.peek().kind === '-' || this.peek().kind === '+') {
      if (this.next().kind === '-') sign = -sign;
    }
    const t = this.peek();
    if (t.kind === 'NUMBER') {
      this.next();
      return sign * t.num;
    }
    if (t.kind === 'DURATION') {
      this.next();
      return (sign * t.num) / 1000;
    }
    throw this.unexpected(t, context, 'number');
  }

  private makeBinary(
    op: BinaryOp,
    lhs: Expr,
    rhs: Expr,
    mods: ReturnType<Parser['parseBinModifiers']>,
    opPos: number,
  ): Expr {
    const lt = exprType(lhs);
    const rt = exprType(rhs);
    const isComparison = COMPARISON_OPS.has(op);
    const isSet = SET_OPS.has(op);
    if (mods.returnBool && !isComparison)
      throw this.error('bool modifier can only be used on comparison operators', opPos);
    const bothVectors = lt === 'vector' && rt === 'vector';
    if ((lt !== 'scalar' && lt !== 'vector') || (rt !== 'scalar' && rt !== 'vector'))
      throw this.error('binary expression must contain only scalar and instant vector types', lhs.pos);
    if (isComparison && !mods.returnBool && lt === 'scalar' && rt === 'scalar')
      throw this.error('comparisons between scalars must use BOOL modifier', lhs.pos);
    if (isSet && (lt === 'scalar' || rt === 'scalar'))
      throw this.error(`set operator ${JSON.stringify(op)} not allowed in binary scalar expression`, lhs.pos);
    const hasMatching = mods.on !== undefined || mods.card !== undefined;
    if (hasMatching && !bothVectors)
      throw this.error('vector matching only allowed between instant vectors', lhs.pos);
    if ((mods.fillLeft !== undefined || mods.fillRight !== undefined) && !bothVectors)
      throw this.error('filling in missing series only allowed between instant vectors', lhs.pos);
    let matching: VectorMatching | undefined;
    if (bothVectors) {
      let card: Cardinality = mods.card ?? 'one-to-one';
      if (isSet) {
        if (mods.card === 'many-to-one' || mods.card === 'one-to-many')
          throw this.error(`no grouping allowed for ${JSON.stringify(op)} operation`, lhs.pos);
        if (mods.fillLeft !== undefined || mods.fillRight !== undefined)
          throw this.error(
            `filling in missing series not allowed for ${JSON.stringify(op)} operation`,
            lhs.pos,
          );
        card = 'many-to-many';
      }
      if (mods.on && (card === 'many-to-one' || card === 'one-to-many')) {
        for (const l of mods.include) {
          if (mods.labels.includes(l))
            throw this.error(
              `label ${JSON.stringify(l)} must not occur in ON and GROUP clause at once`,
              lhs.pos,
            );
        }
      }
      matching = {
        card,
        matchingLabels: mods.labels,
        on: mods.on ?? false,
        include: mods.include,
        fillLeft: mods.fillLeft,
        fillRight: mods.fillRight,
      };
    }
    const be: BinaryExpr = {
      type: 'BinaryExpr',
      op,
      lhs,
      rhs,
      matching,
      returnBool: mods.returnBool,
      pos: lhs.pos,
      end: rhs.end,
    };
    return be;
  }

  private parseUnary(): Expr {
    const t = this.peek();
    if (t.kind === '-' || t.kind === '+') {
      this.next();
      const operand = this.parseBinary(UNARY_OPERAND_MIN_PREC);
      const ot = exprType(operand);
      if (ot !== 'scalar' && ot !== 'vector')
        throw this.error(
          `unary expression only allowed on expressions of type scalar or instant vector, got ${JSON.stringify(documentedType(ot))}`,
          t.pos,
        );
      if (operand.type === 'NumberLiteral') {
        const nl: NumberLiteral = {
          ...operand,
          val: t.kind === '-' ? -operand.val : operand.val,
          pos: t.pos,
        };
        return nl;
      }
      return { type: 'UnaryExpr', op: t.kind, expr: operand, pos: t.pos, end: operand.end };
    }
    return this.parsePostfix(this.parsePrimary());
  }

  private parsePrimary(): Expr {
    const t = this.peek();
    switch (t.kind) {
      case 'NUMBER':
        this.next();
        return { type: 'NumberLiteral', val: t.num, pos: t.pos, end: t.pos + t.text.length };
      case 'DURATION':
        this.next();
        return {
          type: 'NumberLiteral',
          val: t.num / 1000,
          duration: { kind: 'literal', ms: t.num },
          pos: t.pos,
          end: t.pos + t.text.length,
        };
      case 'STRING':
        this.next();
        return { type: 'StringLiteral', val: t.str, pos: t.pos, end: t.pos + t.text.length };
      case '(': {
        this.next();
        const inner = this.parseBinary(0);
        const close = this.expect(')', 'paren expression');
        return { type: 'ParenExpr', expr: inner, pos: t.pos, end: close.pos + 1 };
      }
      case '{':
        return this.parseVectorSelector(undefined, t.pos);
      case 'IDENT': {
        const lower = t.text.toLowerCase();
        if (AGGREGATORS.has(lower)) return this.parseAggregate();
        if (this.peek(1).kind === '(' && !t.text.includes(':')) return this.parseCall();
        if (
          ['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset'].includes(lower)
        )
          throw this.unexpected(t);
        if (['and', 'or', 'unless', 'atan2'].includes(lower)) throw this.unexpected(t);
        this.next();
        return this.parseVectorSelector(t.text, t.pos);
      }
      default:
        throw this.unexpected(t);
    }
  }

  private parseCall(): Expr {
    const nameTok = this.next();
    const name = nameTok.text;
    const def = FUNCTIONS.get(name);
    if (!def) throw this.error(`unknown function with name ${JSON.stringify(name)}`, nameTok.pos);
    if (def.experimental && this.opts.disableExperimentalFunctions)
      throw this.error(`function ${JSON.stringify(name)} is not enabled`, nameTok.pos);
    this.expect('(', 'function call');
    const args = this.parseArgs(def.name === 'info' ? 1 : -1);
    const close = this.expect(')', 'function call');
    const call: Expr = { type: 'Call', func: def, args, pos: nameTok.pos, end: close.pos + 1 };
    this.checkCall(call.func, args, nameTok.pos);
    return call;
  }

  private checkCall(
    def: typeof FUNCTIONS extends ReadonlyMap<string, infer F> ? F : never,
    args: Expr[],
    pos: number,
  ) {
    const n = def.argTypes.length;
    if (def.variadic === 0) {
      if (args.length !== n)
        throw this.error(
          `expected ${n} argument(s) in call to ${JSON.stringify(def.name)}, got ${args.length}`,
          pos,
        );
    } else {
      const min = def.variadic > 0 ? n - def.variadic : n - 1;
      if (args.length < min)
        throw this.error(
          `expected at least ${min} argument(s) in call to ${JSON.stringify(def.name)}, got ${args.length}`,
          pos,
        );
      if (def.variadic > 0 && args.length > n)
        throw this.error(
          `expected at most ${n} argument(s) in call to ${JSON.stringify(def.name)}, got ${args.length}`,
          pos,
        );
    }
    args.forEach((a, i) => {
      const want = def.argTypes[Math.min(i, n - 1)]!;
      const got = exprType(a);
      if (want !== got)
        throw this.error(
          `expected type ${documentedType(want)} in call to function ${JSON.stringify(def.name)}, got ${documentedType(got)}`,
          a.pos,
        );
    });
  }

  private parseAggregate(): Expr {
    const opTok = this.next();
    const op = opTok.text.toLowerCase() as AggregateOp;
    let grouping: string[] = [];
    let without = false;
    let groupingSet = false;
    const readGrouping = () => {
      const g = this.peek();
      if (this.isKeyword(g, 'by') || this.isKeyword(g, 'without')) {
        this.next();
        without = g.text.toLowerCase() === 'without';
        grouping = this.parseLabelList('grouping opts');
        groupingSet = true;
        return true;
      }
      return false;
    };
    readGrouping();
    if (this.peek().kind !== '(') throw this.unexpected(this.peek(), 'aggregation', '"("');
    this.next();
    const args = this.parseArgs();
    const close = this.expect(')', 'aggregation');
    if (!groupingSet) readGrouping();
    else if (this.isKeyword(this.peek(), 'by') || this.isKeyword(this.peek(), 'without'))
      throw this.unexpected(this.peek(), 'aggregation');
    const wantArgs = PARAM_AGGREGATORS.has(op) ? 2 : 1;
    if (args.length !== wantArgs)
      throw this.error(
        `wrong number of arguments for aggregate expression provided, expected ${wantArgs}, got ${args.length}`,
        opTok.pos,
      );
    const expr = args[args.length - 1]!;
    const param = wantArgs === 2 ? args[0] : undefined;
    const et = exprType(expr);
    if (et !== 'vector')
      throw this.error(
        `expected type instant vector in aggregation expression, got ${documentedType(et)}`,
        expr.pos,
      );
    if (param) {
      const want: ValueType = op === 'count_values' ? 'string' : 'scalar';
      const pt = exprType(param);
      if (pt !== want)
        throw this.error(
          `expected type ${documentedType(want)} in aggregation parameter, got ${documentedType(pt)}`,
          param.pos,
        );
    }
    const end = Math.max(close.pos + 1, this.tokens[this.i - 1]!.pos + this.tokens[this.i - 1]!.text.length);
    const agg: AggregateExpr = {
      type: 'AggregateExpr',
      op,
      expr,
      param,
      grouping,
      without,
      pos: opTok.pos,
      end,
    };
    return agg;
  }

  /** `(a, b, "c")` — label names, bare or quoted. */
  private parseLabelList(context: string): string[] {
    this.expect('(', context);
    const out: string[] = [];
    while (this.peek().kind !== ')') {
      const t = this.next();
      if (t.kind === 'IDENT' && !t.text.includes(':')) {
        out.push(t.text);
      } else if (t.kind === 'STRING') {
        if (hasInvalidUtf8(t.str)) throw this.error(`invalid label name: ${goQuote(t.str)}`, t.pos);
        out.push(t.str);
      } else if (t.kind === 'NUMBER' && /^(inf|nan)$/i.test(t.text)) {
        out.push(t.text);
      } else {
        throw this.unexpected(t, context, 'label');
      }
      if (this.peek().kind === ',') this.next();
      else if (this.peek().kind !== ')') throw this.unexpected(this.peek(), context, '"," or ")"');
    }
    this.next();
    return out;
  }

  private parseVectorSelector(name: string | undefined, pos: number): Expr {
    const matchers: LabelMatcher[] = [];
    let end = pos + (name?.length ?? 0);
    let nameFromBraces: string | undefined;
    if (this.peek().kind === '{') {
      this.next();
      while (this.peek().kind !== '}') {
        const lt = this.next();
        let label: string;
        if (lt.kind === 'STRING') {
          const after = this.peek().kind;
          if (after === ',' || after === '}') {
            // A quoted metric name: {"my.metric"}.
            if (name !== undefined || nameFromBraces !== undefined)
              throw this.error(
                `metric name must not be set twice: ${JSON.stringify(name ?? nameFromBraces)} or ${JSON.stringify(lt.str)}`,
                lt.pos,
              );
            nameFromBraces = lt.str;
            matchers.push(new LabelMatcher('=', METRIC_NAME_LABEL, lt.str));
            if (this.peek().kind === ',') this.next();
            continue;
          }
          if (hasInvalidUtf8(lt.str)) throw this.error(`invalid label name: ${goQuote(lt.str)}`, lt.pos);
          label = lt.str;
        } else if (lt.kind === 'IDENT' && !lt.text.includes(':')) {
          label = lt.text;
        } else if (lt.kind === 'NUMBER' && /^(inf|nan)$/i.test(lt.text)) {
          label = lt.text;
        } else {
          throw this.unexpected(lt, 'label matching', 'label matching operator');
        }
        const opTok = this.next();
        if (!['=', '!=', '=~', '!~'].includes(opTok.kind)) {
          throw this.unexpected(opTok, 'label matching', 'label matching operator');
        }
        const valTok = this.next();
        if (valTok.kind !== 'STRING') throw this.unexpected(valTok, 'label matching', 'string');
        matchers.push(this.makeMatcher(opTok.kind as MatchType, label, valTok.str, valTok.pos));
        if (this.peek().kind === ',') this.next();
        else if (this.peek().kind !== '}') throw this.unexpected(this.peek(), 'label matching', '"," or "}"');
      }
      end = this.next().pos + 1;
    }
    if (name !== undefined) {
      for (const m of matchers) {
        if (m.name === METRIC_NAME_LABEL)
          throw this.error(
            `metric name must not be set twice: ${JSON.stringify(name)} or ${JSON.stringify(m.value)}`,
            pos,
          );
      }
      matchers.unshift(new LabelMatcher('=', METRIC_NAME_LABEL, name));
    }
    if (!this.allowEmptySelector && !matchers.some((m) => !m.matches(''))) {
      throw this.error('vector selector must contain at least one non-empty matcher', pos);
    }
    const vs: VectorSelector = {
      type: 'VectorSelector',
      name: name ?? nameFromBraces,
      matchers,
      offset: undefined,
      at: undefined,
      pos,
      end,
    };
    return vs;
  }

  private makeMatcher(type: MatchType, name: string, value: string, pos: number): LabelMatcher {
    if (type === '=~' || type === '!~') {
      try {
        return new LabelMatcher(type, name, compileGoRegex(value));
      } catch (err) {
        throw this.error(`invalid regular expression ${goQuote(value)}: ${(err as Error).message}`, pos);
      }
    }
    return new LabelMatcher(type, name, value);
  }

  /** `[range]`, `[range:step]`, `offset d`, `@ t` after a primary expression. */
  private parsePostfix(e: Expr): Expr {
    let cur = e;
    while (true) {
      const t = this.peek();
      if (t.kind === '[') {
        cur = this.parseRangeOrSubquery(cur);
        continue;
      }
      if (this.isKeyword(t, 'offset')) {
        this.next();
        const d = this.parseOffsetDuration();
        this.setOffset(cur, d, t.pos);
        continue;
      }
      if (t.kind === '@') {
        this.next();
        const at = this.parseAt();
        this.setAt(cur, at, t.pos);
        continue;
      }
      return cur;
    }
  }

  private parseRangeOrSubquery(e: Expr): Expr {
    const open = this.next();
    const range = this.parseDurationExpr(0, 'range');
    if (this.peek().kind === ':') {
      this.next();
      let step: DurationExpr | undefined;
      if (this.peek().kind !== ']') step = this.parseDurationExpr(0, 'subquery');
      const close = this.expect(']', 'subquery selector');
      const et = exprType(e);
      if (et !== 'vector')
        throw this.error(
          `subquery is only allowed on instant vector, got ${documentedType(et)} instead`,
          e.pos,
        );
      const sq: SubqueryExpr = {
        type: 'SubqueryExpr',
        expr: e,
        range,
        step,
        offset: undefined,
        at: undefined,
        pos: e.pos,
        end: close.pos + 1,
      };
      return sq;
    }
    const close = this.expect(']', 'range selector');
    if (e.type !== 'VectorSelector') {
      throw this.error('ranges only allowed for vector selectors', open.pos);
    }
    if (e.offset !== undefined) throw this.error('no offset modifiers allowed before range', open.pos);
    if (e.at !== undefined) throw this.error('no @ modifiers allowed before range', open.pos);
    return { type: 'MatrixSelector', vs: e, range, pos: e.pos, end: close.pos + 1 };
  }

  private modifierTarget(e: Expr, what: string, pos: number): VectorSelector | SubqueryExpr {
    if (e.type === 'VectorSelector' || e.type === 'SubqueryExpr') return e;
    if (e.type === 'MatrixSelector') return e.vs;
    throw this.error(
      `${what} modifier must be preceded by an instant vector selector or range vector selector or a subquery`,
      pos,
    );
  }

  private setOffset(e: Expr, d: DurationExpr, pos: number): void {
    const target = this.modifierTarget(e, 'offset', pos);
    if (target.offset !== undefined) throw this.error('offset may not be set multiple times', pos);
    target.offset = d;
  }

  private setAt(e: Expr, at: AtModifier, pos: number): void {
    const target = this.modifierTarget(e, '@', pos);
    if (target.at !== undefined) throw this.error('@ <timestamp> may not be set multiple times', pos);
    target.at = at;
  }

  private parseAt(): AtModifier {
    const t = this.peek();
    if ((this.isKeyword(t, 'start') || this.isKeyword(t, 'end')) && this.peek(1).kind === '(') {
      this.next();
      this.next();
      this.expect(')', '@ modifier');
      return { kind: t.text.toLowerCase() as 'start' | 'end' };
    }
    const v = this.parseSignedNumber('@ modifier');
    if (!Number.isFinite(v)) throw this.error(`timestamp out of bounds for @ modifier: ${v}`, t.pos);
    return { kind: 'time', ms: Math.round(v * 1000) };
  }

  /**
   * The duration after `offset`: a signed atom — a number (seconds), a duration, `step()`, `range()`,
   * `min_of(...)`, `max_of(...)` or a parenthesised duration expression. Binary operators after it belong to
   * the enclosing expression: `x offset 100 + 2` is `(x offset 100) + 2`.
   */
  private parseOffsetDuration(): DurationExpr {
    const t = this.peek();
    if (t.kind === '-' || t.kind === '+') {
      this.next();
      const inner = this.parseOffsetDuration();
      if (t.kind === '+') return inner;
      if (inner.kind === 'literal') return { kind: 'literal', ms: -inner.ms };
      return { kind: 'unary', op: '-', expr: inner };
    }
    return this.parseDurationAtom('offset');
  }

  private parseDurationAtom(context: string): DurationExpr {
    const t = this.peek();
    if (t.kind === 'NUMBER') {
      this.next();
      return { kind: 'literal', ms: t.num * 1000 };
    }
    if (t.kind === 'DURATION') {
      this.next();
      return { kind: 'literal', ms: t.num };
    }
    if (t.kind === '(') {
      this.next();
      const inner = this.parseDurationExpr(0, context);
      this.expect(')', context);
      return inner;
    }
    if (t.kind === 'IDENT' && this.peek(1).kind === '(') {
      const w = t.text.toLowerCase();
      if (w === 'step' || w === 'range') {
        this.next();
        this.next();
        this.expect(')', context);
        return { kind: w };
      }
      if (w === 'min_of' || w === 'max_of') {
        this.next();
        this.next();
        const a = this.parseDurationExpr(0, context);
        this.expect(',', context);
        const b = this.parseDurationExpr(0, context);
        this.expect(')', context);
        return { kind: 'call', fn: w, args: [a, b] };
      }
    }
    throw this.unexpected(t, context, 'duration');
  }

  /** Arithmetic over durations inside `[...]` or parentheses, with PromQL's precedences. */
  private parseDurationExpr(minPrec: number, context: string): DurationExpr {
    this.depth++;
    this.checkDepth(0, this.peek().pos);
    try {
      return this.parseDurationChain(minPrec, context);
    } finally {
      this.depth--;
    }
  }

  private parseDurationChain(minPrec: number, context: string): DurationExpr {
    let chain = 0;
    let lhs: DurationExpr;
    const t = this.peek();
    if (t.kind === '-' || t.kind === '+') {
      this.next();
      const inner = this.parseDurationExpr(UNARY_OPERAND_MIN_PREC, context);
      lhs =
        t.kind === '+'
          ? inner
          : inner.kind === 'literal'
            ? { kind: 'literal', ms: -inner.ms }
            : { kind: 'unary', op: '-', expr: inner };
    } else {
      lhs = this.parseDurationAtom(context);
    }
    while (true) {
      const o = this.peek();
      if (!['+', '-', '*', '/', '%', '^'].includes(o.kind)) return lhs;
      const op = o.kind as '+' | '-' | '*' | '/' | '%' | '^';
      const prec = PRECEDENCE[op];
      if (prec < minPrec) return lhs;
      this.checkDepth(++chain, o.pos);
      this.next();
      const rhs = this.parseDurationExpr(op === '^' ? prec : prec + 1, context);
      lhs = { kind: 'binary', op, lhs, rhs };
    }
  }
}

export function isValidLegacyLabelName(name: string): boolean {
  return LABEL_NAME_RE.test(name);
}
