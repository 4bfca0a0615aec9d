import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/helpers.js';
import { AnonymousAuthenticator } from '../auth/index.js';
import {
  type AppendResult,
  type BusProducer,
  decodeBusRecordHeader,
  hashPartitionKey,
  jobPartitionKey,
} from '../bus/index.js';
import { SeriesBatchBuilder } from '../model/batch.js';
import { decodePayload, NATIVE_CONTENT_TYPE, NativeEncoder } from '../protocol/native.js';
import { createHttpServer } from '../server/http.js';
import { IdempotencyWindow } from './idempotency.js';
import { createCollectorMetrics } from './metrics.js';
import { registerNativeIngest } from './native-route.js';
import { BusWriter } from './to-bus.js';

/** A bus whose appends complete only when the test says so, to observe when the collector answers. */
class ManualBus implements BusProducer {
  readonly partitionCount = 4;
  readonly appended: {
    key: string;
    record: Uint8Array;
    release: (r: AppendResult) => void;
    fail: (e: Error) => void;
  }[] = [];
  partitionOf(key: string): number {
    return hashPartitionKey(key) % this.partitionCount;
  }
  append(key: string, record: Uint8Array): Promise<AppendResult> {
    return new Promise((release, fail) => this.appended.push({ key, record: record.slice(), release, fail }));
  }
}

/** Waits until the route has made `count` bus appends in all. */
async function appends(bus: ManualBus, count: number): Promise<void> {
  await waitFor(`${count} bus appends`, () => bus.appended.length >= count, 10_000, 5);
}

function setup() {
  const bus = new ManualBus();
  const { app, access } = createHttpServer({
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
    bodyLimit: 1 << 20,
  });
  const auth = new AnonymousAuthenticator('team-a');
  access.use(auth);
  registerNativeIngest(app, {
    auth,
    busWriter: new BusWriter(bus),
    idempotency: new IdempotencyWindow(100),
    limits: {
      maxBodyBytes: 1 << 20,
      maxPayloadBytes: 1 << 20,
      maxLabelsPerSeries: 10,
      maxLabelValueBytes: 100,
    },
    metrics: createCollectorMetrics(new Registry()),
  });
  return { bus, app };
}

const encoder = new NativeEncoder();

function frame(seq: number, jobs: string[]): Buffer {
  const b = new SeriesBatchBuilder();
  for (const job of jobs)
    b.addSeries({ __name__: 'train_loss', job_id: job, tenant: 'someone-else' }).add(1000, 1);
  return Buffer.from(
    encoder.encodeFrame({
      sourceId: 'src',
      sequence: seq,
      batch: b.build(),
      events: [{ kind: 'start', jobId: jobs[0]!, timeMs: 1000 }],
    }),
  );
}

describe('native ingest route', () => {
  it('answers only after the bus made the batch durable', async () => {
    const { bus, app } = setup();
    let answered = false;
    const reply = app
      .inject({
        method: 'POST',
        url: '/api/v1/ingest',
        headers: { 'content-type': NATIVE_CONTENT_TYPE },
        payload: frame(1, ['j1']),
      })
      .then((r) => {
        answered = true;
        return r;
      });
    await appends(bus, 1);
    // The route has handed the batch to the bus and awaits it; give any premature reply a turn to arrive.
    await new Promise(setImmediate);
    expect(answered).toBe(false);
    bus.appended[0]!.release({ partition: 0, offset: 0 });
    expect((await reply).statusCode).toBe(200);
  });

  it('answers 503 with Retry-After when the bus cannot take the batch, and accepts the retry', async () => {
    const { bus, app } = setup();
    const first = app.inject({
      method: 'POST',
      url: '/api/v1/ingest',
      headers: { 'content-type': NATIVE_CONTENT_TYPE },
      payload: frame(2, ['j1']),
    });
    await appends(bus, 1);
    const { TrainwatchError, Errors } = await import('../model/errors.js');
    bus.appended[0]!.fail(new TrainwatchError(Errors.unavailable, 'the bus write queue is full', 1));
    const res = await first;
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    // The failed attempt is forgotten by the idempotency window: the retry is appended.
    const retry = app.inject({
      method: 'POST',
      url: '/api/v1/ingest',
      headers: { 'content-type': NATIVE_CONTENT_TYPE },
      payload: frame(2, ['j1']),
    });
    await appends(bus, 2);
    bus.appended[1]!.release({ partition: 0, offset: 0 });
    expect((await retry).json().data.duplicate).toBe(false);
  });

  it('splits a batch by (tenant, job) partition key, with the tenant from the credentials', async () => {
    const { bus, app } = setup();
    const reply = app.inject({
      method: 'POST',
      url: '/api/v1/ingest',
      headers: { 'content-type': NATIVE_CONTENT_TYPE },
      payload: frame(3, ['j1', 'j2', 'j1']),
    });
    await appends(bus, 2);
    for (const a of bus.appended) a.release({ partition: 0, offset: 0 });
    expect((await reply).statusCode).toBe(200);
    expect(bus.appended.map((a) => a.key).sort()).toEqual(
      [jobPartitionKey('team-a', 'j1'), jobPartitionKey('team-a', 'j2')].sort(),
    );
    for (const a of bus.appended) {
      const header = decodeBusRecordHeader(a.record);
      expect(header.tenant).toBe('team-a');
      const { batch, events } = decodePayload(a.record.subarray(header.payloadStart));
      const jobs = new Set(batch.series.map((s) => s.job_id));
      expect(jobs.size).toBe(1);
      if (jobs.has('j1')) {
        expect(batch.series.length).toBe(2);
        expect(events).toHaveLength(1);
      } else expect(events).toHaveLength(0);
    }
  });
});
