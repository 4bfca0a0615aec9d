/**
 * A poison job event (issue 16, item 3): a native frame whose job event had a 5000-deep `config` was
 * accepted; every processor checkpoint then failed (a RangeError in JobStore.flush), also after a restart,
 * and other tenants' jobs never appeared. Now the collector refuses deep events (400 naming the field), a
 * record the processor cannot apply goes to the dead-letter directory and the partition goes on, and a
 * request whose event cannot be encoded stores nothing (it was a 500 after its samples were stored).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeBusRecord, jobPartitionKey, newRecordWriter } from '../../src/bus/index.js';
import { BusWriter } from '../../src/collector/index.js';
import { loadConfig } from '../../src/config/index.js';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import type { JobEvent } from '../../src/model/job.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import { startTrainwatch, type Trainwatch } from '../../src/server/index.js';
import { tempDir, waitFor } from '../support/helpers.js';
import { collectorHarness, MemoryBus } from '../support/ingest-harness.js';

const T = Date.now() - 10_000;

function deepObject(depth: number): Record<string, unknown> {
  let v: Record<string, unknown> = {};
  for (let i = 0; i < depth; i++) v = { d: v };
  return v;
}

/**
 * A native payload whose one job event has a `config` nested `depth` deep, written as raw JSON (deeper than
 * JSON.stringify can write it): a placeholder string of the same length is replaced byte for byte.
 */
function payloadWithDeepEvent(depth: number, jobId: string): Uint8Array {
  const deep = `${'{"d":'.repeat(depth)}1${'}'.repeat(depth)}`;
  const placeholder = 'x'.repeat(deep.length - 2);
  const b = new SeriesBatchBuilder();
  b.addSeries({ __name__: 'loss', job_id: jobId }).add(T, 1);
  const payload = new NativeEncoder().encodePayload(b.build(), [
    { kind: 'start', jobId, timeMs: T, config: placeholder as unknown as Record<string, unknown> },
  ]);
  const text = Buffer.from(payload);
  const at = text.indexOf(`"${placeholder}"`);
  expect(at).toBeGreaterThan(0);
  text.write(deep, at, 'latin1');
  return new Uint8Array(text);
}

describe('a deep job event at the collector', () => {
  it('is refused with 400 naming the field, and nothing is stored', async () => {
    const h = collectorHarness();
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 'loss', job_id: 'j' }).add(T, 1);
    const frame = new NativeEncoder().encodeFrame({
      sourceId: 's',
      sequence: 1,
      batch: b.build(),
      events: [{ kind: 'start', jobId: 'j', timeMs: T, config: deepObject(1000) }],
    });
    const res = await h.app.inject({
      method: 'POST',
      url: '/api/v1/ingest',
      headers: { 'content-type': NATIVE_CONTENT_TYPE },
      payload: Buffer.from(frame),
    });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().error).toMatch(/job event 0 field config is nested deeper than 32 levels/);
    expect(h.bus.records).toHaveLength(0);
  });

  it('a request whose event cannot be encoded stores none of its records (samples in another partition)', async () => {
    const bus = new MemoryBus();
    const writer = new BusWriter(bus);
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 'loss', job_id: 'samples-job' }).add(T, 1);
    const events: JobEvent[] = [{ kind: 'start', jobId: 'event-job', timeMs: T, config: deepObject(20_000) }];
    expect(bus.partitionOf(jobPartitionKey('t', 'samples-job'))).not.toBe(
      bus.partitionOf(jobPartitionKey('t', 'event-job')),
    );
    await expect(
      writer.write({ tenant: 't', sourceId: 's', sequence: 1, receivedAtMs: T }, b.build(), events),
    ).rejects.toThrow(RangeError);
    expect(bus.records).toHaveLength(0);
  });
});

describe('a poison record already on the bus', () => {
  let tw: Trainwatch;
  let dir: string;
  beforeAll(async () => {
    dir = tempDir('tw-poison-');
    tw = await startTrainwatch(
      loadConfig({
        flags: {
          listen: '127.0.0.1:0',
          data_dir: dir,
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

  it('goes to the dead-letter directory and every later record of every tenant is applied', async () => {
    // The poison record, as an earlier build let it through: a 20000-deep config, in the partition of the
    // good job below.
    const poison = encodeBusRecord(
      newRecordWriter(),
      'a',
      'old-agent',
      1,
      T,
      payloadWithDeepEvent(20_000, 'p'),
    );
    const key = jobPartitionKey('b', 'good');
    await tw.bus!.append(key, poison);
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 'loss', job_id: 'good' }).add(T, 1);
    await new BusWriter(tw.bus!).write(
      { tenant: 'b', sourceId: 'agent', sequence: 1, receivedAtMs: T },
      b.build(),
      [{ kind: 'start', jobId: 'good', timeMs: T, name: 'fine' }],
    );
    await waitFor('the good job to be stored', async () => {
      await tw.processor!.checkpoint();
      return (await tw.jobs!.get('b', 'good', Date.now()))?.name === 'fine' || undefined;
    });
    const deadDir = path.join(dir, 'processor', 'dead-letter');
    expect(existsSync(deadDir)).toBe(true);
    const files = readdirSync(deadDir).sort();
    expect(files).toHaveLength(2);
    const [errorFile, recordFile] = files;
    expect(recordFile).toMatch(/^\d+-\d+\.record$/);
    expect(readFileSync(path.join(deadDir, recordFile!))).toEqual(Buffer.from(poison));
    expect(readFileSync(path.join(deadDir, errorFile!), 'utf8')).toMatch(/nested deeper than 32 levels/);
    // /metrics: the processor's counters live where it runs (a worker thread by default).
    const metrics = (await tw.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^trainwatch_processor_dead_letter_records_total 1$/m);
    expect(await tw.jobs!.get('a', 'p', Date.now())).toBeUndefined();
  });
});
