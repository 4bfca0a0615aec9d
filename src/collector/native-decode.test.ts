/**
 * The native route's hot-path decoder against the general path (protocol/native.ts `decodePayload`, then the
 * route's `validateBatch`), on random valid payloads and on mutated and truncated ones: it refuses exactly
 * what they refuse, and what it accepts has the same series (by label set), timestamps and value bits.
 * Payloads it forwards as is must decode in the processor, so accepting more than `decodePayload` would lose
 * acknowledged samples there.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SeriesBatchBuilder } from '../model/batch.js';
import type { JobEvent } from '../model/job.js';
import { decodePayload, NativeEncoder } from '../protocol/native.js';
import { NativeRefDecoder } from './native-decode.js';
import { RefBatch } from './ref-batch.js';
import { SeriesKeyBuilder } from './series-key.js';
import { SeriesRegistry } from './series-registry.js';
import { validateBatch } from './validate.js';

const NOW = 1_800_000_000_000;
const LIMITS = {
  maxPayloadBytes: 1 << 20,
  maxLabelsPerSeries: 6,
  maxLabelValueBytes: 40,
  maxLabelNameBytes: 20,
};

/** label sets as strings; samples with their value bits. */
interface Decoded {
  series: string[];
  timestamps: number[];
  bits: string[];
}

function canonical(labels: Record<string, string>): string {
  return JSON.stringify(
    Object.entries(labels)
      .filter(([n, v]) => v !== '' && n !== 'tenant')
      .sort(([a], [b]) => (a < b ? -1 : 1)),
  );
}

function bitsOf(values: Float64Array, from: number, to: number): string[] {
  const u = new Uint32Array(values.buffer, values.byteOffset, values.length * 2);
  const out: string[] = [];
  for (let i = from; i < to; i++) out.push(`${u[2 * i + 1]}.${u[2 * i]}`);
  return out;
}

/**
 * The general path's verdict: 'refused', or what it stores; `general` when the fast path must leave the
 * payload to it (job events, an empty label value).
 */
function oracle(payload: Uint8Array): { result: Decoded | 'refused'; general: boolean } {
  let general = false;
  try {
    const { batch, events } = decodePayload(payload, LIMITS);
    general = events.length > 0 || batch.series.some((l) => Object.values(l).includes(''));
    validateBatch(batch, events, LIMITS, NOW);
    const series: string[] = [];
    const timestamps: number[] = [];
    const bits: string[] = [];
    for (let i = 0; i < batch.series.length; i++) {
      const from = batch.offsets[i]!;
      const to = batch.offsets[i + 1]!;
      for (let j = from; j < to; j++) {
        series.push(canonical(batch.series[i]!));
        timestamps.push(batch.timestamps[j]!);
      }
      bits.push(...bitsOf(batch.values, from, to));
    }
    return { result: { series, timestamps, bits }, general };
  } catch {
    return { result: 'refused', general };
  }
}

function fast(payload: Uint8Array): Decoded | 'refused' | 'events' {
  const registry = new SeriesRegistry(
    't',
    { maxActiveSeries: 1 << 20, activeSeriesTtlMs: 60_000, series: LIMITS },
    NOW,
  );
  registry.beginRequest(NOW);
  const batch = new RefBatch();
  try {
    const r = new NativeRefDecoder().decode(payload, new SeriesKeyBuilder(), batch, registry, LIMITS, NOW);
    if (r.general) return 'events';
  } catch {
    return 'refused';
  }
  const series: string[] = [];
  const timestamps: number[] = [];
  const bits: string[] = [];
  for (let i = 0; i < batch.seriesCount; i++) {
    const from = batch.starts[i]!;
    const to = batch.starts[i + 1]!;
    for (let j = from; j < to; j++) {
      series.push(canonical(registry.labelsOf(batch.refs[i]!)));
      timestamps.push(batch.timestamps[j]!);
    }
    bits.push(...bitsOf(batch.values, from, to));
  }
  return { series, timestamps, bits };
}

const name = fc.constantFrom('__name__', 'job_id', 'node_id', 'gpu', 'a', 'tenant', 'bad-name', 'é');
const value = fc.oneof(
  fc.constantFrom('', 'x', 'gpu_util', 'train_loss', 'j1', 'ü'),
  fc.string({ maxLength: 50 }),
);
const labelSet = fc.dictionary(name, value, { maxKeys: 7 });
const sample = fc.record({
  t: fc.oneof(fc.integer({ min: NOW - 100_000, max: NOW + 1000 }), fc.integer({ min: -5, max: 5 })),
  v: fc.oneof(fc.double(), fc.constant(Number.NaN)),
});
const series = fc.record({ labels: labelSet, samples: fc.array(sample, { maxLength: 4 }) });
const events: fc.Arbitrary<readonly JobEvent[]> = fc.oneof(
  { weight: 5, arbitrary: fc.constant([]) },
  { weight: 1, arbitrary: fc.constant([{ kind: 'start', jobId: 'j1', timeMs: NOW } as JobEvent]) },
);

function encode(
  list: { labels: Record<string, string>; samples: { t: number; v: number }[] }[],
  ev: readonly JobEvent[],
) {
  const b = new SeriesBatchBuilder();
  for (const s of list) {
    b.addSeries(s.labels);
    for (const x of s.samples) b.add(x.t, x.v);
  }
  return new NativeEncoder().encodePayload(b.build(), ev).slice();
}

/**
 * The route's outcome equals the general path's: the fast path refuses only what it refuses, hands over
 * ('events') only what the general path then decides, and otherwise stores exactly what it would store.
 */
function expectSame(payload: Uint8Array): void {
  const want = oracle(payload);
  const got = fast(payload);
  if (got === 'refused') expect(want.result).toBe('refused');
  else if (got === 'events') expect(want.general || want.result === 'refused').toBe(true);
  else {
    expect(want.general).toBe(false);
    expect(got).toEqual(want.result);
  }
}

describe('NativeRefDecoder', () => {
  it('decodes valid payloads as decodePayload + validateBatch do (property)', () => {
    fc.assert(
      fc.property(
        fc
          .array(series, { maxLength: 8 })
          .map((l) => l.map((s) => ({ ...s, labels: { __name__: 'm', ...s.labels } }))),
        events,
        (list, ev) => expectSame(encode(list, ev)),
      ),
      { numRuns: 400 },
    );
  });

  it('refuses exactly what they refuse on mutated and truncated payloads (property)', () => {
    fc.assert(
      fc.property(
        fc.array(series, { minLength: 1, maxLength: 5 }),
        events,
        fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { maxLength: 4 }),
        fc.option(fc.nat()),
        (list, ev, flips, cut) => {
          let payload = encode(list, ev);
          for (const f of flips) payload[f.at % payload.length] = f.byte;
          if (cut !== null) payload = payload.subarray(0, cut % (payload.length + 1));
          expectSame(payload);
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('never accepts a label name given twice through two string-table entries, one with an empty value', () => {
    // strings: "__name__", "m", "a", "a", "", "v" — series: __name__=m, a="" (entry 2), a=v (entry 3).
    const enc = new TextEncoder();
    const parts: number[] = [6];
    for (const s of ['__name__', 'm', 'a', 'a', '', 'v']) parts.push(s.length, ...enc.encode(s));
    parts.push(1, 3, 0, 1, 2, 4, 3, 5, 0, 0);
    const payload = Uint8Array.from(parts);
    expect(oracle(payload).result).toBe('refused');
    // Left to the general path, which refuses it.
    expect(fast(payload)).toBe('events');
  });
});
