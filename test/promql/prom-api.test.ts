/**
 * The Prometheus HTTP API as Grafana's Prometheus data source calls it: the exact requests (paths, GET query
 * strings and POST form bodies) Grafana sends for the health check, panels (query_range with step), template
 * variables (label names and values, series), the metrics browser (metadata), exemplars and buildinfo.
 * Responses must have Prometheus's shapes and status codes; every request sees only its tenant.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Authenticator,
  installAccessControl,
  type Principal,
  type RequestCredentials,
  type Scope,
} from '../../src/auth/index.js';
import { SeriesBatchBuilder, STALE_NAN } from '../../src/model/batch.js';
import { Errors, TrainwatchError, twError } from '../../src/model/errors.js';
import { registerPromApi } from '../../src/query/prom-api.js';
import { memoryTsdb } from '../../src/query/promql/test-script.js';
import type { Storage } from '../../src/storage/index.js';

/** Bearer <tenant> → that tenant with read scope; no header → 401, as a real token authenticator answers. */
class TenantFromBearer implements Authenticator {
  authenticate(credentials: RequestCredentials, scope: Scope): Principal {
    const m = /^Bearer (\S+)$/.exec(credentials.authorization ?? '');
    if (!m) throw twError(Errors.unauthorized, `authentication required for ${scope}`);
    return { tenant: m[1]!, scopes: new Set<Scope>(['read']), via: `test:${m[1]}` };
  }
}

const T0 = 1_700_000_000_000; // aligned to 15 s, as Grafana aligns start/end to the step
let storage: Storage;
let app: FastifyInstance;

beforeAll(async () => {
  storage = await memoryTsdb();
  for (const tenant of ['team-a', 'team-b']) {
    const b = new SeriesBatchBuilder();
    const scale = tenant === 'team-a' ? 1 : 100;
    for (const node of ['n1', 'n2']) {
      for (const gpu of ['0', '1']) {
        b.addSeries({ __name__: 'gpu_utilization_ratio', job_id: 'j1', node_id: node, gpu });
        for (let i = 0; i <= 240; i++) b.add(T0 + i * 15_000, (((i + Number(gpu)) % 10) / 10) * scale);
      }
      b.addSeries({ __name__: 'train_samples_total', job_id: 'j1', node_id: node });
      for (let i = 0; i <= 240; i++) b.add(T0 + i * 15_000, i * 64 * scale);
    }
    b.addSeries({ __name__: 'ended_series', job_id: 'old' });
    b.add(T0, 1)
      .add(T0 + 15_000, 2)
      .add(T0 + 30_000, STALE_NAN);
    storage.appender.append(tenant, b.build());
  }
  app = Fastify();
  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof TrainwatchError) {
      return reply.code(err.status).send({ status: 'error', errorType: err.kind.code, error: err.message });
    }
    return reply.code(500).send({ status: 'error', errorType: 'internal', error: String(err) });
  });
  const auth = new TenantFromBearer();
  installAccessControl(app, auth);
  registerPromApi(app, { auth, storage, limits: { maxSamples: 20_000 } });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await storage?.close();
});

const A = { authorization: 'Bearer team-a' };
const FORM = { ...A, 'content-type': 'application/x-www-form-urlencoded' };
const sec = (ms: number) => String(ms / 1000);

async function get(url: string, headers: Record<string, string> = A) {
  const res = await app.inject({ method: 'GET', url, headers });
  return { status: res.statusCode, body: res.json() };
}

async function post(
  url: string,
  form: Record<string, string | string[]>,
  headers: Record<string, string> = FORM,
) {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(form)) for (const x of Array.isArray(v) ? v : [v]) body.append(k, x);
  const res = await app.inject({ method: 'POST', url, headers, payload: body.toString() });
  return { status: res.statusCode, body: res.json() };
}

describe('Grafana data source: health check and build info', () => {
  it('answers the health-check query 1+1 as a scalar', async () => {
    const r = await get(`/api/v1/query?query=1%2B1&time=${sec(T0)}`);
    expect(r).toEqual({
      status: 200,
      body: { status: 'success', data: { resultType: 'scalar', result: [T0 / 1000, '2'] } },
    });
  });

  it('serves /api/v1/status/buildinfo with a Prometheus version', async () => {
    const r = await get('/api/v1/status/buildinfo');
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('success');
    expect(r.body.data.version).toMatch(/^\d+\.\d+\.\d+$/);
    for (const k of ['revision', 'branch', 'buildUser', 'buildDate', 'goVersion'])
      expect(r.body.data).toHaveProperty(k);
  });

  it('refuses requests without credentials with 401 in the API error shape', async () => {
    const r = await get(`/api/v1/query?query=up&time=${sec(T0)}`, {});
    expect(r.status).toBe(401);
    expect(r.body.status).toBe('error');
  });
});

describe('Grafana data source: panels', () => {
  it('POST /api/v1/query_range with a form body and step: matrix with [seconds, "value"] points', async () => {
    const r = await post('/api/v1/query_range', {
      query: 'sum by (node_id) (rate(train_samples_total[1m]))',
      start: sec(T0 + 300_000),
      end: sec(T0 + 600_000),
      step: '60',
    });
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('success');
    expect(r.body.data.resultType).toBe('matrix');
    expect(r.body.data.result).toHaveLength(2);
    for (const s of r.body.data.result) {
      expect(Object.keys(s.metric)).toEqual(['node_id']);
      expect(s.values).toHaveLength(6);
      expect(s.values[0][0]).toBe((T0 + 300_000) / 1000);
      expect(typeof s.values[0][1]).toBe('string');
      expect(Number(s.values[0][1])).toBeCloseTo(64 / 15, 9);
    }
    expect(r.body.data.result.map((s: { metric: { node_id: string } }) => s.metric.node_id)).toEqual([
      'n1',
      'n2',
    ]);
  });

  it('accepts form bodies with a charset parameter', async () => {
    const r = await post(
      '/api/v1/query',
      { query: 'count(gpu_utilization_ratio)', time: sec(T0 + 60_000) },
      { ...A, 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' },
    );
    expect(r.body.data.result[0].value[1]).toBe('4');
  });

  it('GET /api/v1/query_range with a duration step (15s) and RFC 3339 times', async () => {
    const start = new Date(T0 + 60_000).toISOString();
    const end = new Date(T0 + 120_000).toISOString();
    const r = await get(
      `/api/v1/query_range?query=${encodeURIComponent('avg(gpu_utilization_ratio)')}&start=${start}&end=${end}&step=15s`,
    );
    expect(r.status).toBe(200);
    expect(r.body.data.result).toHaveLength(1);
    expect(r.body.data.result[0].metric).toEqual({});
    expect(r.body.data.result[0].values).toHaveLength(5);
  });

  it('POST /api/v1/query: instant vector with the metric name kept by a plain selector', async () => {
    const r = await post('/api/v1/query', {
      query: 'gpu_utilization_ratio{node_id="n1",gpu="0"}',
      time: sec(T0 + 150_000),
    });
    expect(r.body).toEqual({
      status: 'success',
      data: {
        resultType: 'vector',
        result: [
          {
            metric: { __name__: 'gpu_utilization_ratio', job_id: 'j1', node_id: 'n1', gpu: '0' },
            value: [(T0 + 150_000) / 1000, '0'],
          },
        ],
      },
    });
  });

  it('renders NaN and infinities as Prometheus strings', async () => {
    const r = await get(
      `/api/v1/query?query=${encodeURIComponent('vector(0/0) or vector(1/0) or vector(-1/0)')}&time=${sec(T0)}`,
    );
    expect(r.body.data.result.map((s: { value: [number, string] }) => s.value[1])).toEqual(['NaN']);
    const inf = await get(`/api/v1/query?query=${encodeURIComponent('1/0')}&time=${sec(T0)}`);
    expect(inf.body.data.result[1]).toBe('+Inf');
  });

  it('does not return a series past its staleness marker', async () => {
    const r = await get(`/api/v1/query?query=ended_series&time=${sec(T0 + 60_000)}`);
    expect(r.body.data.result).toEqual([]);
  });

  it('answers a range selector in an instant query as a matrix', async () => {
    const r = await get(
      `/api/v1/query?query=${encodeURIComponent('train_samples_total{node_id="n1"}[1m]')}&time=${sec(T0 + 60_000)}`,
    );
    expect(r.body.data.resultType).toBe('matrix');
    expect(r.body.data.result[0].values).toHaveLength(4);
  });

  it('puts annotations in warnings and infos', async () => {
    const r = await get(
      `/api/v1/query?query=${encodeURIComponent('quantile(2, gpu_utilization_ratio)')}&time=${sec(T0)}`,
    );
    expect(r.body.warnings).toEqual([
      'PromQL warning: quantile value should be between 0 and 1, got 2 (1:10)',
    ]);
  });
});

describe('Grafana data source: template variables and the metrics browser', () => {
  const range = `start=${sec(T0)}&end=${sec(T0 + 3_600_000)}`;

  it('label names, without the tenant label', async () => {
    const r = await get(`/api/v1/labels?${range}`);
    expect(r.body).toEqual({ status: 'success', data: ['__name__', 'gpu', 'job_id', 'node_id'] });
  });

  it('label names restricted by match[] (POST, as newer Grafana sends it)', async () => {
    const r = await post('/api/v1/labels', {
      'match[]': 'train_samples_total',
      start: sec(T0),
      end: sec(T0 + 3_600_000),
    });
    expect(r.body.data).toEqual(['__name__', 'job_id', 'node_id']);
  });

  it('metric names for the metric picker: label/__name__/values', async () => {
    const r = await get(`/api/v1/label/__name__/values?${range}`);
    expect(r.body.data).toEqual(['ended_series', 'gpu_utilization_ratio', 'train_samples_total']);
  });

  it('label_values(gpu_utilization_ratio{node_id="n2"}, gpu) → label values with match[]', async () => {
    const match = encodeURIComponent('gpu_utilization_ratio{node_id="n2"}');
    const r = await get(`/api/v1/label/gpu/values?match[]=${match}&${range}`);
    expect(r.body.data).toEqual(['0', '1']);
  });

  it('label values of the tenant label are hidden', async () => {
    const r = await get(`/api/v1/label/tenant/values?${range}`);
    expect(r.body.data).toEqual([]);
  });

  it('series lookup (GET and POST), several match[]', async () => {
    const g = await get(
      `/api/v1/series?match[]=${encodeURIComponent('{__name__="train_samples_total"}')}&${range}`,
    );
    expect(g.body).toEqual({
      status: 'success',
      data: [
        { __name__: 'train_samples_total', job_id: 'j1', node_id: 'n1' },
        { __name__: 'train_samples_total', job_id: 'j1', node_id: 'n2' },
      ],
    });
    const p = await post('/api/v1/series', {
      'match[]': ['train_samples_total{node_id="n1"}', 'ended_series'],
      start: sec(T0),
      end: sec(T0 + 3_600_000),
    });
    expect(p.body.data).toHaveLength(2);
  });

  it('series without match[] is bad_data', async () => {
    const r = await get(`/api/v1/series?${range}`);
    expect(r).toEqual({
      status: 400,
      body: { status: 'error', errorType: 'bad_data', error: 'no match[] parameter provided' },
    });
  });

  it('metadata lists the metrics, typed by the catalog (canonical names, `_total` counters)', async () => {
    const r = await get('/api/v1/metadata');
    expect(r.body.data.train_samples_total).toEqual([{ type: 'counter', help: '', unit: '' }]);
    const one = await get('/api/v1/metadata?metric=gpu_utilization_ratio');
    expect(one.body.data).toEqual({
      gpu_utilization_ratio: [
        { type: 'gauge', help: 'Fraction of time one or more kernels ran on the GPU.', unit: 'ratio' },
      ],
    });
  });

  it('exemplars: an empty list', async () => {
    const r = await post('/api/v1/query_exemplars', {
      query: 'train_samples_total',
      start: sec(T0),
      end: sec(T0 + 60_000),
    });
    expect(r.body).toEqual({ status: 'success', data: [] });
  });
});

describe('errors and limits, as Prometheus reports them', () => {
  it('parse errors: 400 bad_data with the position', async () => {
    const r = await get(`/api/v1/query?query=${encodeURIComponent('sum(rate(x[5m])')}`);
    expect(r.status).toBe(400);
    expect(r.body).toEqual({
      status: 'error',
      errorType: 'bad_data',
      error: '1:16: parse error: unclosed left parenthesis',
    });
  });

  it('an empty query is a parse error', async () => {
    const r = await get('/api/v1/query?query=');
    expect(r).toEqual({
      status: 400,
      body: {
        status: 'error',
        errorType: 'bad_data',
        error: '1:1: parse error: no expression found in input',
      },
    });
  });

  it('bad parameters: 400 bad_data naming the parameter', async () => {
    const t = await get('/api/v1/query?query=up&time=yesterday');
    expect(t.body.error).toBe('invalid parameter "time": cannot parse "yesterday" to a valid timestamp');
    const s = await get(`/api/v1/query_range?query=up&start=${sec(T0)}&end=${sec(T0 + 60_000)}&step=0`);
    expect(s.body.error).toBe(
      'zero or negative query resolution step widths are not accepted. Try a positive integer',
    );
    const e = await get(`/api/v1/query_range?query=up&start=${sec(T0 + 60_000)}&end=${sec(T0)}&step=15`);
    expect(e.body.error).toBe('end timestamp must not be before start time');
    const n = await get(`/api/v1/query_range?query=up&start=${sec(T0)}&end=${sec(T0 + 86_400_000)}&step=1`);
    expect(n.status).toBe(400);
    expect(n.body.error).toMatch(/exceeded maximum resolution of 11,000 points/);
  });

  it('execution errors: 422 execution', async () => {
    const r = await get(
      `/api/v1/query?query=${encodeURIComponent('label_replace(up, "a", "$1", "b", "(")')}`,
    );
    expect(r.status).toBe(422);
    expect(r.body.errorType).toBe('execution');
  });

  it('too many samples: 422 with Prometheus message', async () => {
    const r = await get(
      `/api/v1/query_range?query=${encodeURIComponent('gpu_utilization_ratio')}&start=${sec(T0)}&end=${sec(T0 + 3_600_000)}&step=0.5`,
    );
    expect(r.status).toBe(422);
    expect(r.body).toEqual({
      status: 'error',
      errorType: 'execution',
      error: 'query processing would load too many samples into memory in query execution',
    });
  });

  it('limit truncates results with a warning', async () => {
    const r = await get(`/api/v1/query?query=gpu_utilization_ratio&time=${sec(T0 + 60_000)}&limit=1`);
    expect(r.body.data.result).toHaveLength(1);
    expect(r.body.warnings).toEqual(['results truncated due to limit']);
  });
});

describe('tenant isolation', () => {
  it('each tenant sees only its own samples, with the same labels', async () => {
    const q = `/api/v1/query?query=${encodeURIComponent('max(train_samples_total)')}&time=${sec(T0 + 60_000)}`;
    const a = await get(q);
    const b = await get(q, { authorization: 'Bearer team-b' });
    expect(a.body.data.result[0].value[1]).toBe('256');
    expect(b.body.data.result[0].value[1]).toBe('25600');
    const c = await get(q, { authorization: 'Bearer team-c' });
    expect(c.body.data.result).toEqual([]);
  });

  it('a tenant matcher selects the own tenant only', async () => {
    const own = await get(
      `/api/v1/query?query=${encodeURIComponent('count(train_samples_total{tenant="team-a"})')}&time=${sec(T0)}`,
    );
    expect(own.body.data.result[0].value[1]).toBe('2');
    const other = await get(
      `/api/v1/query?query=${encodeURIComponent('count(train_samples_total{tenant="team-b"})')}&time=${sec(T0)}`,
    );
    expect(other.body.data.result).toEqual([]);
  });
});
