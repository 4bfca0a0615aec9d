/**
 * Rules off the event loop that acknowledges writes (issue 15): the server evaluates recording and alerting
 * rules' PromQL on its query worker pool, so a heavy rule does not hold up an ingest acknowledgement. Before,
 * the engine ran on the main thread without yielding within a rule (rule-consistency.test.ts says why), so
 * every write waited for the whole evaluation of a heavy rule.
 *
 * The server test asserts an event ordering, not a duration: the acknowledgement of a write sent once the
 * evaluation has started arrives while that evaluation is still in flight.
 *
 * The pool tests check that a rule's expression evaluated on a worker gives what the same expression gives on
 * this thread (samples, the scalar case, and the errors a rule's `lastError` shows), and how rules share the
 * pool with the API's queries: never refused for a full queue, ahead of the queries waiting, deadline enforced.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localRuleEvaluator } from '../../src/alerting/index.js';
import { loadConfig } from '../../src/config/index.js';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import { QueryPool } from '../../src/query/index.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { localQueryEndpoints, MemoryStorage } from '../../src/storage/index.js';
import { tempDir, waitFor } from '../support/helpers.js';

/**
 * Heavy but within every limit (each subquery stays under `query.max_subquery_points`): each term takes a
 * quantile of a 3,600-point window at each of 1,440 steps, about 0.2 s of CPU on this machine once compiled,
 * several times that when the machine is busy. Its value is known: each window holds every residue mod 97, so
 * term i is 96 + i, and the sum of the six is 591.
 */
const HEAVY_EXPR = Array.from(
  { length: 6 },
  (_, i) => `max_over_time(quantile_over_time(1, vector(time() % 97 + ${i})[1h:1s])[1d:1m])`,
).join(' + ');
const HEAVY_RECORD = 'heavy_rule:quantiles:sum';

function frame(sequence: number, t: number): Buffer {
  const b = new SeriesBatchBuilder();
  b.addSeries({ __name__: 'rules_ack_probe', job_id: 'rules-ack', rank: '0' }).add(t, sequence);
  return Buffer.from(
    new NativeEncoder().encodeFrame({ sourceId: 'rules-ack', sequence, batch: b.build(), events: [] }),
  );
}

describe('a heavy rule in a running server', () => {
  let tw: Trainwatch;

  beforeAll(async () => {
    const dir = tempDir('tw-rules-off-main-');
    const rules = path.join(dir, 'heavy.rules.yml');
    writeFileSync(
      rules,
      `groups:\n  - name: heavy\n    rules:\n      - record: ${HEAVY_RECORD}\n        expr: ${HEAVY_EXPR}\n`,
    );
    tw = await startTrainwatch(
      loadConfig({
        flags: {
          listen: '127.0.0.1:0',
          data_dir: path.join(dir, 'data'),
          auth: { anonymous_scopes: ['ingest', 'read'] },
          detectors: { enabled: false },
          query: { workers: 1 },
          // The test evaluates the group itself; the timer's evaluations would only overlap with it.
          alerting: { rule_files: [rules], evaluation_interval: '1h' },
        },
      }),
      pino({ level: 'silent' }),
    );
  }, 60_000);

  afterAll(async () => {
    await tw?.stop();
  });

  async function ingest(sequence: number): Promise<void> {
    const res = await fetch(`${tw.url}/api/v1/ingest`, {
      method: 'POST',
      headers: { 'content-type': NATIVE_CONTENT_TYPE },
      body: frame(sequence, Date.now()),
    });
    expect(res.status, await res.text()).toBe(200);
  }

  it('acknowledges a write while the rule is still being evaluated, and records its result', async () => {
    const rules = tw.alerting!.rules!;
    // Rules run per tenant with data: one sample makes `default` one. Evaluating until the result is recorded
    // also warms what the measured evaluation needs (the tenant list, the query worker).
    await ingest(1);
    await waitFor(
      'the heavy rule to record its result',
      async () => {
        await rules.evaluateAll();
        const now = Date.now();
        const set = await tw.storage!.querier('default', now - 3_600_000, now + 1000).select([]);
        return set.series.some((s) => s.labels.__name__ === HEAVY_RECORD) || undefined;
      },
      60_000,
    );

    let evaluating = true;
    const evaluation = rules.evaluateAll().finally(() => {
      evaluating = false;
    });
    await ingest(2);
    // The ordering: the write was acknowledged before the rule's evaluation ended.
    const ackedWhileEvaluating = evaluating;
    await evaluation;
    expect(ackedWhileEvaluating).toBe(true);

    // The evaluation went on to its end and was recorded correctly.
    const res = await fetch(`${tw.url}/api/v1/rules`);
    const body = (await res.json()) as { data: { groups: { rules: Record<string, unknown>[] }[] } };
    const rule = body.data.groups[0]!.rules[0];
    expect(rule).toMatchObject({ name: HEAVY_RECORD, health: 'ok', type: 'recording' });
    const q = await fetch(`${tw.url}/api/v1/query?${new URLSearchParams({ query: HEAVY_RECORD })}`);
    expect(((await q.json()) as { data: { result: unknown } }).data.result).toEqual([
      { metric: { __name__: HEAVY_RECORD }, value: [expect.any(Number), '591'] },
    ]);
  }, 120_000);
});

describe('rule expressions on the query worker pool', () => {
  const T0 = 1_700_000_000_000;
  const storage = new MemoryStorage();
  const endpoints = localQueryEndpoints(storage);
  let pool: QueryPool;

  beforeAll(async () => {
    const b = new SeriesBatchBuilder();
    for (const gpu of ['0', '1']) {
      b.addSeries({ __name__: 'gpu_temperature_celsius', job_id: 'j', gpu });
      for (let i = 0; i < 10; i++) b.add(T0 + i * 15_000, gpu === '0' ? 90 : 60 + i);
    }
    await storage.appender.append('t', b.build());
    pool = new QueryPool({
      size: 1,
      maxQueued: 1,
      graceMs: 500,
      endpoints,
      engine: {},
      registry: new Registry(),
    });
  });

  afterAll(async () => {
    await pool?.stop();
    endpoints.close();
  });

  const settle = (p: Promise<unknown>) =>
    p.then(
      (v) => ({ ok: true as const, v }),
      (err: Error) => ({ ok: false as const, error: err.message }),
    );

  it('gives what the same expression gives on this thread: samples, scalars and errors', async () => {
    const local = localRuleEvaluator(storage);
    const at = T0 + 9 * 15_000;
    const cases = [
      'gpu_temperature_celsius > 80',
      'avg by (job_id) (gpu_temperature_celsius)',
      'rate(gpu_temperature_celsius[1m])',
      'scalar(count(gpu_temperature_celsius))',
      'gpu_temperature_celsius offset 1h',
      // Errors a rule's lastError shows: a parse error, a range vector, a function's error.
      'gpu_temperature_celsius >',
      'gpu_temperature_celsius[5m]',
      'label_replace(gpu_temperature_celsius, "x", "$1", "gpu", "(")',
    ];
    for (const expr of cases) {
      const onWorker = await settle(
        pool.evaluateRule({ tenant: 't', query: expr, time: at, timeoutMs: 30_000 }),
      );
      const here = await settle(local.evaluate('t', expr, at));
      expect(onWorker, expr).toEqual(here);
    }
    const hot = await pool.evaluateRule({
      tenant: 't',
      query: 'gpu_temperature_celsius > 80',
      time: at,
      timeoutMs: 30_000,
    });
    expect(hot).toEqual([
      { labels: { __name__: 'gpu_temperature_celsius', job_id: 'j', gpu: '0' }, t: at, v: 90 },
    ]);
    // A rule sees its own tenant's series only.
    expect(
      await pool.evaluateRule({ tenant: 'u', query: 'gpu_temperature_celsius', time: at, timeoutMs: 30_000 }),
    ).toEqual([]);
    expect((await settle(local.evaluate('t', 'gpu_temperature_celsius >', at))).ok).toBe(false);
  }, 60_000);

  it('is never refused for a full queue, runs ahead of waiting API queries, and keeps its deadline', async () => {
    const order: string[] = [];
    // Keeps the one worker busy for about a second (the engine stops it at its deadline).
    const busy = pool
      .run({
        kind: 'range',
        tenant: 't',
        query: 'quantile_over_time(0.5, vector(1)[1d:1s])',
        start: T0,
        end: T0 + 10_000_000,
        step: 1000,
        limit: 0,
        timeoutMs: 1000,
      })
      .then(() => order.push('busy'));
    const query = pool
      .run({
        kind: 'instant',
        tenant: 't',
        query: 'gpu_temperature_celsius',
        time: T0,
        limit: 0,
        timeoutMs: 30_000,
      })
      .then((a) => {
        expect(a.status).toBe(200);
        order.push('query');
      });
    expect(pool.queueLength).toBe(1);
    // The queue is full: an API query is refused, a rule waits, ahead of the query already waiting.
    const refused = await pool.run({
      kind: 'instant',
      tenant: 't',
      query: '1',
      time: T0,
      limit: 0,
      timeoutMs: 30_000,
    });
    expect(refused.status).toBe(503);
    const rule = pool
      .evaluateRule({ tenant: 't', query: 'count(gpu_temperature_celsius)', time: T0, timeoutMs: 30_000 })
      .then((samples) => {
        expect(samples).toEqual([{ labels: {}, t: T0, v: 2 }]);
        order.push('rule');
      });
    expect(pool.queueLength).toBe(2);
    await Promise.all([busy, query, rule]);
    expect(order).toEqual(['busy', 'rule', 'query']);

    // A rule that overruns its deadline fails with the timeout, as an API query would.
    const slow = await settle(
      pool.evaluateRule({
        tenant: 't',
        query: HEAVY_EXPR,
        time: T0,
        timeoutMs: 300,
      }),
    );
    expect(slow).toMatchObject({ ok: false, error: expect.stringMatching(/timed out/) });
  }, 60_000);
});
