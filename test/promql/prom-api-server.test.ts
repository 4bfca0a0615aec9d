/**
 * The Prometheus API as the `query` role serves it in the whole program (every role in this process):
 * samples ingested through the native protocol become queryable with PromQL at /api/v1/query(_range), and
 * the `trainwatch promql-test` command runs Prometheus's test files from the built CLI.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { CLI, REPO_ROOT, tempDir, waitFor } from '../support/helpers.js';

let tw: Trainwatch;
const T0 = Math.floor((Date.now() - 10 * 60_000) / 15_000) * 15_000;

beforeAll(async () => {
  const config = loadConfig({
    flags: {
      listen: '127.0.0.1:0',
      data_dir: tempDir(),
      processor: { checkpoint_interval_ms: 100 },
      auth: { anonymous_scopes: ['ingest', 'read'] },
      query: { max_samples: 5000 },
    },
  });
  tw = await startTrainwatch(config, pino({ level: 'silent' }));
});

afterAll(async () => {
  await tw?.stop();
});

describe('PromQL over the running program', () => {
  it('queries what was ingested, in the caller tenant, without the tenant label', async () => {
    const b = new SeriesBatchBuilder();
    for (const rank of ['0', '1']) {
      b.addSeries({ __name__: 'train_step', job_id: 'promql-job', rank });
      for (let i = 0; i <= 40; i++) b.add(T0 + i * 15_000, i * 2);
    }
    const res = await tw.app.inject({
      method: 'POST',
      url: '/api/v1/ingest',
      headers: { 'content-type': NATIVE_CONTENT_TYPE },
      payload: Buffer.from(
        new NativeEncoder().encodeFrame({ sourceId: 'promql', sequence: 1, batch: b.build(), events: [] }),
      ),
    });
    expect(res.statusCode).toBe(200);
    const at = (T0 + 600_000) / 1000;
    const body = await waitFor('the samples to be queryable', async () => {
      const r = await tw.app.inject({
        method: 'GET',
        url: `/api/v1/query?query=${encodeURIComponent('sum by (job_id) (rate(train_step{job_id="promql-job"}[1m]))')}&time=${at}`,
      });
      const json = r.json();
      return json.data?.result?.length ? json : undefined;
    });
    expect(body).toEqual({
      status: 'success',
      data: {
        resultType: 'vector',
        result: [{ metric: { job_id: 'promql-job' }, value: [at, expect.any(String)] }],
      },
    });
    expect(Number(body.data.result[0].value[1])).toBeCloseTo(2 * (2 / 15), 9);

    const range = await tw.app.inject({
      method: 'POST',
      url: '/api/v1/query_range',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `query=${encodeURIComponent('train_step{rank="1"}')}&start=${T0 / 1000}&end=${at}&step=60`,
    });
    expect(range.statusCode).toBe(200);
    const series = range.json().data.result;
    expect(series).toHaveLength(1);
    expect(series[0].metric).toEqual({ __name__: 'train_step', job_id: 'promql-job', rank: '1' });
    expect(series[0].values).toHaveLength(11);

    const labels = await tw.app.inject({ method: 'GET', url: '/api/v1/labels' });
    expect(labels.json().data).not.toContain('tenant');

    // query.max_samples from the configuration applies.
    const big = await tw.app.inject({
      method: 'GET',
      url: `/api/v1/query_range?query=train_step&start=${T0 / 1000}&end=${at}&step=0.1`,
    });
    expect(big.statusCode).toBe(422);
    expect(big.json().error).toBe(
      'query processing would load too many samples into memory in query execution',
    );
  });
});

describe('trainwatch promql-test', () => {
  it('runs upstream test files and prints the closing counts line', () => {
    const files = ['selectors.test', 'collision.test'].map((f) =>
      path.join(REPO_ROOT, 'testdata', 'promql', f),
    );
    const out = execFileSync(process.execPath, [CLI, 'promql-test', ...files], { encoding: 'utf8' });
    expect(out.trim().split('\n').at(-1)).toBe('33 passed, 0 failed, 0 skipped');
  });

  it('exits non-zero and names the case when one fails', () => {
    const script = path.join(tempDir('tw-promql-'), 'bad.test');
    writeFileSync(script, 'load 1m\n  x 1 2 3\n\neval instant at 2m x\n  x 4\n');
    let code = 0;
    let out = '';
    try {
      execFileSync(process.execPath, [CLI, 'promql-test', script], { encoding: 'utf8' });
    } catch (err) {
      code = (err as { status: number }).status;
      out = (err as { stdout: string }).stdout;
    }
    expect(code).toBe(1);
    expect(out).toContain(`FAIL ${script}:4: x`);
    expect(out.trim().split('\n').at(-1)).toBe('0 passed, 1 failed, 0 skipped');
  });
});
