/**
 * exprToString: every query of Prometheus's own test files (testdata/promql) prints to PromQL that parses back
 * to the same tree (positions and the written-vs-braced metric name aside), and printing is stable.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Expr } from './ast.js';
import { parseExpr } from './parser.js';
import { exprToString, formatDuration } from './print.js';

const TESTDATA = path.resolve(import.meta.dirname, '../../../testdata/promql');
const PAT_INSTANT = /^eval(?:_(?:fail|warn|ordered|info))?\s+instant\s+(?:at\s+(?:.+?))?\s+(.+)$/;
const PAT_RANGE =
  /^eval(?:_(?:fail|warn|info))?\s+range\s+from\s+(?:.+)\s+to\s+(?:.+)\s+step\s+(?:.+?)\s+(.+)$/;

/** The tree as plain data without positions: what evaluation depends on. */
function shape(e: Expr): unknown {
  return JSON.parse(
    JSON.stringify(e, (key, value) => {
      if (key === 'pos' || key === 'end') return undefined;
      if (key === 'func') return value.name;
      if (
        value &&
        typeof value === 'object' &&
        'type' in value &&
        'name' in value &&
        'value' in value &&
        'matches' in value
      )
        return [value.name, value.type, value.value];
      if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
      if (typeof value === 'number' && Object.is(value, -0)) return '-0';
      return value;
    }),
  );
}

function normalize(e: Expr): unknown {
  const s = shape(e) as Record<string, unknown>;
  const strip = (o: unknown): unknown => {
    if (Array.isArray(o)) return o.map(strip);
    if (o && typeof o === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(o)) {
        if (k === 'name' && (o as { type?: string }).type === 'VectorSelector') continue;
        if (k === 're') continue;
        out[k] = strip(v);
      }
      return out;
    }
    return o;
  };
  return strip(s);
}

function corpus(): string[] {
  const out: string[] = [];
  for (const f of readdirSync(TESTDATA).filter((n) => n.endsWith('.test'))) {
    for (const raw of readFileSync(path.join(TESTDATA, f), 'utf8').split('\n')) {
      const line = raw.trim();
      const m = PAT_INSTANT.exec(line) ?? PAT_RANGE.exec(line);
      if (m) out.push(m[1]!);
    }
  }
  return out;
}

describe('exprToString', () => {
  it('round-trips every parseable query of the upstream PromQL test files', () => {
    const queries = corpus();
    let parsed = 0;
    for (const q of queries) {
      let e: Expr;
      try {
        e = parseExpr(q);
      } catch {
        continue; // eval_fail cases
      }
      parsed++;
      const printed = exprToString(e);
      let again: Expr;
      try {
        again = parseExpr(printed);
      } catch (err) {
        throw new Error(`${q}\n printed as ${printed}\n which does not parse: ${(err as Error).message}`);
      }
      expect(normalize(again), `${q}\n printed as ${printed}`).toEqual(normalize(e));
      expect(exprToString(again)).toBe(printed);
    }
    expect(parsed).toBeGreaterThan(500);
  });

  it.each([
    ['-2 ^ 2', '-2 ^ 2'],
    ['(-2) ^ 2', '(-2) ^ 2'],
    ['2 ^ 3 ^ 2', '2 ^ 3 ^ 2'],
    ['(2 ^ 3) ^ 2', '(2 ^ 3) ^ 2'],
    ['a - (b - c)', 'a - (b - c)'],
    ['a - b - c', 'a - b - c'],
    ['sum without () (x)', 'sum without () (x)'],
    ['sum by () (x)', 'sum(x)'],
    ['a + on() b', 'a + on() b'],
    ['a * ignoring(x) group_left(y, z) b', 'a * ignoring(x) group_left(y, z) b'],
    ['a > bool on(x) group_right b', 'a > bool on(x) group_right() b'],
    ['a * on(x) group_left() (b)', 'a * on(x) group_left() (b)'],
    ['x[90s] offset -1h30m @ 1700000000.5', 'x[1m30s] offset -1h30m @ 1700000000.5'],
    ['x @ start() offset 5m', 'x offset 5m @ start()'],
    ['rate(x[5m+30s])', 'rate(x[5m + 30s])'],
    ['x offset step()', 'x offset step()'],
    ['{"my.metric", "some.label"="v\\n"}', '{__name__="my.metric", "some.label"="v\\n"}'],
    ['{__name__="sum"}', '{__name__="sum"}'],
    // A regex prints as written (RE2 syntax), as Prometheus prints it.
    ['x{a=~"(?i)ab"}', 'x{a=~"(?i)ab"}'],
    ['vector(5m)', 'vector(5m)'],
    ['-Inf', '-Inf'],
    ['NaN', 'NaN'],
    ['1e300 * -0', '1e+300 * -0'],
    ['max_over_time(rate(x[1m])[5m:])', 'max_over_time(rate(x[1m])[5m:])'],
    ['(a + b)[5m:1m]', '(a + b)[5m:1m]'],
    ['label_replace(x, "dst", "$1", "src", "(.*)")', 'label_replace(x, "dst", "$1", "src", "(.*)")'],
  ])('%s prints as %s', (q, want) => {
    const printed = exprToString(parseExpr(q));
    expect(printed).toBe(want);
    expect(normalize(parseExpr(printed))).toEqual(normalize(parseExpr(q)));
  });

  it('formats durations as Prometheus does', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(90_000)).toBe('1m30s');
    expect(formatDuration(3_600_000 * 24 * 8 + 1)).toBe('1w1d1ms');
  });
});
