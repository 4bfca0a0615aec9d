/**
 * Late samples (issue 16, item 6): a sample 2 h older than its series' newest got 204, then storage dropped
 * it ("tooOld"), breaking "accepted whole or refused whole". The collector now refuses such a request with
 * 400 naming the series and `storage.out_of_order_window`, stores nothing of it, and keeps accepting samples
 * within the window. Checked here through a whole trainwatch, so that what is acknowledged is queryable.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { tempDir, waitFor } from '../support/helpers.js';
import { collectorHarness } from '../support/ingest-harness.js';
import { RW1_HEADERS, snappyCompress, writeRequestV1 } from '../support/wire.js';

const H = 3_600_000;
const NOW = Date.now();

function rw(samples: [number, number][], name = 'late_metric') {
  return Buffer.from(snappyCompress(writeRequestV1([{ labels: { __name__: name, job: 'j' }, samples }])));
}

describe('late samples through a whole trainwatch (storage.out_of_order_window 1h)', () => {
  let tw: Trainwatch;
  beforeAll(async () => {
    tw = await startTrainwatch(
      loadConfig({
        flags: {
          listen: '127.0.0.1:0',
          data_dir: tempDir('tw-late-'),
          auth: { anonymous_scopes: ['ingest', 'read'] },
          processor: { checkpoint_interval_ms: 50 },
        },
      }),
      pino({ level: 'silent' }),
    );
  });
  afterAll(async () => {
    await tw?.stop();
  });

  it('refuses a sample 2 h older than the newest with 400 naming series and window; what is acked is stored', async () => {
    const first = await tw.app.inject({
      method: 'POST',
      url: '/api/v1/write',
      headers: RW1_HEADERS,
      payload: rw([[NOW, 1]]),
    });
    expect(first.statusCode, first.body).toBe(204);
    const late = await tw.app.inject({
      method: 'POST',
      url: '/api/v1/write',
      headers: RW1_HEADERS,
      payload: rw([[NOW - 2 * H, 2]]),
    });
    expect(late.statusCode, late.body).toBe(400);
    expect(late.json().error).toMatch(
      /series late_metric\{job="j"\}: .* beyond the out-of-order window of 3600 s \(storage\.out_of_order_window\)/,
    );
    // Within the window: accepted, and stored.
    const ooo = await tw.app.inject({
      method: 'POST',
      url: '/api/v1/write',
      headers: RW1_HEADERS,
      payload: rw([[NOW - 10 * 60_000, 3]]),
    });
    expect(ooo.statusCode, ooo.body).toBe(204);
    const values = await waitFor('the acknowledged samples to be queryable', async () => {
      const res = await tw.app.inject({
        method: 'GET',
        url: `/api/v1/query_range?query=late_metric&start=${(NOW - 3 * H) / 1000}&end=${(NOW + 1000) / 1000}&step=60`,
      });
      const v = res.json().data?.result?.[0]?.values as [number, string][] | undefined;
      return v && v.length >= 2 ? v : undefined;
    });
    expect(values.map(([, v]) => v)).not.toContain('2');
  });

  it('refuses a native batch with a late sample whole', async () => {
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 'late_native', job_id: 'run' }).add(NOW, 1);
    const encoder = new NativeEncoder();
    const ok = await tw.app.inject({
      method: 'POST',
      url: '/api/v1/ingest',
      headers: { 'content-type': NATIVE_CONTENT_TYPE },
      payload: Buffer.from(
        encoder.encodeFrame({ sourceId: 'late', sequence: 1, batch: b.build(), events: [] }),
      ),
    });
    expect(ok.statusCode, ok.body).toBe(200);
    const late = new SeriesBatchBuilder();
    late.addSeries({ __name__: 'other', job_id: 'run' }).add(NOW, 1);
    late.addSeries({ __name__: 'late_native', job_id: 'run' }).add(NOW - 2 * H, 2);
    const res = await tw.app.inject({
      method: 'POST',
      url: '/api/v1/ingest',
      headers: { 'content-type': NATIVE_CONTENT_TYPE },
      payload: Buffer.from(
        encoder.encodeFrame({ sourceId: 'late', sequence: 2, batch: late.build(), events: [] }),
      ),
    });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().error).toMatch(/late_native.*storage\.out_of_order_window/);
  });
});

describe('late samples at the collector', () => {
  it('a refused request does not move the series newest time', async () => {
    const h = collectorHarness({ outOfOrderWindowMs: H });
    const post = (payload: Buffer) =>
      h.app.inject({ method: 'POST', url: '/api/v1/write', headers: RW1_HEADERS, payload });
    expect((await post(rw([[NOW - 3 * H, 1]]))).statusCode).toBe(204);
    // The request moves the newest to NOW, then fails on another series' bad name: rolled back.
    const bad = Buffer.from(
      snappyCompress(
        writeRequestV1([
          { labels: { __name__: 'late_metric', job: 'j' }, samples: [[NOW, 1]] },
          { labels: { __name__: 'bad-name' }, samples: [[NOW, 1]] },
        ]),
      ),
    );
    expect((await post(bad)).statusCode).toBe(400);
    expect((await post(rw([[NOW - 2.5 * H, 2]]))).statusCode).toBe(204);
  });

  it('says how many active series a tenant had before the request, not counting the request', async () => {
    const h = collectorHarness({ maxActiveSeries: 3 });
    const res = await h.app.inject({
      method: 'POST',
      url: '/api/v1/write',
      headers: RW1_HEADERS,
      payload: Buffer.from(
        snappyCompress(
          writeRequestV1(
            Array.from({ length: 5 }, (_, i) => ({ labels: { __name__: `m${i}` }, samples: [[NOW, 1]] })),
          ),
        ),
      ),
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(
      /tenant anon has 0 active series .* and this request adds more than 3 new ones; the limit is 3/,
    );
  });
});
