/**
 * `trainwatch sync`: frames on disk (the Python SDK's offline directory layout) uploaded to a real
 * trainwatch in this process, idempotently; invalid files set aside; an unreachable server leaves them.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, tempDir, waitFor } from '../../../test/support/helpers.js';
import { loadConfig } from '../../config/index.js';
import { SeriesBatchBuilder } from '../../model/batch.js';
import { NativeEncoder } from '../../protocol/native.js';
import { startTrainwatch, type Trainwatch } from '../../server/index.js';
import { findFrames, syncDirectory } from './sync.js';

let tw: Trainwatch;
const T0 = Date.now() - 60_000;

beforeAll(async () => {
  const config = loadConfig({
    flags: {
      listen: '127.0.0.1:0',
      data_dir: tempDir(),
      processor: { checkpoint_interval_ms: 100 },
      auth: { anonymous_scopes: ['ingest', 'read'] },
    },
  });
  tw = await startTrainwatch(config, pino({ level: 'silent' }));
});

afterAll(async () => {
  await tw?.stop();
});

function frame(sequence: number, metric: string, from: number): Uint8Array {
  const b = new SeriesBatchBuilder();
  b.addSeries({ __name__: metric, job_id: 'sync-job', rank: '0' });
  for (let i = 0; i < 3; i++) b.add(T0 + (from + i) * 1000, from + i);
  return new NativeEncoder().encodeFrame(
    { sourceId: 'sdk-host-1-abcd', sequence, batch: b.build(), events: [] },
    'zlib',
  );
}

/** The offline layout of the SDK: <dir>/<job>/<source>/<sequence, 16 digits>.twb */
function writeOfflineDir(): string {
  const dir = tempDir('tw-sync-');
  const source = path.join(dir, 'sync-job', 'sdk-host-1-abcd');
  mkdirSync(source, { recursive: true });
  writeFileSync(path.join(source, '0000000000000000.twb'), frame(0, 'train_loss', 0));
  writeFileSync(path.join(source, '0000000000000001.twb'), frame(1, 'train_loss', 3));
  writeFileSync(path.join(source, '0000000000000002.twb'), frame(2, 'bad-name', 6)); // refused: 400
  writeFileSync(path.join(dir, 'junk.twb'), 'not a frame');
  return dir;
}

async function lossSamples(metric = 'train_loss'): Promise<number[]> {
  const res = await tw.app.inject({
    method: 'GET',
    url: `/api/tw/v1/series?metric=${metric}&job_id=sync-job&start=${T0 - 1000}&end=${T0 + 60_000}`,
  });
  expect(res.statusCode).toBe(200);
  const series = res.json().data.series as { v: number[] }[];
  return series.flatMap((s) => s.v);
}

/** The stored loss samples once there are at least `n` (or what there is after 20 s, for the assertion). */
async function waitForSamples(n: number): Promise<number[]> {
  return waitFor(`${n} loss samples`, async () => {
    const got = await lossSamples();
    return got.length >= n ? got : undefined;
  }).catch(() => lossSamples());
}

describe('trainwatch sync', () => {
  it('uploads every frame once, sets invalid ones aside, and is idempotent when repeated', async () => {
    const dir = writeOfflineDir();
    const first = await syncDirectory(dir, { url: tw.url });
    expect(first).toEqual({ frames: 4, sent: 2, duplicate: 0, rejected: 2, failed: 0 });
    expect(await waitForSamples(6)).toEqual([0, 1, 2, 3, 4, 5]);
    const source = path.join(dir, 'sync-job', 'sdk-host-1-abcd');
    expect(existsSync(path.join(source, '0000000000000000.twb.sent'))).toBe(true);
    expect(existsSync(path.join(source, '0000000000000002.twb.rejected'))).toBe(true);
    expect(existsSync(path.join(dir, 'junk.twb'))).toBe(true); // not ours to rename: it is not a frame

    const again = await syncDirectory(dir, { url: tw.url });
    expect(again).toMatchObject({ frames: 1, sent: 0, rejected: 1 }); // only the junk file is left

    const resent = await syncDirectory(dir, { url: tw.url, resend: true });
    expect(resent).toMatchObject({ sent: 2, duplicate: 2 });
    // A barrier: one more frame of the same job (same bus partition, read in order) sent after the resend.
    // Once its sample is stored, a duplicate the resend had let through would be stored too.
    const barrier = tempDir('tw-sync-barrier-');
    mkdirSync(path.join(barrier, 'sync-job', 'sdk-host-1-abcd'), { recursive: true });
    writeFileSync(
      path.join(barrier, 'sync-job', 'sdk-host-1-abcd', '0000000000000010.twb'),
      frame(10, 'sync_barrier', 0),
    );
    expect(await syncDirectory(barrier, { url: tw.url })).toMatchObject({ sent: 1, duplicate: 0 });
    await waitFor('the barrier sample', async () =>
      (await lossSamples('sync_barrier')).length === 3 ? true : undefined,
    );
    expect(await lossSamples()).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('leaves the frames in place when the server cannot be reached', async () => {
    const dir = writeOfflineDir();
    const report = await syncDirectory(dir, {
      url: `http://127.0.0.1:${await freePort()}`,
      giveUpAfterMs: 200,
      baseDelayMs: 10,
    });
    expect(report.failed).toBe(3);
    expect(findFrames(dir)).toHaveLength(4);
  });
});
