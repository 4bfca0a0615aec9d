/**
 * Backpressure: with a deliberately slow bus, a flood of remote-write requests is answered 503 with
 * Retry-After instead of being buffered: the bytes in process stay within `ingest.max_inflight_bytes` and
 * the bus queue within its bound. Senders that honour Retry-After (as Prometheus, the OTel exporters and
 * trainwatch's agent do) get every batch stored, once.
 */
import { describe, expect, it } from 'vitest';
import { collectorHarness, MemoryBus } from '../support/ingest-harness.js';
import { RW1_HEADERS, snappyCompress, writeRequestV1 } from '../support/wire.js';

const T0 = Date.now() - 60_000;

function batch(sender: number, i: number): Buffer {
  const series = Array.from({ length: 20 }, (_, k) => ({
    labels: { __name__: 'flood_value', sender: String(sender), k: String(k) },
    samples: [[T0 + i, sender * 1000 + i] as [number, number]],
  }));
  return Buffer.from(snappyCompress(writeRequestV1(series)));
}

describe('backpressure with a slow bus', () => {
  it('answers a flood with 503 + Retry-After, stays within its budget, and loses nothing for retrying senders', async () => {
    const bus = new MemoryBus(20, 3);
    const bodySize = batch(0, 0).length;
    const budget = bodySize * 4;
    const h = collectorHarness({ bus, limits: { maxInflightBytes: budget } });

    let maxInflight = 0;
    const sampler = setInterval(async () => {
      const m =
        (await h.registry.getSingleMetric('trainwatch_ingest_inflight_bytes')!.get()).values[0]?.value ?? 0;
      maxInflight = Math.max(maxInflight, m);
    }, 1);

    const SENDERS = 12;
    const BATCHES = 6;
    const statuses = new Map<number, number>();
    let retryAfterSeen = 0;
    const heapBefore = process.memoryUsage().heapUsed;
    const sender = async (s: number) => {
      for (let i = 0; i < BATCHES; i++) {
        for (let attempt = 0; ; attempt++) {
          const res = await h.app.inject({
            method: 'POST',
            url: '/api/v1/write',
            headers: RW1_HEADERS,
            payload: batch(s, i),
          });
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          if (res.statusCode === 204) break;
          expect([429, 503], res.body).toContain(res.statusCode);
          const retryAfter = Number(res.headers['retry-after']);
          expect(retryAfter).toBeGreaterThanOrEqual(1);
          retryAfterSeen++;
          // Honour Retry-After (1 s), with full jitter so that the senders do not come back together (retry
          // back-off, not a wait for an event).
          await new Promise((r) => setTimeout(r, retryAfter * 1000 * Math.random()));
          expect(attempt).toBeLessThan(100);
        }
      }
    };
    await Promise.all(Array.from({ length: SENDERS }, (_, s) => sender(s)));
    clearInterval(sampler);

    expect(retryAfterSeen).toBeGreaterThan(0);
    expect(statuses.get(503)).toBeGreaterThan(0);
    expect(maxInflight).toBeLessThanOrEqual(budget);
    expect(bus.maxPendingSeen).toBeLessThanOrEqual(3);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(200 << 20);

    // Every sample of every batch is in the bus exactly once.
    const seen = new Map<string, number>();
    for (const r of bus.stored())
      for (const s of r.series)
        s.t.forEach((t, j) => {
          const key = `${s.labels.sender}/${s.labels.k}/${t}/${s.v[j]}`;
          seen.set(key, (seen.get(key) ?? 0) + 1);
        });
    expect(seen.size).toBe(SENDERS * BATCHES * 20);
    for (const [key, n] of seen) expect(n, key).toBe(1);
    const metrics = await h.registry.metrics();
    expect(metrics).toMatch(
      /trainwatch_ingest_rejected_requests_total\{protocol="remote_write",reason="overloaded"\} \d+/,
    );
  }, 60_000);
});

describe('backpressure when the processors fall behind', () => {
  it('answers 503 with Retry-After naming the lag while it lasts, before reading or appending anything', async () => {
    let lag: { reason: string; retryAfterSeconds: number } | undefined = {
      reason:
        'trainwatch is catching up: the processors are 60000 bus records behind and the limit is 50000 (processor.max_lag_records); retry after 2 s',
      retryAfterSeconds: 2,
    };
    const bus = new MemoryBus();
    const h = collectorHarness({ bus, backpressure: () => lag });
    const post = () =>
      h.app.inject({ method: 'POST', url: '/api/v1/write', headers: RW1_HEADERS, payload: batch(1, 1) });
    const paused = await post();
    expect(paused.statusCode).toBe(503);
    expect(paused.headers['retry-after']).toBe('2');
    expect(paused.json().error).toMatch(/processor\.max_lag_records/);
    expect(bus.records).toHaveLength(0);
    lag = undefined;
    expect((await post()).statusCode).toBe(204);
    expect(bus.records).toHaveLength(1);
  });
});
