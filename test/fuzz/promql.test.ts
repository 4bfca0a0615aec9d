/**
 * Property tests of PromQL (issue 16): grammar-generated queries (selectors with every matcher kind and
 * hostile regular expressions, ranges, subqueries down to 1 ms steps, offsets and @, every function with
 * right and wrong arities, aggregations with parameters and grouping, binary operators with matching and
 * bool, literals at the edges of floats), some of them mutated character by character, and some nested
 * tens of thousands deep.
 *
 * Every string goes through the parser; a share is also evaluated (instant and range queries) over a small
 * in-memory TSDB with the server's kind of limits. Invariants: each parses or is refused with a ParseError;
 * each evaluation answers or is refused with a 4xx PromqlError (or stops at its own deadline with a timeout,
 * as Prometheus answers 503); nothing else is thrown (no stack overflow, no TypeError); no case takes longer
 * than CASE_DEADLINE_MS. The counts are printed; FUZZ_RUNS scales them (harness.ts).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import {
  ParseError,
  PromqlEngine,
  parseExpr,
  type Queryable,
  tenantQueryable,
} from '../../src/query/promql/index.js';
import { memoryTsdb } from '../../src/query/promql/test-script.js';
import type { Storage } from '../../src/storage/index.js';
import {
  CASE_DEADLINE_MS,
  FuzzStats,
  fcParams,
  HOSTILE_RUNS,
  isQueryRefusal,
  RUNS,
  restoreStackTraces,
  TEST_TIMEOUT_MS,
  withoutStackTraces,
} from '../support/fuzz-harness.js';
import { deepQueryOf, PROMQL_SERIES_END, queryOf } from '../support/promql-grammar.js';

vi.setConfig({ testTimeout: TEST_TIMEOUT_MS });

/** Queries evaluated (the rest only parsed): an evaluation costs ~50× a parse. */
const EVAL_RUNS = Math.max(1, Math.round(RUNS / 10));
const T0 = 1_700_000_000_000;
const END = PROMQL_SERIES_END;

let storage: Storage;
let source: Queryable;
const engine = new PromqlEngine({
  // Small budgets, as a cautious operator would set them: the fuzz checks that each is enforced, not that
  // big queries run.
  maxSamples: 200_000,
  timeoutMs: 1_000,
  maxSeries: 10_000,
  maxSubqueryPoints: 2_000,
});
const stats: FuzzStats[] = [];

beforeAll(async () => {
  withoutStackTraces();
  storage = await memoryTsdb();
  const b = new SeriesBatchBuilder();
  const every = (labels: Record<string, string>, value: (i: number) => number) => {
    b.addSeries(labels);
    for (let i = 0; i <= 240; i++) b.add(T0 + i * 15_000, value(i));
  };
  for (const job of ['j1', 'j2'])
    for (const rank of ['0', '1']) {
      every({ __name__: 'train_loss', job_id: job, rank }, (i) => 2 / (1 + i));
      every({ __name__: 'train_step_total', job_id: job, rank }, (i) => i * 10);
      every({ __name__: 'gpu_util', job_id: job, rank, gpu: rank }, (i) => (i % 7) / 7);
    }
  for (const le of ['0.1', '1', '10', '+Inf'])
    every(
      { __name__: 'latency_bucket', le, job: 'api' },
      (i) => i * Number.parseFloat(le === '+Inf' ? '20' : le),
    );
  every({ __name__: 'up', job: 'node', instance: 'a:1' }, () => 1);
  every({ __name__: 'weird', job: 'x', v: 'NaN' }, (i) =>
    i % 3 === 0 ? Number.NaN : i % 5 === 0 ? Infinity : -i,
  );
  await storage.appender.append('fuzz', b.build());
  source = tenantQueryable(storage, 'fuzz');
});

afterAll(async () => {
  restoreStackTraces();
  await storage?.close();
  for (const s of stats) console.log(`fuzz ${s.summary()}`);
});

describe('PromQL', () => {
  it(`parses ${RUNS} generated queries or refuses them with a ParseError, none slow`, () => {
    const s = new FuzzStats('PromQL parse');
    stats.push(s);
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const q = queryOf(seed);
        s.run(
          () => `seed ${seed}: ${q}`,
          () => {
            try {
              parseExpr(q);
            } catch (err) {
              if (err instanceof ParseError) throw err;
              throw new Error(
                `the parser threw ${(err as Error).constructor.name}: ${(err as Error).message}`,
              );
            }
          },
          (err) => err instanceof ParseError,
        );
      }),
      fcParams(RUNS),
    );
    expect(s.total).toBe(RUNS);
    expect(s.slowestMs, s.slowestInput).toBeLessThan(CASE_DEADLINE_MS);
    // The grammar mostly writes valid PromQL: most queries must get past the parser to test the engine.
    expect(s.accepted).toBeGreaterThan(RUNS / 3);
  });

  it(`parses ${HOSTILE_RUNS} queries nested up to 20,000 deep: refused with a ParseError, none slow`, () => {
    const s = new FuzzStats('PromQL deep nesting');
    stats.push(s);
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const q = deepQueryOf(seed);
        s.run(
          () => `seed ${seed}: ${q.slice(0, 100)}… (${q.length} characters)`,
          () => void parseExpr(q),
          (err) => err instanceof ParseError,
        );
      }),
      fcParams(HOSTILE_RUNS),
    );
    expect(s.slowestMs, s.slowestInput).toBeLessThan(CASE_DEADLINE_MS);
  });

  it(`evaluates ${EVAL_RUNS} generated queries: an answer or a 4xx (or its own timeout), none past the deadline`, async () => {
    const s = new FuzzStats('PromQL evaluate');
    stats.push(s);
    let timeouts = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer(), async (seed) => {
        const q = queryOf(seed);
        const range = seed % 4 === 0;
        await s.runAsync(
          () => `seed ${seed} (${range ? 'range' : 'instant'}): ${q}`,
          async () => {
            try {
              if (range) await engine.rangeQuery(source, q, END - 600_000, END, 60_000);
              else await engine.instantQuery(source, q, END - (seed & 0xff) * 1000);
            } catch (err) {
              if ((err as Error).constructor.name === 'QueryTimeoutError') timeouts++;
              throw err;
            }
          },
          isQueryRefusal,
        );
      }),
      fcParams(EVAL_RUNS),
    );
    console.log(`fuzz PromQL evaluate: ${timeouts} stopped at their 1 s deadline`);
    expect(s.total).toBe(EVAL_RUNS);
    expect(s.slowestMs, s.slowestInput).toBeLessThan(CASE_DEADLINE_MS);
    expect(s.accepted).toBeGreaterThan(EVAL_RUNS / 5);
  });
});
