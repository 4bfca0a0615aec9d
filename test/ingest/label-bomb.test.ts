/**
 * Label bombs (issue 16, item 4): remote-write with 200K labels in one series (1 MB) blocked the event loop
 * for minutes, because the labels were sorted (quadratically) before the label limit was checked; OTLP JSON
 * with 100K attributes blocked it for 16 s. Now the count is checked while the labels are collected, before
 * any sort: the bomb gets a 400 naming `ingest.max_labels_per_series`, and another tenant's write is acked.
 */
import { describe, expect, it } from 'vitest';
import { collectorHarness } from '../support/ingest-harness.js';
import { RW1_HEADERS, RW2_HEADERS, snappyCompress, writeRequestV1, writeRequestV2 } from '../support/wire.js';

const NOW = Date.now();
const LIMITS = { maxBodyBytes: 16 << 20, maxPayloadBytes: 64 << 20 };

function manyLabels(n: number): Record<string, string> {
  const labels: Record<string, string> = { __name__: 'bomb' };
  // Reverse order: the worst case of the insertion sort the key builder used to run first.
  for (let i = n; i > 0; i--) labels[`l${i}`] = 'v';
  return labels;
}

function otlpJson(attributes: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      resourceMetrics: [
        {
          resource: { attributes: [] },
          scopeMetrics: [
            {
              scope: { name: 's' },
              metrics: [
                {
                  name: 'bomb',
                  gauge: {
                    dataPoints: [
                      {
                        timeUnixNano: String(NOW * 1e6),
                        asDouble: 1,
                        attributes: Array.from({ length: attributes }, (_, i) => ({
                          key: `a${attributes - i}`,
                          value: { stringValue: 'v' },
                        })),
                      },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
    }),
  );
}

describe('label bombs are refused while decoding', () => {
  it.each([
    ['1.0', writeRequestV1, RW1_HEADERS],
    ['2.0', writeRequestV2, RW2_HEADERS],
  ] as const)(
    'remote-write %s with 200K labels in one series: 400 naming the limit',
    async (_v, encode, headers) => {
      const h = collectorHarness({ anonymousScopes: [], limits: LIMITS });
      const attacker = h.tokens.create({ tenant: 'attacker', scope: 'ingest' }).token;
      const victim = h.tokens.create({ tenant: 'victim', scope: 'ingest' }).token;
      const payload = Buffer.from(
        snappyCompress(encode([{ labels: manyLabels(200_000), samples: [[NOW, 1]] }])),
      );
      const [bomb, ok] = await Promise.all([
        h.app.inject({
          method: 'POST',
          url: '/api/v1/write',
          headers: { ...headers, authorization: `Bearer ${attacker}` },
          payload,
        }),
        h.app.inject({
          method: 'POST',
          url: '/api/v1/write',
          headers: { ...RW1_HEADERS, authorization: `Bearer ${victim}` },
          payload: Buffer.from(
            snappyCompress(writeRequestV1([{ labels: { __name__: 'ok' }, samples: [[NOW, 1]] }])),
          ),
        }),
      ]);
      expect(bomb.statusCode, bomb.body).toBe(400);
      expect(bomb.json().error).toMatch(
        /ingest\.max_labels_per_series exceeded: a series has more than 40 labels; the limit is 20/,
      );
      expect(ok.statusCode, ok.body).toBe(204);
      expect(h.bus.stored().map((r) => r.tenant)).toEqual(['victim']);
    },
  );

  it('OTLP JSON with 100K attributes on one point: 400 naming the limit', async () => {
    const h = collectorHarness({ anonymousScopes: [], limits: LIMITS });
    const attacker = h.tokens.create({ tenant: 'attacker', scope: 'ingest' }).token;
    const victim = h.tokens.create({ tenant: 'victim', scope: 'ingest' }).token;
    const [bomb, ok] = await Promise.all([
      h.app.inject({
        method: 'POST',
        url: '/v1/metrics',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${attacker}` },
        payload: otlpJson(100_000),
      }),
      h.app.inject({
        method: 'POST',
        url: '/api/v1/write',
        headers: { ...RW1_HEADERS, authorization: `Bearer ${victim}` },
        payload: Buffer.from(
          snappyCompress(writeRequestV1([{ labels: { __name__: 'ok' }, samples: [[NOW, 1]] }])),
        ),
      }),
    ]);
    expect(bomb.statusCode, bomb.body).toBe(400);
    expect(bomb.json().error).toMatch(
      /ingest\.max_labels_per_series exceeded: a series has more than 40 labels; the limit is 20/,
    );
    expect(ok.statusCode, ok.body).toBe(204);
    expect(h.bus.stored().map((r) => r.tenant)).toEqual(['victim']);
  });
});
