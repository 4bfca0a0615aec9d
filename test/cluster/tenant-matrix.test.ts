/**
 * Tenant isolation as a matrix, on both storage backends: every reader (anonymous, tenant a, tenant b, a's
 * admin) × every read endpoint (Prometheus API, trainwatch's REST and dashboard API) × attempts to reach the
 * other tenant. The same table must hold on the embedded TSDB and on a remote VictoriaMetrics (queries
 * forwarded with the tenant injected, series read through its API), so a backend can never widen what a
 * token sees.
 */
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { MetaStore, TokenStore } from '../../src/meta/index.js';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { tempDir, waitFor } from '../support/helpers.js';
import {
  requireVictoriaMetrics,
  startVictoriaMetrics,
  type VictoriaMetrics,
} from '../support/victoria-metrics.js';

const NOW = Date.now();
const T0 = NOW - 60_000;
const METRIC = 'matrix_gpu_utilization_ratio';

type Reader = 'anonymous' | 'a' | 'b' | 'adminA';
const READERS: readonly Reader[] = ['anonymous', 'a', 'b', 'adminA'];

/** What each tenant wrote: a job and a value unique to it, so any leak is visible in any answer. */
const DATA = {
  a: { job: 'job-of-a', value: 0.25 },
  b: { job: 'job-of-b', value: 0.75 },
} as const;

interface Endpoint {
  readonly name: string;
  readonly url: (tenantParam?: string) => string;
}

const range = `start=${(T0 - 1000) / 1000}&end=${(NOW + 1000) / 1000}`;
const ENDPOINTS: readonly Endpoint[] = [
  { name: 'prom query', url: () => `/api/v1/query?query=${METRIC}&time=${NOW / 1000}` },
  {
    name: 'prom query_range',
    url: () => `/api/v1/query_range?query=sum by (job_id) (${METRIC})&${range}&step=10`,
  },
  { name: 'prom series', url: () => `/api/v1/series?match[]=${METRIC}&${range}` },
  { name: 'prom label values', url: () => `/api/v1/label/job_id/values?${range}` },
  { name: 'prom labels', url: () => `/api/v1/labels?${range}` },
  {
    name: 'tw series',
    url: () => `/api/tw/v1/series?metric=${METRIC}&start=${T0 - 1000}&end=${NOW + 1000}`,
  },
  { name: 'tw jobs', url: () => '/api/tw/v1/jobs' },
  { name: 'tw fleet', url: (t) => `/api/tw/v1/fleet${t ? `?tenant=${t}` : ''}` },
  {
    name: 'tw heatmap',
    url: (t) =>
      `/api/tw/v1/heatmap?metric=${METRIC}&start=${T0 - 1000}&end=${NOW + 1000}${t ? `&tenant=${t}` : ''}`,
  },
];

/** Which tenants' data an answer shows, found by the job ids and values each tenant alone wrote. */
function tenantsIn(body: string): Set<'a' | 'b'> {
  const seen = new Set<'a' | 'b'>();
  for (const t of ['a', 'b'] as const) if (body.includes(DATA[t].job)) seen.add(t);
  return seen;
}

for (const backend of ['embedded', 'victoriametrics'] as const) {
  describe(`tenant isolation on the ${backend} backend`, () => {
    const enabled = backend === 'embedded' || requireVictoriaMetrics('the tenant matrix on VictoriaMetrics');
    let vm: VictoriaMetrics | undefined;
    let tw: Trainwatch;
    let meta: MetaStore;
    const tokens: Partial<Record<Reader | 'ingestA' | 'ingestB', string>> = {};

    beforeAll(async () => {
      if (!enabled) return;
      const dir = tempDir('tw-matrix-');
      const storage =
        backend === 'embedded'
          ? {}
          : await (async () => {
              vm = await startVictoriaMetrics();
              return {
                kind: 'remote' as const,
                remote: { write_url: vm.writeUrl, query_url: vm.url, flavor: 'victoriametrics' as const },
              };
            })();
      tw = await startTrainwatch(
        loadConfig({
          flags: {
            listen: '127.0.0.1:0',
            data_dir: dir,
            processor: { checkpoint_interval_ms: 50 },
            auth: { anonymous_scopes: [] },
            storage,
          },
        }),
        pino({ level: 'silent' }),
      );
      meta = new MetaStore(path.join(dir, 'meta.db'));
      const store = new TokenStore(meta);
      tokens.a = store.create({ tenant: 'a', scope: 'read' }).token;
      tokens.b = store.create({ tenant: 'b', scope: 'read' }).token;
      tokens.adminA = store.create({ tenant: 'a', scope: 'admin' }).token;
      tokens.ingestA = store.create({ tenant: 'a', scope: 'ingest' }).token;
      tokens.ingestB = store.create({ tenant: 'b', scope: 'ingest' }).token;

      const encoder = new NativeEncoder();
      let seq = 0;
      for (const t of ['a', 'b'] as const) {
        const b = new SeriesBatchBuilder();
        for (const gpu of ['0', '1']) {
          const s = b.addSeries({ __name__: METRIC, job_id: DATA[t].job, gpu, tenant: 'b' });
          for (let i = 0; i < 6; i++) s.add(T0 + i * 10_000, DATA[t].value);
        }
        const res = await tw.app.inject({
          method: 'POST',
          url: '/api/v1/ingest',
          headers: {
            'content-type': NATIVE_CONTENT_TYPE,
            authorization: `Bearer ${t === 'a' ? tokens.ingestA : tokens.ingestB}`,
          },
          payload: Buffer.from(
            encoder.encodeFrame({
              sourceId: `matrix-${t}`,
              sequence: seq++,
              batch: b.build(),
              events: [{ kind: 'start', jobId: DATA[t].job, timeMs: T0, name: DATA[t].job }],
            }),
          ),
        });
        expect(res.statusCode, res.body).toBe(200);
      }
      // Both tenants' data readable by their own tokens before the matrix runs.
      await waitFor(
        'both tenants queryable',
        async () => {
          await vm?.forceFlush();
          for (const t of ['a', 'b'] as const) {
            const res = await tw.app.inject({
              url: `/api/v1/series?match[]=${METRIC}&${range}`,
              headers: { authorization: `Bearer ${tokens[t]}` },
            });
            if (!tenantsIn(res.body).has(t)) return undefined;
            const jobs = await tw.app.inject({
              url: '/api/tw/v1/jobs',
              headers: { authorization: `Bearer ${tokens[t]}` },
            });
            if (!tenantsIn(jobs.body).has(t)) return undefined;
          }
          return true;
        },
        30_000,
      );
    }, 90_000);

    afterAll(async () => {
      meta?.close();
      await tw?.stop();
      await vm?.stop();
    });

    const get = (reader: Reader, url: string, headers: Record<string, string> = {}) =>
      tw.app.inject({
        url,
        headers: {
          ...headers,
          ...(reader === 'anonymous' ? {} : { authorization: `Bearer ${tokens[reader]}` }),
        },
      });

    for (const ep of ENDPOINTS) {
      it.skipIf(!enabled)(`${ep.name}: each reader sees its own tenant only`, async () => {
        for (const reader of READERS) {
          const res = await get(reader, ep.url());
          if (reader === 'anonymous') {
            expect(res.statusCode, `${ep.name} as anonymous`).toBe(401);
            continue;
          }
          expect(res.statusCode, `${ep.name} as ${reader}: ${res.body}`).toBe(200);
          const own = reader === 'b' ? 'b' : 'a';
          const seen = tenantsIn(res.body);
          // Label name lists carry no job ids: they are checked by the other endpoints' answers.
          if (ep.name !== 'prom labels') expect([...seen], `${ep.name} as ${reader}`).toEqual([own]);
          // PromQL answers hide the tenant label, as Prometheus would show the same data.
          if (ep.name.startsWith('prom'))
            expect(res.body, `${ep.name} as ${reader} shows the tenant label`).not.toContain('"tenant"');
        }
      });
    }

    it.skipIf(!enabled)('no query, header or parameter reaches the other tenant', async () => {
      const attempts = [
        `/api/v1/query?query=${METRIC}{tenant="b"}&time=${NOW / 1000}`,
        `/api/v1/query?query=${METRIC}{tenant=~".*"}&time=${NOW / 1000}`,
        `/api/v1/query?query=${METRIC}{tenant!="a"}&time=${NOW / 1000}`,
        `/api/v1/query?query=sum(${METRIC}) or on() vector(0) and ${METRIC}{tenant="b"}&time=${NOW / 1000}`,
        `/api/v1/query?query=max_over_time(${METRIC}{tenant=~"b|c"}[5m:10s])&time=${NOW / 1000}`,
        `/api/v1/query_range?query=label_replace(${METRIC}{tenant="b"},"x","y","","")&${range}&step=10`,
        `/api/v1/series?match[]={tenant="b"}&${range}`,
        `/api/v1/label/tenant/values?${range}`,
        `/api/tw/v1/series?metric=${METRIC}&tenant=b&start=${T0 - 1000}&end=${NOW + 1000}`,
      ];
      for (const url of attempts) {
        const res = await get('a', url);
        // Refused (403) or answered without b's data: never b's data.
        expect([200, 400, 403], `${url}: ${res.body}`).toContain(res.statusCode);
        expect(tenantsIn(res.body).has('b'), `${url} leaked tenant b: ${res.body}`).toBe(false);
        expect(res.body, url).not.toContain(String(DATA.b.value));
      }
      // Naming the other tenant in X-Scope-OrgID or ?tenant= without the admin scope.
      for (const ep of ENDPOINTS) {
        const res = await get('a', ep.url('b'), { 'x-scope-orgid': 'b' });
        expect(tenantsIn(res.body).has('b'), `${ep.name} with tenant b named: ${res.body}`).toBe(false);
      }
    });

    it.skipIf(!enabled)("an admin of a may read b's fleet when it names b", async () => {
      const res = await get('adminA', '/api/tw/v1/fleet?tenant=b');
      expect(res.statusCode, res.body).toBe(200);
      expect([...tenantsIn(res.body)]).toEqual(['b']);
    });
  });
}
