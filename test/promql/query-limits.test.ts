/**
 * What keeps one query from taking the server: RE2 matching (linear time, Go's syntax, the fast paths agree
 * with RE2), limits refused before allocating (subquery points, sample budget), deadlines inside step loops,
 * the parser's depth limit, a name regex evaluated over the caller's own names only, and the query worker
 * pool (queue bound, deadline, stop).
 */
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { RE2JS } from 're2js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { LabelMatcher, regexOfLiterals } from '../../src/model/labels.js';
import {
  MAX_EXPRESSION_DEPTH,
  ParseError,
  PromqlEngine,
  type Queryable,
  QueryTimeoutError,
  SubqueryResolutionError,
  TooManySamplesError,
  tenantQueryable,
} from '../../src/query/promql/index.js';
import { memoryTsdb } from '../../src/query/promql/test-script.js';
import { QueryPool } from '../../src/query/query-pool.js';
import { localQueryEndpoints, type Querier, type Storage } from '../../src/storage/index.js';

describe('label matchers match with RE2', () => {
  it.each([
    ['(?i)prod', ['prod', 'PROD', 'Prod'], ['dev']],
    ['(?i:pro)d', ['prod', 'PROd'], ['proD']],
    ['[[:digit:]]+', ['123'], ['12a']],
    ['\\Qa.b\\E', ['a.b'], ['axb']],
    ['a(?i)b(?-i)c', ['abc', 'aBc'], ['aBC', 'Abc']],
    ['(?P<x>a+)b', ['aab'], ['b']],
    ['a.b', ['a\nb', 'axb'], ['ab']],
  ])('%s', (re, yes, no) => {
    const m = new LabelMatcher('=~', 'x', re);
    for (const s of yes) expect(m.matches(s), s).toBe(true);
    for (const s of no) expect(m.matches(s), s).toBe(false);
    expect(m.value).toBe(re); // kept as written, for printing and for remote TSDBs
  });

  it('matches (.*.*)*X in linear time, where a backtracking engine never finishes', () => {
    const m = new LabelMatcher('=~', '__name__', '(.*.*)*X');
    expect(m.usesRegexEngine).toBe(true);
    expect(m.matches('a'.repeat(100_000))).toBe(false);
    expect(m.matches(`${'a'.repeat(100_000)}X`)).toBe(true);
  });

  it('rejects what RE2 rejects, with its message', () => {
    expect(() => new LabelMatcher('=~', 'x', 'a(b')).toThrow(/missing closing \)/);
    expect(() => new LabelMatcher('=~', 'x', '(?=a)')).toThrow(/invalid or unsupported Perl syntax/);
  });

  it('gives the same answers on the fast paths as RE2', () => {
    const piece = fc.constantFrom('job-1', 'gpu_', 'train_', 'a', '', 'x:y');
    const pattern = fc
      .array(fc.tuple(piece, fc.constantFrom('', '.*')), { minLength: 1, maxLength: 4 })
      .map((alts) => alts.map(([lit, tail]) => lit + tail).join('|'));
    const value = fc.constantFrom('job-1', 'job-12', 'gpu_util', 'train_loss', 'a', '', 'x:y', 'b', 'job-');
    fc.assert(
      fc.property(pattern, fc.array(value, { maxLength: 5 }), (p, values) => {
        const m = new LabelMatcher('=~', 'x', p);
        expect(m.usesRegexEngine).toBe(false);
        const re = RE2JS.compile(p, RE2JS.DOTALL);
        for (const v of values) expect(m.matches(v), `${p} on ${v}`).toBe(re.matches(v));
      }),
    );
    for (const p of ['.*', '.+']) {
      const m = new LabelMatcher('=~', 'x', p);
      for (const v of ['', 'a', '\n']) expect(m.matches(v)).toBe(RE2JS.compile(p, RE2JS.DOTALL).matches(v));
    }
    const names = ['a.b', 'c|d', 'plain'];
    const set = new LabelMatcher('=~', 'x', regexOfLiterals(names));
    for (const n of names) expect(set.matches(n)).toBe(true);
    expect(set.matches('axb')).toBe(false);
    expect(set.matches('c')).toBe(false);
  });
});

describe('engine limits', () => {
  let storage: Storage;
  const T0 = 1_700_000_000_000;

  beforeAll(async () => {
    storage = await memoryTsdb();
    for (const tenant of ['a', 'b']) {
      const b = new SeriesBatchBuilder();
      for (let s = 0; s < 20; s++) {
        b.addSeries({ __name__: `${tenant}_metric_${s}`, instance: `i${s}` });
        for (let i = 0; i < 100; i++) b.add(T0 + i * 15_000, i);
      }
      await storage.appender.append(tenant, b.build());
    }
  });

  afterAll(async () => {
    await storage?.close();
  });

  it('refuses a subquery over its points per series before evaluating it, naming it and its step', async () => {
    const engine = new PromqlEngine();
    const q = tenantQueryable(storage, 'a');
    const err = await engine.instantQuery(q, 'max_over_time(vector(1)[30d:1ms])', T0).catch((e) => e);
    expect(err).toBeInstanceOf(SubqueryResolutionError);
    expect(err).toMatchObject({ httpStatus: 422, errorType: 'execution' });
    expect(err.message).toBe(
      'subquery vector(1)[4w2d:1ms] would evaluate 2592000000 points per series at step 1ms, more than the limit of 100000 (query.max_subquery_points): use a larger subquery step or a shorter range',
    );
    const nested = 'max_over_time(max_over_time(max_over_time(vector(1)[1d:1s])[1d:1s])[1d:1s])';
    await expect(engine.instantQuery(q, nested, T0)).rejects.toThrow(SubqueryResolutionError);
    // At the limit it runs: [1d:1s] at one instant is 86,400 points.
    const r = await engine.instantQuery(q, 'count_over_time(vector(1)[1d:1s])', T0);
    expect(r.value).toMatchObject({ resultType: 'vector', samples: [{ v: 86_400 }] });
    await expect(
      new PromqlEngine({ maxSubqueryPoints: 86_399 }).instantQuery(
        q,
        'count_over_time(vector(1)[1d:1s])',
        T0,
      ),
    ).rejects.toThrow(SubqueryResolutionError);
  });

  it('refuses a selection whose series × steps exceed the sample budget before allocating them', async () => {
    const engine = new PromqlEngine({ maxSamples: 20 * 100 - 1 });
    const q = tenantQueryable(storage, 'a');
    const err = await engine
      .rangeQuery(q, '{__name__=~"a_metric_.*"}', T0, T0 + 99 * 15_000, 15_000)
      .catch((e) => e);
    expect(err).toBeInstanceOf(TooManySamplesError);
    expect(err.message).toBe('query processing would load too many samples into memory in query execution');
    expect(err.where).toBe('vector selector');
    const ok = new PromqlEngine({ maxSamples: 20 * 100 });
    await expect(
      ok.rangeQuery(q, '{__name__=~"a_metric_.*"}', T0, T0 + 99 * 15_000, 15_000),
    ).resolves.toBeDefined();
  });

  it('stops at its deadline inside a step loop, where one step scans a whole window', async () => {
    const engine = new PromqlEngine();
    const err = await engine
      .rangeQuery(
        tenantQueryable(storage, 'a'),
        'quantile_over_time(0.5, vector(1)[1d:1s])',
        T0,
        T0 + 10_000_000,
        1000,
        { timeoutMs: 200 },
      )
      .catch((e) => e);
    expect(err).toBeInstanceOf(QueryTimeoutError);
    expect(err.message).toMatch(/^query timed out in (subquery|evaluation)/);
  });

  it('takes a timeout that is not a whole number of milliseconds (what is left of a deadline)', async () => {
    const engine = new PromqlEngine();
    const r = await engine.instantQuery(tenantQueryable(storage, 'a'), 'vector(1)', T0, { timeoutMs: 899.1 });
    expect(r.value).toMatchObject({ resultType: 'vector', samples: [{ v: 1 }] });
  });

  it('refuses expressions nested deeper than its limit with a parse error (400)', async () => {
    const engine = new PromqlEngine();
    for (const q of [
      `${'('.repeat(10_000)}1${')'.repeat(10_000)}`,
      Array(20_000).fill('1').join(' + '),
      `${'-'.repeat(10_000)}1`,
      `${'abs('.repeat(5_000)}vector(1)${')'.repeat(5_000)}`,
      `vector(1)[${'('.repeat(5_000)}1s${')'.repeat(5_000)}:]`,
    ]) {
      const err: unknown = (() => {
        try {
          engine.parse(q);
          return undefined;
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(ParseError);
      expect(err).toMatchObject({ httpStatus: 400 });
      expect((err as Error).message).toContain(
        `expression nested deeper than ${MAX_EXPRESSION_DEPTH} levels`,
      );
    }
    const deep = MAX_EXPRESSION_DEPTH - 10;
    const r = await engine.instantQuery(
      tenantQueryable(storage, 'a'),
      `${'('.repeat(deep)}1${')'.repeat(deep)} + ${Array(deep).fill('1').join(' + ')}`,
      T0,
    );
    expect(r.value).toEqual({ resultType: 'scalar', t: T0, v: 1 + deep });
  });

  it("evaluates a name regex over the caller's names only, and selects them as literals", async () => {
    const seen: { listed: string[]; selected: string[] } = { listed: [], selected: [] };
    // The real storage, with what the engine asks of it written down.
    const recording = (inner: Queryable): Queryable => ({
      querier(minT: number, maxT: number): Querier {
        const q = inner.querier(minT, maxT);
        return {
          select: (matchers, hints, signal) => {
            seen.selected.push(...matchers.map(String));
            return q.select(matchers, hints, signal);
          },
          labelNames: (matchers, signal) => q.labelNames(matchers, signal),
          labelValues: async (name, matchers, signal) => {
            const values = await q.labelValues(name, matchers, signal);
            seen.listed.push(...values);
            return values;
          },
        };
      },
    });
    const engine = new PromqlEngine();
    const r = await engine.instantQuery(
      recording(tenantQueryable(storage, 'a')),
      '{__name__=~"(?i)[ab]_METRIC_1[0-9]"}',
      T0 + 99 * 15_000,
    );
    expect(r.value.resultType === 'vector' && r.value.samples.map((s) => s.labels.__name__).sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => `a_metric_1${i}`).sort(),
    );
    expect(seen.listed).toHaveLength(20);
    expect(seen.listed.every((n) => n.startsWith('a_'))).toBe(true);
    expect(seen.selected).toEqual([
      `__name__=~${JSON.stringify(Array.from({ length: 10 }, (_, i) => `a_metric_1${i}`).join('|'))}`,
    ]);
    // No name matches: nothing is selected at all.
    seen.selected.length = 0;
    const none = await engine.instantQuery(
      recording(tenantQueryable(storage, 'a')),
      '{__name__=~"(.*.*)*X"}',
      T0,
    );
    expect(none.value).toEqual({ resultType: 'vector', samples: [] });
    expect(seen.selected).toEqual([]);
  });
});

describe('query worker pool', () => {
  let storage: Storage;
  const T0 = 1_700_000_000_000;

  beforeAll(async () => {
    storage = await memoryTsdb();
    const b = new SeriesBatchBuilder().addSeries({ __name__: 'up', job_id: 'j' });
    for (let i = 0; i < 10; i++) b.add(T0 + i * 15_000, i);
    await storage.appender.append('t', b.build());
  });

  afterAll(async () => {
    await storage?.close();
  });

  const heavy = {
    kind: 'range',
    tenant: 't',
    query: 'quantile_over_time(0.5, vector(1)[1d:1s])',
    start: T0,
    end: T0 + 10_000_000,
    step: 1000,
    limit: 0,
  } as const;

  it('answers on a worker, bounds its queue, and stop() answers what runs and waits', async () => {
    const endpoints = localQueryEndpoints(storage);
    const pool = new QueryPool({ size: 1, maxQueued: 2, graceMs: 500, endpoints, engine: {} });
    try {
      const a = await pool.run({
        kind: 'instant',
        tenant: 't',
        query: 'up',
        time: T0 + 9 * 15_000,
        timeoutMs: 60_000,
        limit: 0,
      });
      expect(a.status).toBe(200);
      expect(JSON.parse(a.body)).toEqual({
        status: 'success',
        data: {
          resultType: 'vector',
          result: [{ metric: { __name__: 'up', job_id: 'j' }, value: [(T0 + 9 * 15_000) / 1000, '9'] }],
        },
      });
      const other = await pool.run({
        kind: 'instant',
        tenant: 'u',
        query: 'up',
        time: T0,
        timeoutMs: 60_000,
        limit: 0,
      });
      expect(JSON.parse(other.body).data.result).toEqual([]);

      const running = pool.run({ ...heavy, timeoutMs: 60_000 });
      const waiting = pool.run({ ...heavy, timeoutMs: 60_000 });
      const impatient = pool.run({ ...heavy, timeoutMs: 300 });
      expect(pool.busyWorkers).toBe(1);
      expect(pool.queueLength).toBe(2);
      const refused = await pool.run({ ...heavy, timeoutMs: 60_000 });
      expect(refused.status).toBe(503);
      expect(JSON.parse(refused.body)).toMatchObject({ errorType: 'unavailable' });
      expect(JSON.parse(refused.body).error).toMatch(/^too many queries: 1 running and 2 waiting/);
      // A query whose deadline passes while it waits leaves the queue with the timeout answer.
      expect(JSON.parse((await impatient).body)).toEqual({
        status: 'error',
        errorType: 'timeout',
        error: 'query timed out in the query queue',
      });
      expect(pool.queueLength).toBe(1);

      await pool.stop();
      for (const p of [running, waiting]) {
        const r = await p;
        expect(r.status).toBe(503);
        expect(JSON.parse(r.body)).toEqual({
          status: 'error',
          errorType: 'unavailable',
          error: 'the server is stopping',
        });
      }
      expect(pool.workerCount).toBe(0);
      expect(pool.terminatedWorkers).toBe(1);
    } finally {
      await pool.stop();
      endpoints.close();
    }
  }, 60_000);

  it.runIf(process.platform === 'linux')(
    'runs its workers at a lower CPU priority than the server thread',
    async () => {
      const endpoints = localQueryEndpoints(storage);
      const pool = new QueryPool({ size: 1, maxQueued: 1, graceMs: 500, endpoints, engine: {} });
      try {
        await pool.run({
          kind: 'instant',
          tenant: 't',
          query: 'vector(1)',
          time: T0,
          timeoutMs: 60_000,
          limit: 0,
        });
        // Field 19 of /proc/<pid>/task/<tid>/stat is the thread's nice value.
        const nice = (tid: string) =>
          Number(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]);
        const own = nice(String(process.pid));
        const values = readdirSync('/proc/self/task').map(nice);
        expect(values).toContain(Math.min(19, own + 10));
      } finally {
        await pool.stop();
        endpoints.close();
      }
    },
    60_000,
  );

  it('answers the timeout when a query overruns, and keeps answering afterwards', async () => {
    const endpoints = localQueryEndpoints(storage);
    // No grace: the worker is terminated at the deadline unless the engine's own timeout answer came first.
    const pool = new QueryPool({ size: 1, maxQueued: 4, graceMs: 0, endpoints, engine: {} });
    try {
      const r = await pool.run({ ...heavy, timeoutMs: 2000 });
      expect(r.status).toBe(503);
      expect(JSON.parse(r.body)).toMatchObject({ status: 'error', errorType: 'timeout' });
      const next = await pool.run({
        kind: 'instant',
        tenant: 't',
        query: 'vector(2)',
        time: T0,
        timeoutMs: 60_000,
        limit: 0,
      });
      expect(JSON.parse(next.body).data).toEqual({
        resultType: 'vector',
        result: [{ metric: {}, value: [T0 / 1000, '2'] }],
      });
    } finally {
      await pool.stop();
      endpoints.close();
    }
  }, 60_000);
});
