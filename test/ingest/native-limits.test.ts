/**
 * The native protocol shares the per-tenant limits of the other protocols: samples per request, active
 * series (counted across protocols in one registry per tenant) and the sample rate.
 */
import { describe, expect, it } from 'vitest';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import { collectorHarness } from '../support/ingest-harness.js';
import { RW1_HEADERS, snappyCompress, writeRequestV1 } from '../support/wire.js';

const encoder = new NativeEncoder();
const NOW = Date.now();
let seq = 0;

function frame(series: string[], samplesEach = 1): Buffer {
  const b = new SeriesBatchBuilder();
  for (const s of series) {
    b.addSeries({ __name__: 'm', s });
    for (let i = 0; i < samplesEach; i++) b.add(NOW - i, i);
  }
  return Buffer.from(
    encoder.encodeFrame({ sourceId: 'limits', sequence: seq++, batch: b.build(), events: [] }),
  );
}

function post(h: ReturnType<typeof collectorHarness>, body: Buffer) {
  return h.app.inject({
    method: 'POST',
    url: '/api/v1/ingest',
    headers: { 'content-type': NATIVE_CONTENT_TYPE },
    payload: body,
  });
}

describe('native protocol limits', () => {
  it('refuses a batch over ingest.max_samples_per_request', async () => {
    const h = collectorHarness({ limits: { maxSamplesPerRequest: 5 } });
    const res = await post(h, frame(['a', 'b'], 3));
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(
      /limit ingest.max_samples_per_request exceeded: the batch has 6 samples, the limit is 5/,
    );
    expect(h.bus.records).toHaveLength(0);
  });

  it('counts series against the same active-series limit as remote-write, and the same rate', async () => {
    const h = collectorHarness({ maxActiveSeries: 3 });
    const rw = snappyCompress(writeRequestV1([{ labels: { __name__: 'm', s: 'a' }, samples: [[NOW, 1]] }]));
    expect(
      (
        await h.app.inject({
          method: 'POST',
          url: '/api/v1/write',
          headers: RW1_HEADERS,
          payload: Buffer.from(rw),
        })
      ).statusCode,
    ).toBe(204);
    // Series `a` is the same series whatever protocol carried it.
    expect((await post(h, frame(['a', 'b', 'c']))).statusCode).toBe(200);
    const over = await post(h, frame(['a', 'd']));
    expect(over.statusCode).toBe(400);
    expect(over.json().error).toMatch(
      /max_active_series exceeded: tenant anon has 3 active series .* first new series refused: m\{s="d"\}/,
    );

    const r = collectorHarness({ samplesPerSecond: 1, samplesBurst: 4 });
    expect((await post(r, frame(['a', 'b'], 2))).statusCode).toBe(200);
    const limited = await post(r, frame(['a'], 2));
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['retry-after']).toBeDefined();
  });
});
