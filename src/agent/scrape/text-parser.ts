/**
 * A parser for the Prometheus text exposition format (version 0.0.4, as Prometheus's own `textparse` reads
 * it), including the quoted UTF-8 metric and label names of Prometheus 3 (`{"my.metric", "a.b"="v"}`).
 *
 * - `# HELP name text` (escapes `\\` and `\n`) and `# TYPE name counter|gauge|histogram|summary|untyped`;
 *   other `#` lines are comments. A family's TYPE may appear once, before its samples.
 * - `name{label="value",...} value [timestamp]`: label values escape `\\`, `\"` and `\n`; a trailing comma is
 *   allowed; a value is a Go float (`NaN`, `+Inf`, `-Inf`, exponents); the timestamp is integer milliseconds.
 * - Histograms (`_bucket{le=...}`, `_sum`, `_count`) and summaries (`{quantile=...}`, `_sum`, `_count`) are
 *   plain samples in this format; their family's type is reported with them.
 *
 * Built for repeated scrapes of the same target: for each sample the visitor gets the series' text as it
 * appears on the line (a stable key for caching) and parses its labels (`parseSeries`) only for a key it has
 * not seen. A malformed line throws a {@link TextFormatError} naming its line number, as a scrape with one bad
 * line is refused whole by Prometheus too.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export class TextFormatError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`line ${line}: ${message}`);
    this.name = 'TextFormatError';
  }
}

export interface ParsedSeries {
  readonly name: string;
  /** Label names and values in order of appearance (no metric name). */
  readonly labels: readonly (readonly [string, string])[];
}

export interface TextVisitor {
  /**
   * One sample. `seriesText` is the series as written on the line (name and label block); `timestampMs` is
   * NaN when the line has none. `type` is the family's declared type, or `untyped`.
   */
  sample(seriesText: string, value: number, timestampMs: number, type: MetricType, lineNo: number): void;
  help?(name: string, text: string): void;
}

const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const NAME_START = /[a-zA-Z_:]/;
const NAME_CHAR = /[a-zA-Z0-9_:]/;

export function parsePrometheusText(text: string, visitor: TextVisitor): number {
  const types = new Map<string, MetricType>();
  let samples = 0;
  let lineNo = 0;
  let pos = 0;
  const len = text.length;
  while (pos < len) {
    lineNo++;
    let end = text.indexOf('\n', pos);
    if (end < 0) end = len;
    let line = text.slice(pos, end);
    pos = end + 1;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const first = firstNonBlank(line);
    if (first < 0) continue;
    if (line.charCodeAt(first) === 35 /* # */) {
      parseComment(line.slice(first + 1), lineNo, types, visitor);
      continue;
    }
    const seriesEnd = scanSeries(line, first, lineNo);
    const seriesText = line.slice(first, seriesEnd);
    const rest = line
      .slice(seriesEnd)
      .trim()
      .split(/[ \t]+/);
    if (rest.length === 0 || rest[0] === '')
      throw new TextFormatError(`no value after ${seriesText}`, lineNo);
    if (rest.length > 2)
      throw new TextFormatError(`unexpected text after the timestamp: ${rest.slice(2).join(' ')}`, lineNo);
    const value = parseGoFloat(rest[0]!);
    if (value === undefined) throw new TextFormatError(`${JSON.stringify(rest[0])} is not a number`, lineNo);
    let ts = Number.NaN;
    if (rest.length === 2) {
      if (!/^-?\d{1,19}$/.test(rest[1]!))
        throw new TextFormatError(`timestamp ${JSON.stringify(rest[1])} is not integer milliseconds`, lineNo);
      ts = Number(rest[1]);
    }
    visitor.sample(seriesText, value, ts, types.get(familyOf(seriesText, types)) ?? 'untyped', lineNo);
    samples++;
  }
  return samples;
}

/** Go's strconv.ParseFloat for the forms exporters write. */
export function parseGoFloat(s: string): number | undefined {
  if (s === '') return undefined;
  const lower = s.toLowerCase();
  if (lower === 'nan') return Number.NaN;
  if (lower === '+inf' || lower === 'inf' || lower === '+infinity' || lower === 'infinity')
    return Number.POSITIVE_INFINITY;
  if (lower === '-inf' || lower === '-infinity') return Number.NEGATIVE_INFINITY;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return undefined;
  return Number(s);
}

function firstNonBlank(line: string): number {
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c !== 32 && c !== 9) return i;
  }
  return -1;
}

function parseComment(
  body: string,
  lineNo: number,
  types: Map<string, MetricType>,
  visitor: TextVisitor,
): void {
  const m = /^[ \t]*(HELP|TYPE)[ \t]+/.exec(body);
  if (!m) return; // an ordinary comment
  let rest = body.slice(m[0].length);
  let name: string;
  if (rest.startsWith('"')) {
    const q = readQuoted(rest, 0, lineNo);
    name = q.value;
    rest = rest.slice(q.end);
  } else {
    const nm = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(rest);
    if (!nm) throw new TextFormatError(`# ${m[1]} without a valid metric name`, lineNo);
    name = nm[0];
    rest = rest.slice(name.length);
  }
  if (rest !== '' && rest[0] !== ' ' && rest[0] !== '\t')
    throw new TextFormatError(`# ${m[1]} ${name}: invalid character after the name`, lineNo);
  rest = rest.replace(/^[ \t]+/, '');
  if (m[1] === 'TYPE') {
    const t = rest.trim();
    if (!TYPES.has(t)) throw new TextFormatError(`# TYPE ${name}: unknown type ${JSON.stringify(t)}`, lineNo);
    if (types.has(name)) throw new TextFormatError(`# TYPE ${name} given twice`, lineNo);
    types.set(name, t as MetricType);
  } else {
    visitor.help?.(
      name,
      rest.replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\')),
    );
  }
}

/** Returns the index just after the series (name and optional label block) that starts at `start`. */
function scanSeries(line: string, start: number, lineNo: number): number {
  let i = start;
  if (line[i] !== '{') {
    if (!NAME_START.test(line[i]!))
      throw new TextFormatError(`invalid metric name start ${JSON.stringify(line[i])}`, lineNo);
    i++;
    while (i < line.length && NAME_CHAR.test(line[i]!)) i++;
    const nameEnd = i;
    while (line[i] === ' ' || line[i] === '\t') i++;
    if (i >= line.length || line[i] !== '{') return nameEnd;
  }
  // Label block: scan to the closing brace, stepping over quoted strings.
  i++;
  while (i < line.length) {
    const c = line[i]!;
    if (c === '"') {
      i = readQuoted(line, i, lineNo).end;
      continue;
    }
    if (c === '}') return i + 1;
    i++;
  }
  throw new TextFormatError('label block not closed with }', lineNo);
}

/** Reads a double-quoted string starting at `start` (the quote); returns its unescaped value and end. */
function readQuoted(s: string, start: number, lineNo: number): { value: string; end: number } {
  let out = '';
  let i = start + 1;
  let from = i;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c === 34 /* " */) return { value: out + s.slice(from, i), end: i + 1 };
    if (c === 92 /* \ */) {
      out += s.slice(from, i);
      const n = s[i + 1];
      if (n === 'n') out += '\n';
      else if (n === '\\' || n === '"') out += n;
      else throw new TextFormatError(`invalid escape \\${n ?? ''} in a quoted string`, lineNo);
      i += 2;
      from = i;
      continue;
    }
    i++;
  }
  throw new TextFormatError('quoted string not closed', lineNo);
}

/**
 * Parses a series text (as handed to `sample`) into its name and labels. Throws for invalid label syntax;
 * the line number is the caller's.
 */
export function parseSeries(seriesText: string, lineNo = 0): ParsedSeries {
  let i = 0;
  let name = '';
  const s = seriesText;
  if (s[0] !== '{') {
    while (i < s.length && s[i] !== '{') i++;
    name = s.slice(0, i).trimEnd();
    if (i === s.length) return { name, labels: [] };
  }
  i++; // past {
  const labels: [string, string][] = [];
  const seen = new Set<string>();
  for (;;) {
    while (s[i] === ' ' || s[i] === '\t') i++;
    if (s[i] === '}') break;
    let label: string;
    if (s[i] === '"') {
      const q = readQuoted(s, i, lineNo);
      i = q.end;
      while (s[i] === ' ' || s[i] === '\t') i++;
      if (s[i] === ',' || s[i] === '}') {
        // A quoted string alone is the metric name (Prometheus 3 UTF-8 names).
        if (name !== '') throw new TextFormatError(`metric name given twice (${name}, ${q.value})`, lineNo);
        name = q.value;
        if (s[i] === ',') i++;
        continue;
      }
      label = q.value;
    } else {
      const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(s.slice(i));
      if (!m)
        throw new TextFormatError(`invalid label name at ${JSON.stringify(s.slice(i, i + 20))}`, lineNo);
      label = m[0];
      i += label.length;
      while (s[i] === ' ' || s[i] === '\t') i++;
    }
    if (s[i] !== '=') throw new TextFormatError(`expected = after label ${label}`, lineNo);
    i++;
    while (s[i] === ' ' || s[i] === '\t') i++;
    if (s[i] !== '"') throw new TextFormatError(`label ${label}: value must be a quoted string`, lineNo);
    const v = readQuoted(s, i, lineNo);
    i = v.end;
    if (seen.has(label)) throw new TextFormatError(`label ${label} given twice`, lineNo);
    seen.add(label);
    labels.push([label, v.value]);
    while (s[i] === ' ' || s[i] === '\t') i++;
    if (s[i] === ',') {
      i++;
      continue;
    }
    if (s[i] === '}') break;
    throw new TextFormatError(`expected , or } after label ${label}`, lineNo);
  }
  if (name === '') throw new TextFormatError('series has no metric name', lineNo);
  return { name, labels };
}

/** The family a sample belongs to, for its TYPE: `x_bucket`/`x_sum`/`x_count` of histogram or summary `x`. */
function familyOf(seriesText: string, types: Map<string, MetricType>): string {
  let name: string;
  if (seriesText[0] === '{') {
    try {
      name = parseSeries(seriesText).name;
    } catch {
      return '';
    }
  } else {
    const brace = seriesText.indexOf('{');
    name = brace < 0 ? seriesText : seriesText.slice(0, brace).trimEnd();
  }
  if (types.has(name)) return name;
  for (const suffix of ['_bucket', '_sum', '_count', '_total', '_created', '_gcount', '_gsum']) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      const t = types.get(base);
      if (t === 'histogram' || t === 'summary' || (suffix === '_total' && t === 'counter')) return base;
    }
  }
  return name;
}
