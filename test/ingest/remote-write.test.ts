/**
 * Prometheus remote-write 1.0 and 2.0 at POST /api/v1/write, through the real routes into a bus kept in
 * memory: what is acknowledged is exactly what reaches the bus (series, timestamps, value bits), and every
 * kind of bad request gets the status Prometheus acts on, with a message naming the problem.
 */
import { describe, expect, it } from 'vitest';
import { isStaleNaN, STALE_NAN_BITS_HI, STALE_NAN_BITS_LO } from '../../src/model/batch.js';
import { collectorHarness } from '../support/ingest-harness.js';
import {
  RW1_HEADERS,
  RW2_HEADERS,
  type RwSeries,
  snappyCompress,
  writeRequestV1,
  writeRequestV2,
} from '../support/wire.js';

const NOW = Date.now();
const staleBytes = (() => {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(STALE_NAN_BITS_LO, 0);
  b.writeUInt32LE(STALE_NAN_BITS_HI, 4);
  return new Uint8Array(b);
})();

function post(
  h: ReturnType<typeof collectorHarness>,
  body: Uint8Array,
  headers: Record<string, string> = RW1_HEADERS,
) {
  return h.app.inject({ method: 'POST', url: '/api/v1/write', headers, payload: Buffer.from(body) });
}

const series: RwSeries[] = [
  {
    labels: { __name__: 'up', instance: 'localhost:9100', job: 'node' },
    samples: [
      [NOW - 2000, 1],
      [NOW - 1000, 0],
    ],
  },
  {
    labels: {
      __name__: 'node_cpu_seconds_total',
      cpu: '0',
      instance: 'localhost:9100',
      job: 'node',
      mode: 'idle',
    },
    samples: [[NOW - 1000, 12345.67]],
  },
  {
    labels: { __name__: 'go_gc_duration_seconds', instance: 'x:1', quantile: '0.5' },
    samples: [[NOW, staleBytes]],
  },
];

describe.each([
  ['1.0', writeRequestV1, RW1_HEADERS],
  ['2.0', writeRequestV2, RW2_HEADERS],
] as const)('remote-write %s', (_version, encode, headers) => {
  it('stores every series and sample as sent, staleness markers bit for bit, and answers 204', async () => {
    const h = collectorHarness();
    const res = await post(h, snappyCompress(encode(series)), headers);
    expect(res.statusCode, res.body).toBe(204);
    const stored = h.bus.samples('anon');
    expect(stored.get(JSON.stringify({ __name__: 'up', instance: 'localhost:9100', job: 'node' }))).toEqual([
      [NOW - 2000, 1],
      [NOW - 1000, 0],
    ]);
    expect(
      stored.get(
        JSON.stringify({
          __name__: 'node_cpu_seconds_total',
          cpu: '0',
          instance: 'localhost:9100',
          job: 'node',
          mode: 'idle',
        }),
      ),
    ).toEqual([[NOW - 1000, 12345.67]]);
    const stale = stored.get(
      JSON.stringify({ __name__: 'go_gc_duration_seconds', instance: 'x:1', quantile: '0.5' }),
    )!;
    expect(stale).toHaveLength(1);
    // The value array of the decoded bus payload is a Float64Array: the marker's bits must be intact.
    const rec = h.bus
      .stored()
      .flatMap((r) => r.series)
      .find((s) => s.labels.__name__ === 'go_gc_duration_seconds')!;
    expect(isStaleNaN(rec.v[0]!)).toBe(true);
    for (const r of h.bus.stored()) for (const s of r.series) expect(s.labels.tenant).toBe('anon');
    if (_version === '2.0') expect(res.headers['x-prometheus-remote-write-samples-written']).toBe('4');
  });

  it('keys bus records by job_id, else node or scrape instance', async () => {
    const h = collectorHarness();
    await post(
      h,
      snappyCompress(
        encode([
          { labels: { __name__: 'train_loss', job_id: 'run-1' }, samples: [[NOW, 1]] },
          { labels: { __name__: 'train_loss', job_id: 'run-2' }, samples: [[NOW, 2]] },
          { labels: { __name__: 'up', instance: 'a:1' }, samples: [[NOW, 1]] },
          { labels: { __name__: 'train_step', job_id: 'run-1' }, samples: [[NOW, 3]] },
        ]),
      ),
      headers,
    );
    const keys = h.bus.stored().map((r) => [r.key, r.series.length]);
    expect(keys.sort()).toEqual(
      [
        ['anon\u0000run-1', 2],
        ['anon\u0000run-2', 1],
        ['anon\u0000\u0000a:1', 1],
      ].sort(),
    );
  });

  it('overwrites a tenant label in the payload with the tenant of the credentials', async () => {
    const h = collectorHarness();
    const { token } = h.tokens.create({ tenant: 'team-b', scope: 'ingest' });
    const res = await post(
      h,
      snappyCompress(encode([{ labels: { __name__: 'x', tenant: 'team-a' }, samples: [[NOW, 1]] }])),
      { ...headers, authorization: `Bearer ${token}` },
    );
    expect(res.statusCode).toBe(204);
    const stored = h.bus.stored();
    expect(stored.map((r) => r.tenant)).toEqual(['team-b']);
    expect(stored[0]!.series[0]!.labels).toEqual({ __name__: 'x', tenant: 'team-b' });
  });
});

describe('remote-write refusals', () => {
  const ok = snappyCompress(writeRequestV1([{ labels: { __name__: 'm' }, samples: [[NOW, 1]] }]));

  it('refuses other content types and encodings with 415', async () => {
    const h = collectorHarness();
    for (const headers of [
      { ...RW1_HEADERS, 'content-type': 'application/json' },
      { ...RW1_HEADERS, 'content-type': 'application/x-protobuf;proto=io.prometheus.write.v3.Request' },
      { ...RW1_HEADERS, 'content-encoding': 'gzip' },
    ]) {
      const res = await post(h, ok, headers);
      expect(res.statusCode).toBe(415);
      expect(res.json().errorType).toBe('unsupported_media_type');
    }
    expect(h.bus.records).toHaveLength(0);
  });

  it('refuses invalid series with 400 naming the series, and stores nothing of the request', async () => {
    const h = collectorHarness();
    const cases: [RwSeries[], RegExp][] = [
      [
        [{ labels: { __name__: 'bad-name' }, samples: [[NOW, 1]] }],
        /series bad-name: metric name "bad-name" is invalid/,
      ],
      [
        [{ labels: { __name__: 'm', 'bad.label': 'x' }, samples: [[NOW, 1]] }],
        /label name "bad.label" is invalid/,
      ],
      [
        [{ labels: { __name__: 'm', __meta_x: 'x' }, samples: [[NOW, 1]] }],
        /label name "__meta_x" is reserved/,
      ],
      [[{ labels: { job: 'x' }, samples: [[NOW, 1]] }], /has no metric name/],
      [
        [{ labels: { __name__: 'm', v: 'x'.repeat(201) }, samples: [[NOW, 1]] }],
        /label v is 201 bytes long, over the limit of 200 \(ingest.max_label_value_bytes\)/,
      ],
      [
        [{ labels: { __name__: 'm', ['n'.repeat(65)]: 'x' }, samples: [[NOW, 1]] }],
        /over the limit of 64 \(ingest.max_label_name_bytes\)/,
      ],
      [
        [
          {
            labels: Object.fromEntries([
              ['__name__', 'm'],
              ...Array.from({ length: 20 }, (_, i) => [`l${i}`, 'v']),
            ]),
            samples: [[NOW, 1]],
          },
        ],
        /has 22 labels, over the limit of 20/,
      ],
      [
        [{ labels: { __name__: 'm' }, samples: [[NOW + 3_600_000, 1]] }],
        /series m: timestamp \d+ \(.*\) is more than 10 minutes in the future/,
      ],
      [[{ labels: { __name__: 'm' }, samples: [[-5, 1]] }], /timestamp -5 .* is negative/],
    ];
    for (const [s, message] of cases) {
      const res = await post(
        h,
        snappyCompress(writeRequestV1([{ labels: { __name__: 'fine' }, samples: [[NOW, 1]] }, ...s])),
      );
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json().error).toMatch(message);
    }
    expect(h.bus.records).toHaveLength(0);
    // Refused requests did not make their series active.
    expect(h.tenants.get('anon').registry.live).toBe(0);
  });

  it('refuses a label name given twice', async () => {
    const h = collectorHarness();
    const { PbWriter } = await import('../support/wire.js');
    const w = new PbWriter().message(1, (ts) => {
      ts.message(1, (l) => l.string(1, '__name__').string(2, 'm'));
      ts.message(1, (l) => l.string(1, 'a').string(2, '1'));
      ts.message(1, (l) => l.string(1, 'a').string(2, '2'));
      ts.message(2, (s) => s.double(1, 1).int64(2, NOW));
    });
    const res = await post(h, snappyCompress(w.finish()));
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(/label "a" twice/);
  });

  it('accepts labels in any order as the same series', async () => {
    const h = collectorHarness();
    await post(
      h,
      snappyCompress(writeRequestV1([{ labels: { b: '2', __name__: 'm', a: '1' }, samples: [[NOW, 1]] }])),
    );
    await post(
      h,
      snappyCompress(
        writeRequestV1([{ labels: { __name__: 'm', a: '1', b: '2' }, samples: [[NOW + 1, 2]] }]),
      ),
    );
    expect(h.tenants.get('anon').registry.live).toBe(1);
    expect([...h.bus.samples('anon').values()]).toEqual([
      [
        [NOW, 1],
        [NOW + 1, 2],
      ],
    ]);
  });

  it('enforces samples per request, active series per tenant (only for that tenant) and the sample rate', async () => {
    const many = (n: number, name = 'm') =>
      snappyCompress(
        writeRequestV1(
          Array.from({ length: n }, (_, i) => ({
            labels: { __name__: name, i: String(i) },
            samples: [[NOW, i]] as [number, number][],
          })),
        ),
      );
    const s = collectorHarness({ limits: { maxSamplesPerRequest: 50 } });
    const big = await post(s, many(51));
    expect(big.statusCode).toBe(400);
    expect(big.json().error).toMatch(
      /limit ingest.max_samples_per_request exceeded: .* more than 50 samples/,
    );

    const h = collectorHarness({ maxActiveSeries: 30 });
    const { token: other } = h.tokens.create({ tenant: 'other', scope: 'ingest' });
    expect((await post(h, many(30))).statusCode).toBe(204);
    const over = await post(h, many(31));
    expect(over.statusCode).toBe(400);
    expect(over.json().error).toMatch(
      /limit limits.max_active_series exceeded: tenant anon has 30 active series \(.*\); the limit is 30; first new series refused: m\{i="30"/,
    );
    // Known series still pass; another tenant is not affected.
    expect((await post(h, many(30))).statusCode).toBe(204);
    expect((await post(h, many(30), { ...RW1_HEADERS, authorization: `Bearer ${other}` })).statusCode).toBe(
      204,
    );

    const r = collectorHarness({ samplesPerSecond: 10, samplesBurst: 20 });
    expect((await post(r, many(20))).statusCode).toBe(204);
    const limited = await post(r, many(20));
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(limited.json().error).toMatch(
      /limit limits.samples_per_second exceeded: tenant anon may send 10 samples\/s \(burst 20\); this request has 20 samples \(first series: m\{/,
    );
    const metrics = await r.registry.metrics();
    expect(metrics).toMatch(
      /trainwatch_ingest_rejected_requests_total\{protocol="remote_write",reason="samples_per_second"\} 1/,
    );
  });

  it('refuses malformed bodies with 400 and an oversized declared length with 413', async () => {
    const h = collectorHarness();
    const garbage = await post(h, Buffer.from('definitely not snappy'));
    expect(garbage.statusCode).toBe(400);
    const notProto = await post(h, snappyCompress(Buffer.from('\u00ff\u00ff\u00ff\u00ff')));
    expect(notProto.statusCode).toBe(400);
    expect(notProto.json().error).toMatch(/malformed remote-write 1.0 request/);
    // A 6-byte body claiming 4 GB.
    const bomb = await post(h, Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]));
    expect(bomb.statusCode).toBe(413);
    expect(bomb.json().error).toMatch(/declares 4294967295 uncompressed bytes, more than the limit/);
    const empty = await post(h, new Uint8Array(0));
    expect(empty.statusCode).toBe(400);
    expect(h.bus.records).toHaveLength(0);
  });
});

describe('remote-write decoding, property', () => {
  it('stores the same thing whatever field order and length encoding the sender chose', async () => {
    const { PbWriter } = await import('../support/wire.js');
    const fc = (await import('fast-check')).default;
    const name = fc.stringMatching(/^[a-z][a-z0-9_]{0,140}$/);
    const seriesArb = fc.array(
      fc.record({
        labels: fc.dictionary(name, fc.string({ minLength: 1, maxLength: 150 }), { minKeys: 0, maxKeys: 5 }),
        samples: fc.array(fc.tuple(fc.integer({ min: 0, max: 1_000_000 }), fc.double()), {
          minLength: 1,
          maxLength: 3,
        }),
      }),
      { minLength: 1, maxLength: 6 },
    );
    await fc.assert(
      fc.asyncProperty(seriesArb, async (raw) => {
        const series = raw
          .filter((s) => !('tenant' in s.labels) && !('__name__' in s.labels))
          .map((s, i) => ({
            labels: { __name__: `m${i % 2}`, ...s.labels },
            samples: s.samples.map(([dt, v]) => [NOW - dt, v] as [number, number]),
          }));
        if (series.length === 0) return;
        // The usual encoding, and one with value before name and timestamp before value.
        const usual = writeRequestV1(series);
        const reordered = new PbWriter();
        for (const s of series)
          reordered.message(1, (ts) => {
            for (const [t, v] of s.samples) ts.message(2, (smp) => smp.int64(2, t).double(1, v));
            for (const [n, v] of Object.entries(s.labels).reverse())
              ts.message(1, (l) => l.string(2, v).string(1, n));
          });
        const a = collectorHarness({ limits: { maxLabelValueBytes: 1000, maxLabelNameBytes: 1000 } });
        const b = collectorHarness({ limits: { maxLabelValueBytes: 1000, maxLabelNameBytes: 1000 } });
        const ra = await post(a, snappyCompress(usual));
        const rb = await post(b, snappyCompress(reordered.finish()));
        expect(ra.statusCode, ra.body).toBe(rb.statusCode);
        expect(ra.statusCode, ra.body).toBe(204);
        const norm = (m: Map<string, [number, number][]>) =>
          [...m.entries()].map(([k, v]) => [k, [...v].sort((x, y) => x[0] - y[0] || x[1] - y[1])]).sort();
        expect(norm(a.bus.samples('anon'))).toEqual(norm(b.bus.samples('anon')));
      }),
      { numRuns: 60 },
    );
  });
});
