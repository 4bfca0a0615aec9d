/**
 * The text of Prometheus's PromQL test scripts (promql/promqltest), parsed: series descriptions
 * (`metric{a="b"} 1+2x3 _ stale`) and the commands (`load`, `clear`, `eval instant|range`, `expect ...`).
 * Separate from test-script.ts, which loads the parsed data into a storage and runs and checks the cases.
 */
import { isStaleNaN, STALE_NAN } from '../../model/batch.js';
import type { LabelSet } from '../../model/labels.js';
import { parseGoFloat } from './histogram.js';
import { parsePromDuration } from './lexer.js';
import { parseExpr } from './parser.js';
// ---- series descriptions (`metric{a="b"} 1+2x3 _ stale {{...}}`) ----

export interface SeriesDesc {
  readonly labels: LabelSet;
  /** Values per position; `undefined` = omitted. */
  readonly values: (number | undefined)[];
  /** Positions holding native histograms (not stored; their presence classifies cases). */
  readonly histogramAt: boolean[];
  /**
   * Where the values hold a staleness marker (`stale`). Kept apart from `values` because V8 stores a plain
   * `number[]` as doubles and quiets a signalling NaN on the way in, so the marker's bits would not survive.
   */
  readonly staleAt: boolean[];
  /** `@st`: the line gives start timestamps for the series. */
  readonly startTimestamps: boolean;
}

function splitSeriesLine(line: string): { metric: string; rest: string } {
  let depth = 0;
  let inStr: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (inStr) {
      if (c === '\\') i++;
      else if (c === inStr) inStr = undefined;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') inStr = c;
    else if (c === '{') depth++;
    else if (c === '}') depth--;
    else if ((c === ' ' || c === '\t') && depth === 0) {
      return { metric: line.slice(0, i), rest: line.slice(i + 1).trim() };
    }
  }
  return { metric: line, rest: '' };
}

function parseMetric(text: string): LabelSet {
  const e = parseMetricLabels(text.trim());
  return e;
}

/** `name{a="b", "c.d"="e"}` → labels (no matcher semantics: every pair is an exact label). */
function parseMetricLabels(text: string): LabelSet {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(\{.*\})?$/s.exec(text);
  if (!m) throw new Error(`bad series description ${JSON.stringify(text)}`);
  const labels: Record<string, string> = {};
  if (m[1]) labels.__name__ = m[1];
  if (m[2] && m[2] !== '{}') {
    const expr = parseExpr(m[1] ? m[0] : `{__tw_dummy__="x", ${m[2].slice(1)}`);
    if (expr.type !== 'VectorSelector') throw new Error(`bad series description ${JSON.stringify(text)}`);
    for (const mt of expr.matchers) {
      if (mt.name === '__tw_dummy__') continue;
      if (mt.type !== '=') throw new Error(`series descriptions take = only: ${JSON.stringify(text)}`);
      if (mt.value !== '') labels[mt.name] = mt.value;
    }
  }
  return labels;
}

/** Splits the values part into items, keeping `{{...}}` histogram literals whole. */
function valueItems(rest: string): string[] {
  const items: string[] = [];
  let i = 0;
  while (i < rest.length) {
    while (i < rest.length && /\s/.test(rest[i]!)) i++;
    if (i >= rest.length) break;
    let j = i;
    while (j < rest.length && !/\s/.test(rest[j]!)) {
      if (rest.startsWith('{{', j)) {
        const close = rest.indexOf('}}', j);
        j = close < 0 ? rest.length : close + 2;
      } else j++;
    }
    items.push(rest.slice(i, j));
    i = j;
  }
  return items;
}

function parseNumberLiteral(s: string): number {
  const lower = s.toLowerCase();
  if (lower === 'stale') return STALE_NAN;
  if (/^[+-]?inf$/.test(lower))
    return lower.startsWith('-') ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  if (/^[+-]?nan$/.test(lower)) return Number.NaN;
  const d = parsePromDuration(s.replace(/^[+-]/, ''));
  if (d !== undefined && !/^[+-]?\d+$/.test(s)) return (s.startsWith('-') ? -d : d) / 1000;
  const v = parseGoFloat(s);
  if (v === undefined) throw new Error(`bad number ${JSON.stringify(s)}`);
  return v;
}

function parseValues(rest: string): Pick<SeriesDesc, 'values' | 'histogramAt' | 'staleAt'> {
  const values: (number | undefined)[] = [];
  const histogramAt: boolean[] = [];
  const staleAt: boolean[] = [];
  const push = (v: number | undefined, h = false) => {
    values.push(v);
    histogramAt.push(h);
    staleAt.push(v !== undefined && isStaleNaN(v));
  };
  for (const item of valueItems(rest)) {
    if (item.startsWith('{{')) {
      const times = /x(\d+)$/.exec(item.slice(item.lastIndexOf('}}')));
      const n = times ? Number(times[1]) + 1 : 1;
      for (let k = 0; k < n; k++) push(undefined, true);
      continue;
    }
    if (item === '_') {
      push(undefined);
      continue;
    }
    const blanks = /^_x(\d+)$/.exec(item);
    if (blanks) {
      for (let k = 0; k < Number(blanks[1]); k++) push(undefined);
      continue;
    }
    const rep = /^(.+?)x(\d+)$/.exec(item);
    if (rep) {
      const n = Number(rep[2]);
      const expr = rep[1]!;
      // `a+b` / `a-b` (a may be signed), or a single value repeated.
      const inc = /^([+-]?[^+-]+?)([+-][^+-]+)$/.exec(expr);
      if (inc && !/e$/i.test(inc[1]!)) {
        let v = parseNumberLiteral(inc[1]!);
        const step = parseNumberLiteral(inc[2]!);
        push(v);
        for (let k = 1; k <= n; k++) {
          v += step;
          push(v);
        }
      } else {
        const v = parseNumberLiteral(expr);
        for (let k = 0; k <= n; k++) push(v);
      }
      continue;
    }
    push(parseNumberLiteral(item));
  }
  return { values, histogramAt, staleAt };
}

function parseSeriesDesc(line: string): SeriesDesc {
  const { metric, rest } = splitSeriesLine(line);
  let m = metric;
  let startTimestamps = false;
  if (m.endsWith('@st')) {
    startTimestamps = true;
    m = m.slice(0, -3);
  }
  return { labels: parseMetric(m), ...parseValues(rest), startTimestamps };
}

// ---- commands ----

export interface Expect {
  readonly kind: 'fail' | 'warn' | 'info' | 'no_warn' | 'no_info' | 'ordered' | 'string' | 'range';
  readonly match?: { readonly type: 'msg' | 'regex'; readonly text: string };
  readonly stringValue?: string;
  readonly range?: { readonly from: number; readonly to: number; readonly step: number };
}

export interface EvalCmd {
  readonly type: 'eval';
  readonly line: number;
  readonly instant: boolean;
  readonly query: string;
  readonly at: number;
  readonly start: number;
  readonly end: number;
  readonly step: number;
  readonly expects: Expect[];
  readonly series: SeriesDesc[];
  readonly scalar: number | undefined;
}

export type Cmd =
  | {
      readonly type: 'load';
      readonly line: number;
      readonly intervalMs: number;
      readonly withNhcb: boolean;
      readonly series: SeriesDesc[];
    }
  | { readonly type: 'clear'; readonly line: number }
  | EvalCmd;

function parseTime(s: string, line: number): number {
  const t = s.trim();
  if (t === '0') return 0;
  const neg = t.startsWith('-');
  const d = parsePromDuration(neg ? t.slice(1) : t);
  if (d === undefined) throw new Error(`line ${line}: bad duration ${JSON.stringify(s)}`);
  return neg ? -d : d;
}

const PAT_LOAD = /^load(?:_(with_nhcb))?\s+(.+?)$/;
const PAT_INSTANT = /^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$/;
const PAT_RANGE = /^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$/;
const PAT_EXPECT = /^expect\s+(fail|warn|info|no_warn|no_info|ordered)(?:\s+(msg|regex):\s?(.*))?$/;
const PAT_EXPECT_STRING = /^expect\s+string\s+(.+)$/;
const PAT_EXPECT_RANGE = /^expect\s+range\s+vector\s+from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)$/;

/** Parses a test script into commands. Lines are trimmed; comment lines end blocks (as upstream). */
export function parseTestScript(text: string): Cmd[] {
  const lines = text.split('\n').map((l) => {
    const t = l.trim();
    return t.startsWith('#') ? '' : t;
  });
  const cmds: Cmd[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (l === '') continue;
    const lineNo = i + 1;
    const block = (): string[] => {
      const out: string[] = [];
      while (i + 1 < lines.length && lines[i + 1] !== '') {
        i++;
        out.push(lines[i]!);
      }
      return out;
    };
    if (l === 'clear') {
      cmds.push({ type: 'clear', line: lineNo });
      continue;
    }
    const load = PAT_LOAD.exec(l);
    if (load) {
      const intervalMs = parseTime(load[2]!, lineNo);
      cmds.push({
        type: 'load',
        line: lineNo,
        intervalMs,
        withNhcb: load[1] === 'with_nhcb',
        series: block().map(parseSeriesDesc),
      });
      continue;
    }
    const inst = PAT_INSTANT.exec(l);
    const range = inst ? undefined : PAT_RANGE.exec(l);
    if (!inst && !range) throw new Error(`line ${lineNo}: unknown command ${JSON.stringify(l)}`);
    const modifier = inst ? inst[1] : range![1];
    const expects: Expect[] = [];
    if (modifier === 'fail') expects.push({ kind: 'fail' });
    if (modifier === 'warn') expects.push({ kind: 'warn' });
    if (modifier === 'info') expects.push({ kind: 'info' });
    if (modifier === 'ordered') expects.push({ kind: 'ordered' });
    const series: SeriesDesc[] = [];
    let scalar: number | undefined;
    for (const b of block()) {
      const ex = PAT_EXPECT.exec(b);
      if (ex) {
        expects.push({
          kind: ex[1] as Expect['kind'],
          ...(ex[2] ? { match: { type: ex[2] as 'msg' | 'regex', text: unquoteExpect(ex[3]!.trim()) } } : {}),
        });
        continue;
      }
      const exs = PAT_EXPECT_STRING.exec(b);
      if (exs) {
        expects.push({ kind: 'string', stringValue: unquoteExpect(exs[1]!.trim()) });
        continue;
      }
      const exr = PAT_EXPECT_RANGE.exec(b);
      if (exr) {
        expects.push({
          kind: 'range',
          range: {
            from: parseTime(exr[1]!, lineNo),
            to: parseTime(exr[2]!, lineNo),
            step: parseTime(exr[3]!, lineNo),
          },
        });
        continue;
      }
      if (b.startsWith('expected_fail_message ')) {
        expects.push({
          kind: 'fail',
          match: { type: 'msg', text: b.slice('expected_fail_message '.length).trim() },
        });
        continue;
      }
      if (b.startsWith('expected_fail_regexp ')) {
        expects.push({
          kind: 'fail',
          match: { type: 'regex', text: b.slice('expected_fail_regexp '.length).trim() },
        });
        continue;
      }
      if (/^[+-]?(\d|\.\d|inf|nan)/i.test(b) && !b.includes('{') && !/\s/.test(b)) {
        scalar = parseNumberLiteral(b);
        continue;
      }
      series.push(parseSeriesDesc(b));
    }
    if (inst) {
      const at = parseTime(inst[2] ?? '0', lineNo);
      cmds.push({
        type: 'eval',
        line: lineNo,
        instant: true,
        query: inst[3]!,
        at,
        start: at,
        end: at,
        step: 0,
        expects,
        series,
        scalar,
      });
    } else {
      cmds.push({
        type: 'eval',
        line: lineNo,
        instant: false,
        query: range![5]!,
        at: 0,
        start: parseTime(range![2]!, lineNo),
        end: parseTime(range![3]!, lineNo),
        step: parseTime(range![4]!, lineNo),
        expects,
        series,
        scalar,
      });
    }
  }
  return cmds;
}

function unquoteExpect(s: string): string {
  if (s.length >= 2 && ((s.startsWith('"') && s.endsWith('"')) || (s.startsWith('`') && s.endsWith('`')))) {
    return s.startsWith('"') ? (JSON.parse(s) as string) : s.slice(1, -1);
  }
  return s;
}
