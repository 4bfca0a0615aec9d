/**
 * OTLP/HTTP at POST /v1/metrics through the real route: Prometheus name translation, histograms and
 * summaries, staleness for "no recorded value", partial success for what cannot be stored, and the
 * response encodings.
 */
import { describe, expect, it } from 'vitest';
import { formatFloatF } from '../../src/collector/otlp-decode.js';
import { prometheusLabelName, prometheusMetricName } from '../../src/collector/otlp-translate.js';
import { isStaleNaN } from '../../src/model/batch.js';
import { collectorHarness } from '../support/ingest-harness.js';

const NOW_NS = String(BigInt(Date.now() - 1000) * 1_000_000n);
const NOW_MS = Number(BigInt(NOW_NS) / 1_000_000n);

function request(metrics: unknown[], resourceAttributes: unknown[] = []) {
  return JSON.stringify({
    resourceMetrics: [
      { resource: { attributes: resourceAttributes }, scopeMetrics: [{ scope: { name: 's' }, metrics }] },
    ],
  });
}

async function post(
  h: ReturnType<typeof collectorHarness>,
  body: string | Buffer,
  type = 'application/json',
) {
  return h.app.inject({
    method: 'POST',
    url: '/v1/metrics',
    headers: { 'content-type': type },
    payload: body,
  });
}

describe("OTLP name translation (as Prometheus's OTLP receiver)", () => {
  it.each([
    [{ name: 'http.server.duration', unit: 'ms', kind: 'histogram' }, 'http_server_duration_milliseconds'],
    [{ name: 'process.runtime.memory', unit: 'By', kind: 'gauge' }, 'process_runtime_memory_bytes'],
    [{ name: 'requests', unit: '{request}', kind: 'sum', monotonic: true }, 'requests_total'],
    [{ name: 'requests_total', unit: '1', kind: 'sum', monotonic: true }, 'requests_total'],
    [{ name: 'gpu.utilization', unit: '1', kind: 'gauge' }, 'gpu_utilization_ratio'],
    [{ name: 'network.io', unit: 'By/s', kind: 'gauge' }, 'network_io_bytes_per_second'],
    [{ name: 'temp', unit: 'Cel', kind: 'gauge' }, 'temp_celsius'],
    [{ name: 'latency_seconds', unit: 's', kind: 'gauge' }, 'latency_seconds'],
    [{ name: '2xx.count', unit: '', kind: 'sum', monotonic: false }, '_2xx_count'],
    [{ name: 'queue..depth--now', unit: '', kind: 'gauge' }, 'queue_depth_now'],
  ])('%j → %s', (metric, expected) => {
    expect(prometheusMetricName(metric)).toBe(expected);
  });

  it('maps attribute names like Prometheus', () => {
    expect(prometheusLabelName('service.name')).toBe('service_name');
    expect(prometheusLabelName('http.response.status_code')).toBe('http_response_status_code');
    expect(prometheusLabelName('0day')).toBe('key_0day');
    expect(prometheusLabelName('_private')).toBe('key_private');
    expect(prometheusLabelName('__reserved')).toBe('key__reserved');
  });

  it('prints le and quantile as Go does (no exponent)', () => {
    expect([0.005, 1, 2.5, 1e6, 1e21, 1e-7, Number.POSITIVE_INFINITY].map(formatFloatF)).toEqual([
      '0.005',
      '1',
      '2.5',
      '1000000',
      '1000000000000000000000',
      '0.0000001',
      '+Inf',
    ]);
  });
});

describe('OTLP data points', () => {
  it('stores histograms as cumulative buckets with le, summaries with quantile, and staleness markers', async () => {
    const h = collectorHarness();
    const res = await post(
      h,
      request(
        [
          {
            name: 'step.time',
            unit: 's',
            histogram: {
              aggregationTemporality: 2,
              dataPoints: [
                {
                  timeUnixNano: NOW_NS,
                  count: '6',
                  sum: 4.5,
                  bucketCounts: ['1', '2', '3'],
                  explicitBounds: [0.5, 1],
                },
              ],
            },
          },
          {
            name: 'rpc.latency',
            summary: {
              dataPoints: [
                {
                  timeUnixNano: NOW_NS,
                  count: 10,
                  sum: 20,
                  quantileValues: [
                    { quantile: 0.5, value: 1.5 },
                    { quantile: 0.99, value: 'Infinity' },
                  ],
                },
              ],
            },
          },
          { name: 'gone', gauge: { dataPoints: [{ timeUnixNano: NOW_NS, flags: 1 }] } },
        ],
        [{ key: 'host.name', value: { stringValue: 'n1' } }],
      ),
    );
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({});
    const s = h.bus.samples('anon');
    const get = (labels: Record<string, string>) =>
      s.get(
        JSON.stringify(
          Object.fromEntries(Object.entries({ host_name: 'n1', otel_scope_name: 's', ...labels }).sort()),
        ),
      );
    expect(get({ __name__: 'step_time_seconds_bucket', le: '0.5' })).toEqual([[NOW_MS, 1]]);
    expect(get({ __name__: 'step_time_seconds_bucket', le: '1' })).toEqual([[NOW_MS, 3]]);
    expect(get({ __name__: 'step_time_seconds_bucket', le: '+Inf' })).toEqual([[NOW_MS, 6]]);
    expect(get({ __name__: 'step_time_seconds_sum' })).toEqual([[NOW_MS, 4.5]]);
    expect(get({ __name__: 'step_time_seconds_count' })).toEqual([[NOW_MS, 6]]);
    expect(get({ __name__: 'rpc_latency', quantile: '0.5' })).toEqual([[NOW_MS, 1.5]]);
    expect(get({ __name__: 'rpc_latency', quantile: '0.99' })).toEqual([[NOW_MS, Number.POSITIVE_INFINITY]]);
    expect(get({ __name__: 'rpc_latency_count' })).toEqual([[NOW_MS, 10]]);
    const gone = h.bus
      .stored()
      .flatMap((r) => r.series)
      .find((x) => x.labels.__name__ === 'gone')!;
    expect(isStaleNaN(gone.v[0]!)).toBe(true);
  });

  it('answers partial success for points it cannot store, and stores the rest', async () => {
    const h = collectorHarness();
    const res = await post(
      h,
      request([
        { name: 'ok', gauge: { dataPoints: [{ timeUnixNano: NOW_NS, asDouble: 1 }] } },
        {
          name: 'exp',
          exponentialHistogram: {
            aggregationTemporality: 2,
            dataPoints: [{ timeUnixNano: NOW_NS }, { timeUnixNano: NOW_NS }],
          },
        },
        {
          name: 'too.long',
          gauge: {
            dataPoints: [
              {
                timeUnixNano: NOW_NS,
                asInt: '3',
                attributes: [{ key: 'v', value: { stringValue: 'x'.repeat(500) } }],
              },
            ],
          },
        },
      ]),
    );
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      partialSuccess: {
        rejectedDataPoints: 3,
        errorMessage: 'metric exp: exponential histogram data points are not supported',
      },
    });
    expect([...h.bus.samples('anon').keys()]).toEqual([
      JSON.stringify({ __name__: 'ok', otel_scope_name: 's' }),
    ]);
  });

  it('answers protobuf requests in protobuf, including partial success', async () => {
    const { PbWriter } = await import('../support/wire.js');
    const h = collectorHarness();
    // ExportMetricsServiceRequest with one exponential histogram point only.
    const body = new PbWriter()
      .message(1, (rm) =>
        rm.message(2, (sm) =>
          sm.message(2, (m) => m.string(1, 'e').message(10, (eh) => eh.message(1, () => {}))),
        ),
      )
      .finish();
    const res = await post(h, Buffer.from(body), 'application/x-protobuf');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/application\/x-protobuf/);
    const msg = 'metric e: exponential histogram data points are not supported';
    expect([...res.rawPayload]).toEqual([
      0x0a,
      msg.length + 4,
      0x08,
      1,
      0x12,
      msg.length,
      ...Buffer.from(msg),
    ]);
  });

  it('accepts gzip bodies and refuses gzip bombs beyond the payload limit', async () => {
    const { gzipSync } = await import('node:zlib');
    const h = collectorHarness({ limits: { maxPayloadBytes: 64 << 10 } });
    const body = request([
      { name: 'zipped', gauge: { dataPoints: [{ timeUnixNano: NOW_NS, asDouble: 2 }] } },
    ]);
    const ok = await h.app.inject({
      method: 'POST',
      url: '/v1/metrics',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      payload: gzipSync(body),
    });
    expect(ok.statusCode, ok.body).toBe(200);
    expect([...h.bus.samples('anon').values()]).toEqual([[[NOW_MS, 2]]]);
    const bomb = await h.app.inject({
      method: 'POST',
      url: '/v1/metrics',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      payload: gzipSync(Buffer.alloc(1 << 20, 0x20)),
    });
    expect(bomb.statusCode).toBe(413);
    expect(bomb.json().error).toMatch(/inflates to more than the limit of 65536 bytes/);
  });

  it('refuses other content types and encodings with 415, and garbage with 400', async () => {
    const h = collectorHarness();
    expect((await post(h, 'x', 'text/plain')).statusCode).toBe(415);
    const deflate = await h.app.inject({
      method: 'POST',
      url: '/v1/metrics',
      headers: { 'content-type': 'application/json', 'content-encoding': 'br' },
      payload: '{}',
    });
    expect(deflate.statusCode).toBe(415);
    const bad = await post(
      h,
      '{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","gauge":{"dataPoints":[{"asInt":"1e5"}]}}]}]}]}',
    );
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatch(/asInt must be an integer/);
  });
});
