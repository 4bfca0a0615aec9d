/**
 * No acknowledged sample is lost (DESIGN.md, Guarantees): `trainwatch start` runs as a child process and is
 * killed with SIGKILL in the middle of a stream of writes, three times; after each restart on the same data
 * directory every acknowledged batch is readable exactly once, and batches retried after the restart with
 * the same idempotency key do not appear twice.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SeriesBatchBuilder } from '../../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../../src/protocol/native.js';
import {
  type Child,
  freePort,
  getJson,
  startServer,
  stopChild,
  tempDir,
  waitFor,
} from '../support/helpers.js';

const SAMPLES_PER_BATCH = 500;
const children: Child[] = [];

afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => stopChild(c, 'SIGKILL')));
});

function startKill9Server(port: number, dataDir: string): Promise<Child> {
  return startServer({
    port,
    dataDir,
    children,
    env: {
      TRAINWATCH_PROCESSOR__CHECKPOINT_INTERVAL_MS: '50',
      // Sending without a token must be allowed explicitly (docs/ingest.md, "Authentication").
      TRAINWATCH_AUTH__ANONYMOUS_SCOPES: '[ingest, read]',
    },
  });
}

const encoder = new NativeEncoder();
const BASE_T = Date.now() - 3_600_000;

/** Batch i carries samples (BASE_T + i*SAMPLES + k) → value i*SAMPLES + k, split over two series. */
function batchFrame(i: number): Uint8Array {
  const b = new SeriesBatchBuilder();
  for (const series of ['a', 'b']) {
    b.addSeries({ __name__: 'e2e_value', job_id: 'kill9', series });
    for (let k = 0; k < SAMPLES_PER_BATCH; k++) {
      if ((k % 2 === 0) === (series === 'a'))
        b.add(BASE_T + i * SAMPLES_PER_BATCH + k, i * SAMPLES_PER_BATCH + k);
    }
  }
  return encoder.encodeFrame({ sourceId: 'kill9-writer', sequence: i, batch: b.build(), events: [] }, 'zlib');
}

async function post(port: number, frame: Uint8Array): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/ingest`, {
      method: 'POST',
      headers: { 'content-type': NATIVE_CONTENT_TYPE },
      body: frame,
      signal: AbortSignal.timeout(5000),
    });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

interface SeriesBody {
  data: { series: { labels: Record<string, string>; t: number[]; v: number[] }[] };
}

async function readAll(port: number): Promise<Map<number, number[]>> {
  const body = await getJson<SeriesBody>(
    `http://127.0.0.1:${port}/api/tw/v1/series?metric=e2e_value&job_id=kill9&start=${BASE_T - 1}&end=${BASE_T + 10_000_000}`,
  );
  const seen = new Map<number, number[]>();
  for (const s of body.data.series) {
    s.t.forEach((t, i) => {
      const list = seen.get(t) ?? [];
      list.push(s.v[i]!);
      seen.set(t, list);
    });
  }
  return seen;
}

describe('kill -9 in the middle of a stream of writes', () => {
  it('loses no acknowledged batch and shows none twice, over three crashes', async () => {
    const dataDir = tempDir('tw-kill9-');
    const port = await freePort();
    const acked = new Set<number>();
    let next = 0;

    for (let round = 0; round < 3; round++) {
      const child = await startKill9Server(port, dataDir);
      // Retry a few batches from before the crash (acknowledged or not): idempotency keys + idempotent storage.
      for (let i = Math.max(0, next - 5); i < next; i++) if (await post(port, batchFrame(i))) acked.add(i);

      // Four writers stream batches; the process is killed while they run.
      let stop = false;
      const writer = async () => {
        while (!stop) {
          const i = next++;
          if (await post(port, batchFrame(i))) acked.add(i);
        }
      };
      const writers = [writer(), writer(), writer(), writer()];
      await waitFor(
        'some batches acknowledged',
        () => (acked.size >= (round + 1) * 40 ? true : undefined),
        20_000,
        10,
      );
      process.kill(child.proc.pid!, 'SIGKILL');
      await child.exited;
      stop = true;
      await Promise.all(writers);
    }

    await startKill9Server(port, dataDir);
    const expectedSamples = acked.size * SAMPLES_PER_BATCH;
    const seen = await waitFor(
      'every acknowledged sample after replay',
      async () => {
        const s = await readAll(port);
        for (const i of acked) if (!s.has(BASE_T + i * SAMPLES_PER_BATCH)) return undefined;
        return s;
      },
      30_000,
      200,
    );
    for (const i of acked) {
      for (let k = 0; k < SAMPLES_PER_BATCH; k++) {
        expect(seen.get(BASE_T + i * SAMPLES_PER_BATCH + k), `batch ${i} sample ${k}`).toEqual([
          i * SAMPLES_PER_BATCH + k,
        ]);
      }
    }
    // Nothing is shown twice, and nothing appears that was never sent.
    for (const [t, values] of seen) {
      expect(values.length, `timestamp ${t}`).toBe(1);
      expect(t - BASE_T).toBeLessThan(next * SAMPLES_PER_BATCH);
    }
    expect(seen.size).toBeGreaterThanOrEqual(expectedSamples);
  }, 120_000);
});
