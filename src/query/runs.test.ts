/**
 * `GET /api/tw/v1/runs` over HTTP (fastify inject, a SQLite job store): parameters as the dashboard sends them,
 * the tenant from the caller, columns listed, a NaN loss as "NaN", and bad parameters answered 400 with the reason.
 * The store's sort/filter/group semantics are checked on both backends by meta/runs.contract.test.ts.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import { beforeAll, describe, expect, it } from 'vitest';
import { AnonymousAuthenticator, installAccessControl } from '../auth/index.js';
import { JobStore, MetaStore, SUMMARY_GAUGES } from '../meta/index.js';
import { TrainwatchError } from '../model/errors.js';
import { parseRunQuery, registerRunsApi } from './runs.js';

const LOSS = SUMMARY_GAUGES.findIndex((g) => g.key === 'loss');

function app(jobs: JobStore, tenant = 't1') {
  const a = Fastify();
  a.setErrorHandler((err, _req, reply) => {
    if (err instanceof TrainwatchError)
      return reply.code(err.status).send({ status: 'error', errorType: err.kind.code, error: err.message });
    return reply.code(500).send({ status: 'error', error: String(err) });
  });
  installAccessControl(a, new AnonymousAuthenticator(tenant));
  registerRunsApi(a, { runs: jobs });
  return a;
}

describe('GET /api/tw/v1/runs', () => {
  let jobs: JobStore;
  beforeAll(async () => {
    jobs = new JobStore(
      new MetaStore(path.join(mkdtempSync(path.join(os.tmpdir(), 'tw-runs-api-')), 'meta.db')),
      3_600_000,
    );
    const now = Date.now();
    for (const [id, lr, loss] of [
      ['r1', 0.001, 2.5],
      ['r2', 0.01, Number.NaN],
      ['r3', 0.0001, 1.5],
    ] as const) {
      jobs.applyEvent('t1', {
        kind: 'start',
        jobId: id,
        timeMs: now - 60_000,
        name: `run-${id}`,
        config: { lr },
      });
      jobs.noteSamples('t1', id, now - 60_000, now - 1000);
      jobs.noteGauge('t1', id, LOSS, now - 1000, loss, Number.isNaN(loss) ? 3 : loss);
    }
    jobs.applyEvent('t2', { kind: 'start', jobId: 'other', timeMs: now, config: { hidden: true } });
    await jobs.flush();
  });

  it('lists the caller tenant’s runs, sorted and filtered as asked, with every column', async () => {
    const res = await app(jobs).inject({
      method: 'GET',
      url: '/api/tw/v1/runs?sort=-config.lr&filter=config.lr%3E%3D0.001',
    });
    expect(res.statusCode).toBe(200);
    const data = res.json().data;
    expect(data.total).toBe(2);
    expect(data.runs.map((r: { jobId: string }) => r.jobId)).toEqual(['r2', 'r1']);
    expect(data.runs[0].summary.loss).toMatchObject({ last: 'NaN', best: 3 });
    expect(data.runs[1].summary.loss).toMatchObject({ last: 2.5, best: 2.5 });
    const keys = data.columns.map((c: { key: string }) => c.key);
    expect(keys).toEqual(expect.arrayContaining(['loss', 'loss_best', 'gpu_hours', 'status', 'config.lr']));
    expect(keys).not.toContain('config.hidden');
  });

  it('groups when asked', async () => {
    const res = await app(jobs).inject({ method: 'GET', url: '/api/tw/v1/runs?group=status' });
    expect(res.json().data.groups).toEqual([expect.objectContaining({ value: 'running', count: 3 })]);
  });

  it('answers 400 naming what was wrong', async () => {
    for (const [q, why] of [
      ['sort=bogus', /unknown column "bogus"/],
      ['filter=loss', /not <column><op><value>/],
      ['filter=loss~1', /text columns/],
      ['filter=loss<low', /not a number/],
      ['limit=0', /limit="0" must be an integer from 1 to 500/],
      ['group=a&group=b', /given 2 times/],
    ] as const) {
      const res = await app(jobs).inject({ method: 'GET', url: `/api/tw/v1/runs?${q}` });
      expect([q, res.statusCode]).toEqual([q, 400]);
      expect(res.json().error).toMatch(why);
    }
  });

  it('parses filters at the first operator, the longest operator there', () => {
    expect(parseRunQuery({ filter: ['loss<=2', 'config.opt!=adam', 'name~a=b'] }).filters).toEqual([
      { column: 'loss', op: '<=', value: '2' },
      { column: 'config.opt', op: '!=', value: 'adam' },
      { column: 'name', op: '~', value: 'a=b' },
    ]);
  });
});
