/**
 * PromQL tokens (promql/parser/lex.go). Keywords are not decided here: an identifier is a keyword only where
 * the grammar expects one, so `{on="x"}` and `by (bool)` keep working as in Prometheus.
 */
import { ParseError } from './errors.js';

// Overlaps ast.ts BinaryOp on the symbols: tokens and operators are different sets (`,`, `atan2`).
export type TokenKind =
  | 'EOF'
  | 'IDENT'
  | 'NUMBER'
  | 'DURATION'
  | 'STRING'
  | '('
  | ')'
  | '{'
  | '}'
  | '['
  | ']'
  | ','
  | ':'
  | '@'
  | '='
  | '=='
  | '!='
  | '=~'
  | '!~'
  | '<'
  | '<='
  | '>'
  | '>='
  | '+'
  | '-'
  | '*'
  | '/'
  | '%'
  | '^'
  | '</'
  | '>/';

export interface Token {
  readonly kind: TokenKind;
  /** Source text of the token. */
  readonly text: string;
  /** Start index in the query. */
  readonly pos: number;
  /** NUMBER: the value; DURATION: milliseconds. */
  readonly num: number;
  /** STRING: the unquoted value. */
  readonly str: string;
}

const DURATION_RE = /^(?:\d+(?:ms|[smhdwy]))+/;
const DURATION_PART_RE = /(\d+)(ms|[smhdwy])/g;
const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  y: 31_536_000_000,
};
const UNIT_ORDER = ['y', 'w', 'd', 'h', 'm', 's', 'ms'];
const NUMBER_RE = /^(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)/;
const IDENT_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const BRACKET_IDENT_RE = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/** Parses `1h30m` as Prometheus's model.ParseDuration does (units in decreasing order, each once). */
export function parsePromDuration(text: string): number | undefined {
  if (!DURATION_RE.test(text) || DURATION_RE.exec(text)![0] !== text) return undefined;
  let ms = 0;
  let lastUnit = -1;
  for (const m of text.matchAll(DURATION_PART_RE)) {
    const unit = UNIT_ORDER.indexOf(m[2]!);
    if (unit <= lastUnit) return undefined;
    lastUnit = unit;
    ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  }
  return ms;
}

function isAlnum(c: string | undefined): boolean {
  return c !== undefined && /[a-zA-Z0-9_]/.test(c);
}

export function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const push = (kind: TokenKind, start: number, end: number, num = 0, str = '') => {
    tokens.push({ kind, text: input.slice(start, end), pos: start, num, str });
  };
  const parenStack: { kind: '(' | '[' | '{'; pos: number }[] = [];
  while (i < input.length) {
    const c = input[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < input.length && input[i] !== '\n') i++;
      continue;
    }
    const rest = input.slice(i, i + 2);
    const start = i;
    if (c === '"' || c === "'" || c === '`') {
      const { value, end } = readString(input, i);
      push('STRING', start, end, 0, value);
      i = end;
      continue;
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(input[i + 1] ?? ''))) {
      const tail = input.slice(i);
      const dur = DURATION_RE.exec(tail);
      const num = NUMBER_RE.exec(tail);
      if (dur && dur[0].length >= (num?.[0].length ?? 0) && !isAlnum(tail[dur[0].length])) {
        const ms = parsePromDuration(dur[0]);
        if (ms === undefined)
          throw new ParseError(`bad number or duration syntax: ${JSON.stringify(dur[0])}`, input, start);
        push('DURATION', start, i + dur[0].length, ms);
        i += dur[0].length;
        continue;
      }
      if (num && !isAlnum(tail[num[0].length]) && tail[num[0].length] !== '.') {
        push('NUMBER', start, i + num[0].length, Number(num[0]));
        i += num[0].length;
        continue;
      }
      let end = i;
      while (end < input.length && /[a-zA-Z0-9_.]/.test(input[end]!)) end++;
      throw new ParseError(
        `bad number or duration syntax: ${JSON.stringify(input.slice(start, end))}`,
        input,
        start,
      );
    }
    // Inside brackets `:` separates a subquery's range and step; elsewhere it may start a metric name.
    const inBrackets = parenStack.length > 0 && parenStack[parenStack.length - 1]!.kind === '[';
    const ident = (inBrackets ? BRACKET_IDENT_RE : IDENT_RE).exec(input.slice(i, i + 4096));
    if (ident) {
      const word = ident[0];
      const lower = word.toLowerCase();
      if (lower === 'inf' || lower === 'nan') {
        push('NUMBER', start, i + word.length, lower === 'inf' ? Number.POSITIVE_INFINITY : Number.NaN);
      } else {
        push('IDENT', start, i + word.length);
      }
      i += word.length;
      continue;
    }
    const two: Record<string, TokenKind> = {
      '==': '==',
      '!=': '!=',
      '=~': '=~',
      '!~': '!~',
      '<=': '<=',
      '>=': '>=',
      // Native-histogram trim operators (Prometheus 3.x): `h </ 0.5` keeps buckets below 0.5.
      '</': '</',
      '>/': '>/',
    };
    if (two[rest]) {
      push(two[rest]!, start, i + 2);
      i += 2;
      continue;
    }
    switch (c) {
      case '(':
      case '[':
      case '{':
        parenStack.push({ kind: c, pos: i });
        push(c, start, i + 1);
        i++;
        continue;
      case ')':
      case ']':
      case '}': {
        const open = c === ')' ? '(' : c === ']' ? '[' : '{';
        const top = parenStack.pop();
        if (!top || top.kind !== open) {
          const what =
            c === ')' ? "right parenthesis ')'" : c === ']' ? "right bracket ']'" : "right brace '}'";
          throw new ParseError(`unexpected ${what}`, input, i);
        }
        push(c, start, i + 1);
        i++;
        continue;
      }
      case ',':
      case ':':
      case '@':
      case '=':
      case '<':
      case '>':
      case '+':
      case '-':
      case '*':
      case '/':
      case '%':
      case '^':
        push(c, start, i + 1);
        i++;
        continue;
      case '!':
        throw new ParseError(`unexpected character after '!': ${quoteRune(input[i + 1])}`, input, i);
      default:
        throw new ParseError(`unexpected character: ${quoteRune(c)}`, input, i);
    }
  }
  if (parenStack.length > 0) {
    // As Prometheus's lexer reports it: at the end of the input, an open brace first (the lexer is inside
    // braces), then an open parenthesis, then an open bracket.
    const open = (kind: string) => parenStack.some((p) => p.kind === kind);
    const what = open('{')
      ? 'unexpected end of input inside braces'
      : open('(')
        ? 'unclosed left parenthesis'
        : 'unclosed left bracket';
    throw new ParseError(what, input, input.length);
  }
  tokens.push({ kind: 'EOF', text: '', pos: input.length, num: 0, str: '' });
  return tokens;
}

function quoteRune(c: string | undefined): string {
  if (c === undefined) return 'EOF';
  return `'${c}'`;
}

/** Go's one-letter escapes (`\n`, `\t`, ...) and the byte each stands for. */
const SIMPLE_ESCAPES: ReadonlyMap<string, number> = new Map([
  ['a', 7],
  ['b', 8],
  ['f', 12],
  ['n', 10],
  ['r', 13],
  ['t', 9],
  ['v', 11],
  ['\\', 92],
]);

/**
 * Reads a Go-syntax string literal starting at `start` (a quote). Escapes follow Go's strconv.Unquote;
 * bytes that are not valid UTF-8 (from `\x` or octal escapes) become lone surrogates U+DC80..U+DCFF, so a
 * later label-name check can reject them and error messages can print them back as `\xNN`.
 */
function readString(input: string, start: number): { value: string; end: number } {
  const quote = input[start]!;
  let i = start + 1;
  if (quote === '`') {
    const close = input.indexOf('`', i);
    if (close < 0) throw new ParseError('unterminated raw string', input, start);
    return { value: input.slice(i, close), end: close + 1 };
  }
  const bytes: number[] = [];
  const pushChar = (s: string) => {
    for (const b of Buffer.from(s, 'utf8')) bytes.push(b);
  };
  while (true) {
    if (i >= input.length || input[i] === '\n')
      throw new ParseError('unterminated quoted string', input, start);
    const c = input[i]!;
    if (c === quote) {
      i++;
      break;
    }
    if (c !== '\\') {
      const cp = input.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      pushChar(ch);
      i += ch.length;
      continue;
    }
    const e = input[i + 1];
    i += 2;
    const simple = e === undefined ? undefined : SIMPLE_ESCAPES.get(e);
    if (simple !== undefined) {
      bytes.push(simple);
      continue;
    }
    switch (e) {
      case '"':
      case "'":
        if (e !== quote) throw new ParseError('unknown escape sequence', input, i - 2);
        bytes.push(e.charCodeAt(0));
        break;
      case 'x': {
        const hex = input.slice(i, i + 2);
        if (!/^[0-9a-fA-F]{2}$/.test(hex))
          throw new ParseError('illegal character in escape sequence', input, i);
        bytes.push(Number.parseInt(hex, 16));
        i += 2;
        break;
      }
      case 'u':
      case 'U': {
        const n = e === 'u' ? 4 : 8;
        const hex = input.slice(i, i + n);
        if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex))
          throw new ParseError('illegal character in escape sequence', input, i);
        const cp = Number.parseInt(hex, 16);
        if (cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
          throw new ParseError('escape sequence is an invalid Unicode code point', input, i);
        pushChar(String.fromCodePoint(cp));
        i += n;
        break;
      }
      default:
        if (e !== undefined && /[0-7]/.test(e)) {
          const oct = input.slice(i - 1, i + 2);
          if (!/^[0-7]{3}$/.test(oct)) throw new ParseError('illegal character in escape sequence', input, i);
          const v = Number.parseInt(oct, 8);
          if (v > 255) throw new ParseError('octal escape value > 255', input, i);
          bytes.push(v);
          i += 2;
          break;
        }
        throw new ParseError('unknown escape sequence', input, i - 2);
    }
  }
  return { value: decodeUtf8Lenient(bytes), end: i };
}

/** UTF-8 decoding that maps each invalid byte to U+DC00+byte (Python's "surrogateescape"). */
export function decodeUtf8Lenient(bytes: number[]): string {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    let need = 0;
    let cp = 0;
    if (b < 0x80) {
      out += String.fromCharCode(b);
      i++;
      continue;
    }
    if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
      cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      cp = b & 0x0f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      cp = b & 0x07;
    }
    let ok = need > 0 && i + need < bytes.length;
    if (ok) {
      for (let k = 1; k <= need; k++) {
        const cb = bytes[i + k];
        if (cb === undefined || (cb & 0xc0) !== 0x80) {
          ok = false;
          break;
        }
        cp = (cp << 6) | (cb & 0x3f);
      }
    }
    const min = need === 1 ? 0x80 : need === 2 ? 0x800 : 0x10000;
    if (ok && cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp < 0xe000)) {
      out += String.fromCodePoint(cp);
      i += need + 1;
    } else {
      out += String.fromCharCode(0xdc00 + b);
      i++;
    }
  }
  return out;
}

/** True when the string holds a byte that was not valid UTF-8 (see {@link decodeUtf8Lenient}). */
export function hasInvalidUtf8(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c < 0xe000) {
      if (c < 0xdc00 && i + 1 < s.length) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d < 0xe000) {
          i++;
          continue;
        }
      }
      return true;
    }
  }
  return false;
}

/** Go's %q: a double-quoted string with invalid bytes shown as `\xNN`. */
export function goQuote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (
      c >= 0xdc80 &&
      c <= 0xdcff &&
      !(i > 0 && s.charCodeAt(i - 1) >= 0xd800 && s.charCodeAt(i - 1) < 0xdc00)
    ) {
      out += `\\x${(c - 0xdc00).toString(16).padStart(2, '0')}`;
      continue;
    }
    const ch = s[i]!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}
