/**
 * The collector with its decoding on ingest worker threads (`ingest.workers`): the same answers and the same
 * bus contents as on the main thread, every acknowledged sample on the bus exactly once, per-tenant limits
 * exact whichever connection or protocol a request comes through, and a worker that dies fails `/readyz`
 * and answers its requests 503 instead of leaving them hanging.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { IngestWorkers, workerOfTenant } from '../../src/collector/index.js';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import {
  collectorHarness,
  DEFAULT_TEST_LIMITS,
  type HarnessOptions,
  harnessTenantLimits,
} from '../support/ingest-harness.js';
import { RW1_HEADERS, type RwSeries, snappyCompress, writeRequestV1 } from '../support/wire.js';

const NOW = Date.now();
const encoder = new NativeEncoder();
let open: IngestWorkers[] = [];

afterEach(async () => {
  await Promise.all(open.map((w) => w.stop()));
  open = [];
});

async function withWorkers(count: number, opts: HarnessOptions = {}) {
  const workers = await IngestWorkers.open(count, {
    limits: { ...DEFAULT_TEST_LIMITS, ...opts.limits },
    tenants: harnessTenantLimits(opts),
  });
  open.push(workers);
  const h = collectorHarness({ ...opts, engine: workers });
  h.server.addReadinessCheck('ingest-workers', async () => workers.failure);
  return { ...h, workers };
}

/** Tenants `count` of which each worker owns (so that every worker decodes some). */
function tenantsPerWorker(workers: number, count: number): string[] {
  const out: string[] = [];
  const per = new Array<number>(workers).fill(0);
  for (let i = 0; out.length < workers * count; i++) {
    const t = `team-${i}`;
    const w = workerOfTenant(t, workers);
    if (per[w]! < count) {
      per[w]!++;
      out.push(t);
    }
  }
  return out;
}

function rwSeries(prefix: string, n: number, t: number): RwSeries[] {
  return Array.from({ length: n }, (_, i) => ({
    labels: { __name__: 'gpu_util', job_id: `job-${i % 3}`, node_id: `node-${i}`, s: `${prefix}-${i}` },
    samples: [[t, i + t / 1000]] as [number, number][],
  }));
}

function nativeFrame(sourceId: string, sequence: number, series: string[], t: number): Buffer {
  const b = new SeriesBatchBuilder();
  for (const s of series) b.addSeries({ __name__: 'loss', job_id: 'job-n', s }).add(t, 1);
  return Buffer.from(encoder.encodeFrame({ sourceId, sequence, batch: b.build(), events: [] }));
}

describe('ingest workers', () => {
  it('stores every acknowledged sample exactly once, across workers, tenants and protocols', async () => {
    const h = await withWorkers(2);
    const tenants = tenantsPerWorker(2, 2);
    const auth = new Map(tenants.map((t) => [t, h.tokens.create({ tenant: t, scope: 'ingest' }).token]));
    const sent = new Map<string, number>();
    const requests: Promise<void>[] = [];
    for (const tenant of tenants) {
      for (let tick = 0; tick < 5; tick++) {
        const body = Buffer.from(snappyCompress(writeRequestV1(rwSeries(tenant, 40, NOW - 10_000 + tick))));
        requests.push(
          h.app
            .inject({
              method: 'POST',
              url: '/api/v1/write',
              headers: { ...RW1_HEADERS, authorization: `Bearer ${auth.get(tenant)}` },
              payload: body,
            })
            .then((res) => {
              expect(res.statusCode, res.body).toBe(204);
              sent.set(tenant, (sent.get(tenant) ?? 0) + 40);
            }),
        );
      }
      // A native batch, then its retry (same source and sequence): acknowledged twice, stored once.
      for (let attempt = 0; attempt < 2; attempt++) {
        const res = await h.app.inject({
          method: 'POST',
          url: '/api/v1/ingest',
          headers: { 'content-type': NATIVE_CONTENT_TYPE, authorization: `Bearer ${auth.get(tenant)}` },
          payload: nativeFrame(`src-${tenant}`, 7, ['x', 'y', 'z'], NOW - 5000),
        });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().data.duplicate).toBe(attempt === 1);
      }
      sent.set(tenant, (sent.get(tenant) ?? 0) + 3);
    }
    await Promise.all(requests);

    for (const w of h.workers.stats()) expect(w.requests).toBeGreaterThan(0);
    for (const tenant of tenants) {
      const stored = h.bus.samples(tenant);
      let samples = 0;
      for (const [series, points] of stored) {
        // Each series got one sample per tick, each tick once: no duplicate timestamps.
        expect(new Set(points.map(([t]) => t)).size, series).toBe(points.length);
        samples += points.length;
      }
      expect(samples).toBe(sent.get(tenant));
      expect(stored.size).toBe(43);
    }
  });

  it('keeps a tenant within its active-series limit whichever connection and protocol sends', async () => {
    const h = await withWorkers(2, { maxActiveSeries: 50 });
    const [a, b] = tenantsPerWorker(2, 1) as [string, string];
    const tokenA = h.tokens.create({ tenant: a, scope: 'ingest' }).token;
    const tokenB = h.tokens.create({ tenant: b, scope: 'ingest' }).token;
    // Tenant a: 8 concurrent requests of 10 new series each; only 5 can fit. Each is taken whole or refused
    // whole, and a refused one leaves nothing on the bus.
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, r) =>
        h.app.inject({
          method: 'POST',
          url: '/api/v1/write',
          headers: { ...RW1_HEADERS, authorization: `Bearer ${tokenA}` },
          payload: Buffer.from(snappyCompress(writeRequestV1(rwSeries(`r${r}`, 10, NOW)))),
        }),
      ),
    );
    const accepted = answers.filter((r) => r.statusCode === 204).length;
    const refused = answers.filter((r) => r.statusCode === 429 || r.statusCode === 400);
    expect(accepted).toBe(5);
    expect(refused).toHaveLength(3);
    for (const r of refused) expect(r.json().error).toMatch(/limit limits.max_active_series exceeded/);
    expect(h.bus.samples(a).size).toBe(50);
    // The native protocol counts against the same registry, on the same worker.
    const native = await h.app.inject({
      method: 'POST',
      url: '/api/v1/ingest',
      headers: { 'content-type': NATIVE_CONTENT_TYPE, authorization: `Bearer ${tokenA}` },
      payload: nativeFrame('limits', 1, ['new-one'], NOW),
    });
    expect(native.json().error).toMatch(/limit limits.max_active_series exceeded: tenant team-\d+ has 50/);
    // Another tenant (on the other worker) is unaffected.
    const other = await h.app.inject({
      method: 'POST',
      url: '/api/v1/write',
      headers: { ...RW1_HEADERS, authorization: `Bearer ${tokenB}` },
      payload: Buffer.from(snappyCompress(writeRequestV1(rwSeries('b', 50, NOW)))),
    });
    expect(other.statusCode).toBe(204);
  });

  it('answers bad bodies with the same 4xx as the main thread does', async () => {
    const h = await withWorkers(1);
    const local = collectorHarness();
    const bodies: [number, () => Buffer][] = [
      // A snappy header declaring more bytes than ingest.max_payload_bytes.
      [413, () => Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3])],
      // Valid snappy, not a WriteRequest.
      [400, () => Buffer.from(snappyCompress(Uint8Array.from([0x0a, 0x05, 0x0a, 0xff])))],
    ];
    for (const [status, body] of bodies) {
      const inject = (app: typeof h.app) =>
        app.inject({ method: 'POST', url: '/api/v1/write', headers: RW1_HEADERS, payload: body() });
      const res = await inject(h.app);
      expect(res.statusCode).toBe(status);
      expect(res.json()).toEqual((await inject(local.app)).json());
    }
  });

  it('fails /readyz when a worker dies, and answers its in-flight and later requests 503', async () => {
    const h = await withWorkers(2);
    const [a, b] = tenantsPerWorker(2, 1) as [string, string];
    const tokenA = h.tokens.create({ tenant: a, scope: 'ingest' }).token;
    const tokenB = h.tokens.create({ tenant: b, scope: 'ingest' }).token;
    const dead = workerOfTenant(a, 2);
    expect((await h.app.inject({ url: '/readyz' })).statusCode).toBe(200);
    const flag = new Int32Array(new SharedArrayBuffer(4));
    h.workers.holdForTest(dead, flag);
    const send = (token: string) =>
      h.app.inject({
        method: 'POST',
        url: '/api/v1/write',
        headers: { ...RW1_HEADERS, authorization: `Bearer ${token}` },
        payload: Buffer.from(snappyCompress(writeRequestV1(rwSeries('s', 5, NOW)))),
      });
    const inFlight = send(tokenA);
    // Wait until the request is queued at the held worker, then kill it.
    while (h.workers.stats()[dead]!.inFlight === 0) await new Promise((r) => setImmediate(r));
    await h.workers.terminateForTest(dead);
    const res = await inFlight;
    expect(res.statusCode).toBe(503);
    expect(res.json().error).toMatch(/ingest worker \d .*nothing of this request was stored/);
    const ready = await h.app.inject({ url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.body).toMatch(/ingest worker \d exited/);
    expect((await send(tokenA)).statusCode).toBe(503);
    // The other worker's tenants still write.
    expect((await send(tokenB)).statusCode).toBe(204);
    expect(h.bus.samples(a).size).toBe(0);
  });
});
