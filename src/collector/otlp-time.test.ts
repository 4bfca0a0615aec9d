/**
 * OTLP times are nanoseconds in a 64-bit integer; read as a double they can land a hair below a whole
 * millisecond (1 in 8 milliseconds around today's times). Every point sent on a whole millisecond must be
 * stored on that millisecond, not the one before.
 */
import { describe, expect, it } from 'vitest';
import { collectorHarness } from '../../test/support/ingest-harness.js';

describe('OTLP timestamps', () => {
  it('keeps whole-millisecond times exact, including those a double rounds down', async () => {
    const h = collectorHarness();
    // 2026-11-28T…: Number('1795906078002000000') is 1795906078001999872, below the millisecond.
    const msList = Array.from({ length: 16 }, (_, i) => 1795906078000 + i);
    const body = JSON.stringify({
      resourceMetrics: [
        {
          resource: { attributes: [] },
          scopeMetrics: [
            {
              scope: { name: 's' },
              metrics: [
                {
                  name: 'ticks',
                  gauge: {
                    dataPoints: msList.map((ms, i) => ({
                      timeUnixNano: String(BigInt(ms) * 1_000_000n),
                      asDouble: i,
                      attributes: [{ key: 'i', value: { stringValue: String(i) } }],
                    })),
                  },
                },
              ],
            },
          ],
        },
      ],
    });
    expect(msList.some((ms) => Math.floor(Number(String(BigInt(ms) * 1_000_000n)) / 1e6) !== ms)).toBe(true);
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/metrics',
      headers: { 'content-type': 'application/json' },
      payload: body,
    });
    expect(res.statusCode, res.body).toBe(200);
    const stored = [...h.bus.samples('anon').values()].flat().sort((a, b) => a[1] - b[1]);
    expect(stored.map(([t]) => t)).toEqual(msList);
  });
});
