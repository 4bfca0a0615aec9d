/**
 * Disk full (issue 16, item 8): `/readyz` stayed ready while storage had stopped accepting writes, and only a
 * restart resumed it. Now readiness fails while writes are stopped, naming why, and storage resumes by
 * itself once it can write again; samples the processor could not store meanwhile are stored then.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPartitionKey, jobPartitionKey } from '../src/bus/index.js';
import { loadConfig } from '../src/config/index.js';
import { SeriesBatchBuilder } from '../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../src/protocol/native.js';
import { startTrainwatch, type Trainwatch } from '../src/server/index.js';
import { tempDir, waitFor } from './support/helpers.js';

let tw: Trainwatch;
let dir: string;
const encoder = new NativeEncoder();
let seq = 0;

/** Two processor workers, whatever the cores: storage is two shards, one of which fails. */
const WORKERS = 2;

beforeAll(async () => {
  dir = tempDir('tw-full-');
  tw = await startTrainwatch(
    loadConfig({
      flags: {
        listen: '127.0.0.1:0',
        data_dir: dir,
        auth: { anonymous_scopes: ['ingest', 'read'] },
        processor: { checkpoint_interval_ms: 50, workers: WORKERS },
      },
    }),
    pino({ level: 'silent' }),
  );
});
afterAll(async () => {
  await tw?.stop();
});

async function send(t: number, v: number) {
  const b = new SeriesBatchBuilder();
  b.addSeries({ __name__: 'full_disk', job_id: 'j' }).add(t, v);
  const res = await tw.app.inject({
    method: 'POST',
    url: '/api/v1/ingest',
    headers: { 'content-type': NATIVE_CONTENT_TYPE },
    payload: Buffer.from(
      encoder.encodeFrame({ sourceId: 'full', sequence: seq++, batch: b.build(), events: [] }),
    ),
  });
  expect(res.statusCode, res.body).toBe(200);
}

const readyz = () => tw.app.inject({ method: 'GET', url: '/readyz' });

describe('storage stopped by a failing disk', () => {
  it('is not ready while writes are stopped, and resumes without a restart', async () => {
    await waitFor('ready', async () => (await readyz()).statusCode === 200 || undefined);
    const now = Date.now();
    // Three hours of data: the next checkpoint cuts a block and rotates the head log, which fails below.
    await send(now - 3 * 3600_000, 1);
    await send(now - 1000, 2);
    // The shard of job j (the worker that owns its bus partition, of 8) is the one whose disk fails.
    const shard = (hashPartitionKey(jobPartitionKey('default', 'j')) % 8) % WORKERS;
    const head = path.join(dir, 'tsdb', `shard-${shard}`, 'head');
    rmSync(head, { recursive: true });
    writeFileSync(head, '');
    const notReady = await waitFor('not ready', async () => {
      const r = await readyz();
      return r.statusCode === 503 ? (r.json() as { checks: Record<string, string> }) : undefined;
    });
    expect(notReady.checks.storage).toMatch(/storage stopped accepting writes/);
    await send(now, 3); // acknowledged: it is in the bus; storage takes it once it resumes

    rmSync(head);
    mkdirSync(head);
    await waitFor('ready again', async () => (await readyz()).statusCode === 200 || undefined);
    await waitFor('every acknowledged sample stored', async () => {
      const r = await tw.app.inject({
        method: 'GET',
        url: `/api/v1/query?query=${encodeURIComponent('count_over_time(full_disk[4h])')}&time=${(now + 1000) / 1000}`,
      });
      return r.json().data?.result?.[0]?.value?.[1] === '3' || undefined;
    });
  });
});
