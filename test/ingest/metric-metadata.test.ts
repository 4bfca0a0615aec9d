/**
 * `/api/v1/metadata` through a real server (issue 17, item 10): what remote-write 1.0 (`MetricMetadata`),
 * remote-write 2.0 (per-series `Metadata`) and OTLP (description, unit, kind) declare comes back with its type,
 * help and unit; canonical metrics answer from the catalog; each tenant sees only its own declarations.
 * Decoding runs in the ingest worker threads (the default), so the declarations cross threads and are
 * written to the metadata store (SQLite) in batches.
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
  PbWriter,
  RW1_HEADERS,
  RW2_HEADERS,
  snappyCompress,
  writeRequestV1,
  writeRequestV2,
} from '../support/wire.js';

let tw: Trainwatch;
let meta: MetaStore;
const token: Record<'a' | 'b', { read: string; ingest: string }> = {
  a: { read: '', ingest: '' },
  b: { read: '', ingest: '' },
};

beforeAll(async () => {
  const dir = tempDir('tw-metadata-');
  tw = await startTrainwatch(
    loadConfig({
      flags: {
        listen: '127.0.0.1:0',
        data_dir: dir,
        processor: { checkpoint_interval_ms: 100 },
        ingest: { workers: 1 },
        auth: { anonymous_tenant: null },
      },
    }),
    pino({ level: 'silent' }),
  );
  meta = new MetaStore(path.join(dir, 'meta.db'));
  const tokens = new TokenStore(meta);
  for (const t of ['a', 'b'] as const) {
    token[t].read = tokens.create({ tenant: t, scope: 'read' }).token;
    token[t].ingest = tokens.create({ tenant: t, scope: 'ingest' }).token;
  }
});

afterAll(async () => {
  meta?.close();
  await tw?.stop();
});

const COUNTER = 1;
const GAUGE = 2;
const HISTOGRAM = 3;

async function post(tenant: 'a' | 'b', url: string, headers: Record<string, string>, payload: Buffer) {
  const res = await tw.app.inject({
    method: 'POST',
    url,
    headers: { ...headers, authorization: `Bearer ${token[tenant].ingest}` },
    payload,
  });
  expect(res.statusCode, res.body).toBeLessThan(300);
}

async function metadata(tenant: 'a' | 'b', query = '') {
  const res = await tw.app.inject({
    method: 'GET',
    url: `/api/v1/metadata${query}`,
    headers: { authorization: `Bearer ${token[tenant].read}` },
  });
  return res;
}

type Entry = { type: string; help: string; unit: string };

/**
 * Expects `metric`'s entries for `tenant` to become `expected` (the store is written in batches, and until then
 * a stored metric answers from the catalog or as unknown).
 */
async function expectDeclared(tenant: 'a' | 'b', metric: string, expected: Entry[]): Promise<void> {
  let last: Entry[] | undefined;
  try {
    await waitFor(`metadata of ${metric} for tenant ${tenant}`, async () => {
      const res = await metadata(tenant, `?metric=${metric}`);
      expect(res.statusCode, res.body).toBe(200);
      last = res.json().data[metric];
      return JSON.stringify(last) === JSON.stringify(expected) ? true : undefined;
    });
  } catch {
    // The assertion below shows what was answered instead.
  }
  expect(last).toEqual(expected);
}

/** An OTLP/protobuf request with one metric (a gauge, or a monotonic cumulative sum). */
function otlpProtobuf(name: string, description: string, unit: string, kind: 'gauge' | 'sum'): Uint8Array {
  const time = Buffer.alloc(8);
  time.writeBigUInt64LE(BigInt(Date.now()) * 1_000_000n);
  const point = (dp: PbWriter) => dp.rawFixed64(3, time).double(4, 7);
  return new PbWriter()
    .message(1, (rm) =>
      rm.message(2, (sm) =>
        sm.message(2, (m) => {
          m.string(1, name).string(2, description).string(3, unit);
          if (kind === 'gauge') m.message(5, (g) => g.message(1, point));
          else m.message(7, (s) => s.message(1, point).int64(2, 2).int64(3, 1));
        }),
      ),
    )
    .finish();
}

describe('metric metadata', () => {
  const now = Date.now();

  it('keeps what remote-write 1.0 declares, listing a histogram by its family name', async () => {
    await post(
      'a',
      '/api/v1/write',
      RW1_HEADERS,
      Buffer.from(
        snappyCompress(
          writeRequestV1(
            [
              { labels: { __name__: 'rw1_requests_total', job_id: 'j1' }, samples: [[now, 5]] },
              {
                labels: { __name__: 'rw1_latency_seconds_bucket', job_id: 'j1', le: '+Inf' },
                samples: [[now, 5]],
              },
            ],
            [
              { type: COUNTER, family: 'rw1_requests_total', help: 'Requests served.', unit: '' },
              { type: HISTOGRAM, family: 'rw1_latency_seconds', help: 'Request latency.', unit: 'seconds' },
            ],
          ),
        ),
      ),
    );
    await expectDeclared('a', 'rw1_requests_total', [
      { type: 'counter', help: 'Requests served.', unit: '' },
    ]);
    await expectDeclared('a', 'rw1_latency_seconds', [
      { type: 'histogram', help: 'Request latency.', unit: 'seconds' },
    ]);
    // Once the histogram's series is stored, the listing shows the family, not its `_bucket` series.
    await waitFor('the histogram series stored', async () => {
      const all = (await metadata('a')).json().data;
      return all.rw1_requests_total && !('rw1_latency_seconds_bucket' in all) && all.rw1_latency_seconds
        ? true
        : undefined;
    });
  });

  it('keeps what remote-write 2.0 declares per series', async () => {
    await post(
      'a',
      '/api/v1/write',
      RW2_HEADERS,
      Buffer.from(
        snappyCompress(
          writeRequestV2([
            {
              labels: { __name__: 'rw2_queue_depth', job_id: 'j2', queue: 'x' },
              samples: [[now, 3]],
              metadata: { type: GAUGE, help: 'Jobs waiting.', unit: '' },
            },
            {
              labels: { __name__: 'rw2_queue_depth', job_id: 'j2', queue: 'y' },
              samples: [[now, 4]],
              metadata: { type: GAUGE, help: 'Jobs waiting.', unit: '' },
            },
            {
              labels: { __name__: 'rw2_io_bytes_total', job_id: 'j2' },
              samples: [[now, 4]],
              metadata: { type: COUNTER, help: 'Bytes moved.', unit: 'bytes' },
            },
          ]),
        ),
      ),
    );
    await expectDeclared('a', 'rw2_queue_depth', [{ type: 'gauge', help: 'Jobs waiting.', unit: '' }]);
    await expectDeclared('a', 'rw2_io_bytes_total', [
      { type: 'counter', help: 'Bytes moved.', unit: 'bytes' },
    ]);
  });

  it('keeps what OTLP declares (JSON and protobuf): description, unit, and kind as type', async () => {
    const json = {
      resourceMetrics: [
        {
          scopeMetrics: [
            {
              metrics: [
                {
                  name: 'otel.gpu.memory',
                  description: 'GPU memory the exporter saw.',
                  unit: 'By',
                  gauge: { dataPoints: [{ timeUnixNano: String(now * 1e6), asDouble: 1 }] },
                },
              ],
            },
          ],
        },
      ],
    };
    await post('a', '/v1/metrics', { 'content-type': 'application/json' }, Buffer.from(JSON.stringify(json)));
    await expectDeclared('a', 'otel_gpu_memory_bytes', [
      { type: 'gauge', help: 'GPU memory the exporter saw.', unit: 'bytes' },
    ]);
    await post(
      'a',
      '/v1/metrics',
      { 'content-type': 'application/x-protobuf' },
      Buffer.from(otlpProtobuf('otel.requests', 'Requests handled.', '{request}', 'sum')),
    );
    await expectDeclared('a', 'otel_requests_total', [
      { type: 'counter', help: 'Requests handled.', unit: '' },
    ]);
  });

  it('answers canonical metrics from the catalog, and unknown for others', async () => {
    const b = new SeriesBatchBuilder();
    b.addSample({ __name__: 'gpu_utilization_ratio', job_id: 'j3', node_id: 'n1', gpu: '0' }, now, 0.9);
    b.addSample({ __name__: 'train_perplexity', job_id: 'j3', rank: '0' }, now, 12);
    b.addSample({ __name__: 'custom_widgets', job_id: 'j3' }, now, 1);
    const frame = new NativeEncoder().encodeFrame({
      sourceId: 'meta-test',
      sequence: 1,
      batch: b.build(),
      events: [],
    });
    await post('a', '/api/v1/ingest', { 'content-type': NATIVE_CONTENT_TYPE }, Buffer.from(frame));
    const all = await waitFor('the native series stored', async () => {
      const data = (await metadata('a')).json().data;
      return data.custom_widgets ? data : undefined;
    });
    expect(all.gpu_utilization_ratio).toEqual([
      { type: 'gauge', help: 'Fraction of time one or more kernels ran on the GPU.', unit: 'ratio' },
    ]);
    expect(all.train_perplexity).toEqual([
      { type: 'gauge', help: 'Value the training script logged.', unit: '' },
    ]);
    expect(all.custom_widgets).toEqual([{ type: 'unknown', help: '', unit: '' }]);
    // limit: the first names in order; limit_per_metric 0: no entries; bad values: 400 naming the parameter.
    const limited = (await metadata('a', '?limit=2')).json().data;
    expect(Object.keys(limited)).toHaveLength(2);
    const bad = await metadata('a', '?limit=two');
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({
      status: 'error',
      errorType: 'bad_data',
      error: 'limit must be a number',
    });
    expect((await metadata('a', '?limit_per_metric=x')).json().error).toBe(
      'limit_per_metric must be a number',
    );
    expect((await metadata('a', '?metric=no_such_metric')).json().data).toEqual({});
  });

  it("shows a tenant only its own declarations: another tenant's metric of the same name keeps its own", async () => {
    await post(
      'b',
      '/api/v1/write',
      RW2_HEADERS,
      Buffer.from(
        snappyCompress(
          writeRequestV2([
            {
              labels: { __name__: 'rw2_queue_depth', job_id: 'jb' },
              samples: [[now, 1]],
              metadata: { type: COUNTER, help: 'Tenant b means something else.', unit: 'seconds' },
            },
          ]),
        ),
      ),
    );
    await expectDeclared('b', 'rw2_queue_depth', [
      { type: 'counter', help: 'Tenant b means something else.', unit: 'seconds' },
    ]);
    await expectDeclared('a', 'rw2_queue_depth', [{ type: 'gauge', help: 'Jobs waiting.', unit: '' }]);
    const ofB = (await metadata('b')).json().data;
    for (const name of [
      'rw1_requests_total',
      'rw1_latency_seconds',
      'otel_gpu_memory_bytes',
      'custom_widgets',
    ])
      expect(ofB).not.toHaveProperty(name);
  });
});
