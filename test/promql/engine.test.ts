/**
 * The engine's own contract beyond Prometheus's test files: parse errors with positions, Go-regex
 * translation, limits and cancellation, tenant scoping, and rollup reads agreeing with raw reads.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import {
  ExecutionError,
  ParseError,
  PromqlEngine,
  parseExpr,
  QueryCanceledError,
  QueryTimeoutError,
  TooManySamplesError,
  TooManySeriesError,
  tenantQueryable,
} from '../../src/query/promql/index.js';
import { quantileOf } from '../../src/query/promql/range-functions.js';
import { translateGoRegex } from '../../src/query/promql/regex.js';
import { memoryTsdb } from '../../src/query/promql/test-script.js';
import type { Storage } from '../../src/storage/index.js';

function parseError(q: string): string {
  try {
    parseExpr(q);
  } catch (err) {
    expect(err).toBeInstanceOf(ParseError);
    return (err as Error).message;
  }
  throw new Error(`${q} parsed`);
}

describe('parse errors as Prometheus prints them', () => {
  it.each([
    ['sum(rate(x[5m])', '1:16: parse error: unclosed left parenthesis'],
    ['foo{a="b"', '1:10: parse error: unexpected end of input inside braces'],
    ['x[5m', '1:5: parse error: unclosed left bracket'],
    ['{}', '1:1: parse error: vector selector must contain at least one non-empty matcher'],
    ['{a=~".*"}', '1:1: parse error: vector selector must contain at least one non-empty matcher'],
    ['foo offset 1m offset 2m', '1:15: parse error: offset may not be set multiple times'],
    ['foo @ 1 @ 2', '1:9: parse error: @ <timestamp> may not be set multiple times'],
    ['nope(foo)', '1:1: parse error: unknown function with name "nope"'],
    [
      'rate(foo)',
      '1:6: parse error: expected type range vector in call to function "rate", got instant vector',
    ],
    ['abs(foo, bar)', '1:1: parse error: expected 1 argument(s) in call to "abs", got 2'],
    ['foo[5m] + 1', '1:1: parse error: binary expression must contain only scalar and instant vector types'],
    ['1 > 2', '1:1: parse error: comparisons between scalars must use BOOL modifier'],
    ['foo and 1', '1:1: parse error: set operator "and" not allowed in binary scalar expression'],
    ['foo + bool bar', '1:5: parse error: bool modifier can only be used on comparison operators'],
    ['(foo)[5m]', '1:6: parse error: ranges only allowed for vector selectors'],
    ['foo{a="b"}{c="d"}', '1:11: parse error: unexpected "{"'],
    [
      'topk(foo)',
      '1:1: parse error: wrong number of arguments for aggregate expression provided, expected 2, got 1',
    ],
    ['foo +\n  bar baz', '2:7: parse error: unexpected identifier "baz"'],
    [
      'foo{a="b" c="d"}',
      '1:11: parse error: unexpected identifier "c" in label matching, expected "," or "}"',
    ],
    ['foo{a=~"("}', expect.stringMatching(/^1:8: parse error: invalid regular expression "\(":/)],
    ['1.2.3', '1:1: parse error: bad number or duration syntax: "1.2.3"'],
  ])('%s', (q, message) => {
    expect(parseError(q)).toEqual(message);
  });

  it('parses what Prometheus parses', () => {
    for (const q of [
      'sum by (job) (rate(x[5m])) / on(job) group_left(team) max by (job, team) (y)',
      'sum(x) without (a, "b.c")',
      '{"metric.with.dots", a="b"}',
      'x offset -5m @ end()',
      'rate(x[5m:30s] offset 1m @ 1700000000)',
      'x[1h30m:] ',
      'histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))',
      '-x ^ 2 * 3',
      'x > bool on(a) group_left y',
      'label_replace(x, "a", "$1", "b", "(.*)")',
      'x[step()+1m] offset min_of(range(), 5m)',
      'a + fill(0) b',
    ]) {
      expect(() => parseExpr(q), q).not.toThrow();
    }
  });

  it('binds unary minus like Prometheus: -2 ^ 2 is -4', () => {
    const e = parseExpr('-2 ^ 2');
    expect(e.type).toBe('UnaryExpr');
  });
});

describe('quantile (quickselect) agrees with the sort-based definition', () => {
  /** Prometheus's quantile: sort with NaN first, interpolate between the two ranks around q·(n-1). */
  function reference(q: number, xs: number[]): number {
    if (xs.length === 0 || Number.isNaN(q)) return Number.NaN;
    if (q < 0) return Number.NEGATIVE_INFINITY;
    if (q > 1) return Number.POSITIVE_INFINITY;
    const s = [...xs].sort((a, b) =>
      Number.isNaN(a) ? (Number.isNaN(b) ? 0 : -1) : Number.isNaN(b) ? 1 : a - b,
    );
    const rank = q * (s.length - 1);
    const lo = Math.max(0, Math.floor(rank));
    const hi = Math.min(s.length - 1, lo + 1);
    const w = rank - Math.floor(rank);
    return s[lo]! * (1 - w) + s[hi]! * w;
  }

  it('for any values (NaN and infinities included) and any q', () => {
    fc.assert(
      fc.property(
        fc.double({ min: -0.2, max: 1.2, noNaN: false }),
        fc.array(fc.oneof(fc.double(), fc.integer({ min: -3, max: 3 }).map(Number)), { maxLength: 40 }),
        (q, xs) => {
          const got = quantileOf(q, Float64Array.from(xs), xs.length);
          const want = reference(q, xs);
          expect(Object.is(got, want) || Math.abs(got - want) <= 1e-9 * Math.max(1, Math.abs(want))).toBe(
            true,
          );
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('Go RE2 syntax in matchers', () => {
  it.each([
    ['(?i)prod', ['prod', 'PROD', 'Prod'], ['dev']],
    ['(?i:pro)d', ['prod', 'PROd'], ['proD']],
    ['[[:digit:]]+', ['123'], ['12a']],
    ['\\Qa.b\\E', ['a.b'], ['axb']],
    ['a(?i)b(?-i)c', ['abc', 'aBc'], ['aBC', 'Abc']],
    ['[a-c](?i:[x-z])', ['ax', 'cZ'], ['dX']],
  ])('%s', (re, yes, no) => {
    const js = new RegExp(`^(?:${translateGoRegex(re)})$`, 's');
    for (const s of yes) expect(js.test(s), s).toBe(true);
    for (const s of no) expect(js.test(s), s).toBe(false);
  });
});

describe('limits, cancellation, tenants and rollups', () => {
  let storage: Storage;
  const T0 = 1_699_999_200_000; // on the hour, so step-aligned windows are rollup-aligned

  beforeAll(async () => {
    storage = await memoryTsdb();
    for (const tenant of ['a', 'b']) {
      const b = new SeriesBatchBuilder();
      for (let s = 0; s < 50; s++) {
        b.addSeries({ __name__: 'load', instance: `i${s}`, job: s % 2 ? 'even' : 'odd' });
        // Off the second so no sample sits on a rollup window edge.
        for (let i = 0; i < 2880; i++)
          b.add(T0 + i * 15_000 + 137 + s, Math.sin(i / 40 + s) * 10 + s + (tenant === 'b' ? 1000 : 0));
      }
      storage.appender.append(tenant, b.build());
    }
  });

  afterAll(async () => {
    await storage?.close();
  });

  const end = T0 + 2879 * 15_000;

  it('stops a query that holds too many samples', async () => {
    const engine = new PromqlEngine({ maxSamples: 1000 });
    await expect(engine.rangeQuery(tenantQueryable(storage, 'a'), 'load', T0, end, 60_000)).rejects.toThrow(
      TooManySamplesError,
    );
  });

  it('stops a selector that selects too many series', async () => {
    const engine = new PromqlEngine({ maxSeries: 10 });
    await expect(engine.instantQuery(tenantQueryable(storage, 'a'), 'load', end)).rejects.toThrow(
      TooManySeriesError,
    );
    expect(
      (await engine.instantQuery(tenantQueryable(storage, 'a'), 'load{instance="i1"}', end)).value.resultType,
    ).toBe('vector');
  });

  it('times out and can be cancelled', async () => {
    const engine = new PromqlEngine();
    const q = 'sum by (job) (rate(load[5m]))';
    await expect(
      engine.rangeQuery(tenantQueryable(storage, 'a'), q, T0, end, 15_000, { timeoutMs: -1 }),
    ).rejects.toThrow(QueryTimeoutError);
    const ac = new AbortController();
    ac.abort();
    await expect(
      engine.rangeQuery(tenantQueryable(storage, 'a'), q, T0, end, 15_000, { signal: ac.signal }),
    ).rejects.toThrow(QueryCanceledError);
  });

  it('gives the event loop turns while it evaluates', async () => {
    const engine = new PromqlEngine({ yieldEveryMs: 0 });
    let ranDuringQuery = false;
    const query = engine.rangeQuery(
      tenantQueryable(storage, 'a'),
      'max_over_time(load[5m])',
      T0,
      end,
      60_000,
    );
    setImmediate(() => {
      ranDuringQuery = true;
    });
    let finished = false;
    void query.then(() => {
      finished = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(ranDuringQuery).toBe(true);
    expect(finished).toBe(false);
    await query;
  });

  it('reports evaluation errors as ExecutionError', async () => {
    const engine = new PromqlEngine();
    await expect(
      engine.instantQuery(tenantQueryable(storage, 'a'), 'label_replace(load, "x", "", "job", "(")', end),
    ).rejects.toThrow(ExecutionError);
  });

  it('scopes to the tenant and hides the tenant label; null is every tenant', async () => {
    const engine = new PromqlEngine();
    const a = await engine.instantQuery(tenantQueryable(storage, 'a'), 'count(load)', end);
    const all = await engine.instantQuery(tenantQueryable(storage, null), 'count by (tenant) (load)', end);
    expect(a.value.resultType === 'vector' && a.value.samples[0]!.v).toBe(50);
    expect(all.value.resultType === 'vector' && all.value.samples.map((s) => s.labels.tenant).sort()).toEqual(
      ['a', 'b'],
    );
    const labels = await engine.instantQuery(tenantQueryable(storage, 'a'), 'load{instance="i3"}', end);
    expect(labels.value.resultType === 'vector' && labels.value.samples[0]!.labels).toEqual({
      __name__: 'load',
      instance: 'i3',
      job: 'even',
    });
  });

  it.each([
    'min_over_time',
    'max_over_time',
    'sum_over_time',
    'count_over_time',
    'avg_over_time',
    'last_over_time',
  ])('%s from rollup tiers equals the raw answer', async (fn) => {
    const engine = new PromqlEngine();
    const q = `${fn}(load[10m])`;
    const source = tenantQueryable(storage, 'a');
    const raw = await engine.rangeQuery(source, q, T0 + 3_600_000, end - 60_000, 60_000);
    const rolled = await engine.rangeQuery(source, q, T0 + 3_600_000, end - 60_000, 60_000, {
      rollups: true,
    });
    expect(raw.value.resultType).toBe('matrix');
    if (raw.value.resultType !== 'matrix' || rolled.value.resultType !== 'matrix') return;
    expect(rolled.value.series.length).toBe(raw.value.series.length);
    for (let k = 0; k < raw.value.series.length; k++) {
      const r = raw.value.series[k]!;
      const o = rolled.value.series[k]!;
      expect(o.labels).toEqual(r.labels);
      expect([...o.timestamps]).toEqual([...r.timestamps]);
      for (let i = 0; i < r.values.length; i++) expect(o.values[i]).toBeCloseTo(r.values[i]!, 6);
    }
    // The rollup read touches fewer points than the raw one.
    expect(rolled.stats.samplesRead).toBeLessThan(raw.stats.samplesRead);
  });

  it('does not read rollups when the steps are not aligned to them', async () => {
    const engine = new PromqlEngine();
    const source = tenantQueryable(storage, 'a');
    const from = T0 + 3_600_000 + 20_000;
    const raw = await engine.rangeQuery(source, 'sum_over_time(load[10m])', from, end - 60_000, 60_000);
    const rolled = await engine.rangeQuery(source, 'sum_over_time(load[10m])', from, end - 60_000, 60_000, {
      rollups: true,
    });
    expect(rolled.stats.samplesRead).toBe(raw.stats.samplesRead);
    expect(rolled.value).toEqual(raw.value);
  });
});
