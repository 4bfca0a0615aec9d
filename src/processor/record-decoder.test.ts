/**
 * The processor's allocation-free record decoder must read exactly what `decodePayload` reads — the same
 * series (labels, with the tenant label set as storage sets it), the same samples bit for bit, the same job
 * events — and refuse exactly what it refuses, with the same message. Checked on the shared test vectors, on
 * random batches (fast-check) and on mutated payloads. The series table gives a series one ref whatever the
 * order its labels arrive in, and reuses the refs it frees.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type SeriesBatch, SeriesBatchBuilder, STALE_NAN } from '../model/batch.js';
import type { JobEvent } from '../model/job.js';
import type { LabelSet } from '../model/labels.js';
import { decodeFrameHeader, decodePayload, framePayload, NativeEncoder } from '../protocol/native.js';
import { decodeRecord, RecordBatch } from './record-decoder.js';
import { SeriesTable } from './series-table.js';

const VECTORS = path.resolve(import.meta.dirname, '../../testdata/native');
const TENANT = 'acme';

function bitsOf(v: Float64Array): string[] {
  return Array.from(new Uint32Array(v.buffer, v.byteOffset, v.length * 2), (x) => x.toString(16));
}

/** What the record decoder produced, in `decodePayload`'s shape. */
function viaTable(
  payload: Uint8Array,
  table = new SeriesTable(),
): { batch: SeriesBatch; events: readonly JobEvent[] } {
  const rb = new RecordBatch();
  decodeRecord(payload, table.internString(TENANT), table, rb, 0);
  const series: LabelSet[] = [];
  for (let e = 0; e < rb.seriesCount; e++) series.push(table.labels[rb.refs[e]!]!);
  return {
    batch: {
      series,
      offsets: rb.starts.slice(0, rb.seriesCount + 1),
      timestamps: rb.timestamps.slice(0, rb.sampleCount),
      values: rb.values.slice(0, rb.sampleCount),
      sampleCount: rb.sampleCount,
    },
    events: rb.events,
  };
}

function expectSame(payload: Uint8Array): void {
  const want = decodePayload(payload);
  const got = viaTable(payload);
  expect(got.batch.series).toEqual(want.batch.series.map((l) => ({ ...l, tenant: TENANT })));
  expect(Array.from(got.batch.offsets)).toEqual(Array.from(want.batch.offsets));
  expect(Array.from(got.batch.timestamps)).toEqual(Array.from(want.batch.timestamps));
  expect(bitsOf(got.batch.values)).toEqual(bitsOf(want.batch.values));
  expect(got.events).toEqual(want.events);
}

const labelName = fc.stringMatching(/^[a-z_][a-z0-9_]{0,8}$/);
const labelValue = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: 'grapheme', maxLength: 6 }));
const value = fc.oneof(
  fc.double(),
  fc.constantFrom(Number.NaN, STALE_NAN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0),
);
const series = fc.record({
  labels: fc.dictionary(labelName, labelValue, { minKeys: 1, maxKeys: 8 }),
  samples: fc.array(fc.tuple(fc.integer({ min: -1e12, max: 4e12 }), value), { maxLength: 5 }),
});
const events = fc.array(
  fc.record({
    kind: fc.constantFrom('start', 'update', 'finish'),
    jobId: fc.string({ minLength: 1, maxLength: 8 }),
    timeMs: fc.integer({ min: 0, max: 4e12 }),
  }),
  { maxLength: 2 },
) as fc.Arbitrary<JobEvent[]>;

function encode(list: { labels: LabelSet; samples: [number, number][] }[], evs: JobEvent[] = []): Uint8Array {
  const b = new SeriesBatchBuilder();
  for (const s of list) {
    b.addSeries(s.labels);
    for (const [t, v] of s.samples) b.add(t, v);
  }
  return new NativeEncoder().encodePayload(b.build(), evs);
}

describe('record decoder', () => {
  it('reads the shared test vectors as decodePayload does', () => {
    const files = readdirSync(VECTORS).filter((f) => f.endsWith('.bin'));
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const f of files) {
      const frame = readFileSync(path.join(VECTORS, f));
      expectSame(framePayload(frame, decodeFrameHeader(frame)));
    }
  });

  it('reads random batches as decodePayload does, NaN payloads bit for bit', () => {
    fc.assert(
      fc.property(fc.array(series, { maxLength: 6 }), events, (list, evs) => {
        expectSame(encode(list, evs));
      }),
      { numRuns: 300 },
    );
  });

  it('keeps the samples already decoded when a record outgrows its sample arrays', () => {
    // A fresh RecordBatch holds 4,096 samples; 40 series of 300 (a backfill batch) make it grow twice mid-record.
    const list = Array.from({ length: 40 }, (_, i) => ({
      labels: { __name__: 'gpu_utilization_ratio', job_id: 'j', gpu: String(i) },
      samples: Array.from({ length: 300 }, (_, k): [number, number] => [1.7e12 + k * 1000, i + k / 1000]),
    }));
    expectSame(encode(list));
  });

  it('refuses what decodePayload refuses, with the same message, and accepts what it accepts', () => {
    const base = encode(
      [
        { labels: { __name__: 'gpu_utilization_ratio', job_id: 'j', gpu: '0' }, samples: [[1000, 0.5]] },
        {
          labels: { __name__: 'train_loss', job_id: 'j', rank: '0' },
          samples: [
            [1000, 2.5],
            [2000, 2.4],
          ],
        },
      ],
      [{ kind: 'finish', jobId: 'j', timeMs: 3000 }],
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.nat(),
        (edits, cut) => {
          const p = Uint8Array.from(base);
          for (const [at, byte] of edits) p[at % p.length] = byte;
          const payload = cut % 3 === 0 ? p.subarray(0, cut % p.length) : p;
          let want: string | undefined;
          try {
            decodePayload(payload);
          } catch (err) {
            want = (err as Error).message;
          }
          let got: string | undefined;
          try {
            viaTable(payload);
          } catch (err) {
            got = (err as Error).message;
          }
          expect(got).toBe(want);
          if (want === undefined) expectSame(payload);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('series table', () => {
  it('gives a series the same ref whatever the order of its labels, per tenant, ignoring a tenant label', () => {
    const table = new SeriesTable();
    const a = viaTableRefs(table, TENANT, [{ __name__: 'm', node_id: 'n1', gpu: '0' }]);
    const b = viaTableRefs(table, TENANT, [
      { gpu: '0', node_id: 'n1', __name__: 'm', tenant: 'someone-else' },
    ]);
    const other = viaTableRefs(table, 'other', [{ __name__: 'm', node_id: 'n1', gpu: '0' }]);
    const differs = viaTableRefs(table, TENANT, [{ __name__: 'm', node_id: 'n1', gpu: '1' }]);
    expect(b).toEqual(a);
    expect(other[0]).not.toBe(a[0]);
    expect(differs[0]).not.toBe(a[0]);
    expect(table.labels[a[0]!]).toEqual({ __name__: 'm', node_id: 'n1', gpu: '0', tenant: TENANT });
    expect(table.labels[other[0]!]!.tenant).toBe('other');
    expect(table.strings[table.jobSid[a[0]!]!] ?? null).toBe(null);
    expect(table.count).toBe(3);
  });

  it('keeps every series apart among many (hash collisions resolved by comparison)', () => {
    const table = new SeriesTable();
    const list = Array.from({ length: 20_000 }, (_, i) => ({
      __name__: 'x',
      i: String(i),
      job_id: `j${i % 7}`,
    }));
    const refs = viaTableRefs(table, TENANT, list);
    expect(new Set(refs).size).toBe(list.length);
    expect(viaTableRefs(table, TENANT, list)).toEqual(refs);
    for (let i = 0; i < list.length; i += 997) {
      expect(table.labels[refs[i]!]).toEqual({ ...list[i], tenant: TENANT });
      expect(table.strings[table.jobSid[refs[i]!]!]).toBe(`j${i % 7}`);
    }
  });

  it('frees series not seen since a time, telling the caller, and reuses their refs', () => {
    const table = new SeriesTable();
    const rb = new RecordBatch();
    const t = table.internString(TENANT);
    decodeRecord(encode([{ labels: { __name__: 'old' }, samples: [[1, 1]] }]), t, table, rb, 60_000);
    const old = rb.refs[0]!;
    decodeRecord(encode([{ labels: { __name__: 'new' }, samples: [[1, 1]] }]), t, table, rb, 300_000);
    const kept = rb.refs[0]!;
    const freed: number[] = [];
    expect(table.sweep(120_000, (ref) => freed.push(ref))).toBe(1);
    expect(freed).toEqual([old]);
    expect(table.isLive(old)).toBe(false);
    expect(table.isLive(kept)).toBe(true);
    decodeRecord(encode([{ labels: { __name__: 'newer' }, samples: [[1, 1]] }]), t, table, rb, 360_000);
    expect(rb.refs[0]).toBe(old);
    expect(table.labels[old]).toEqual({ __name__: 'newer', tenant: TENANT });
    // The series that stayed is still found by its labels.
    decodeRecord(encode([{ labels: { __name__: 'new' }, samples: [[2, 1]] }]), t, table, rb, 420_000);
    expect(rb.refs[0]).toBe(kept);
  });
});

describe('series table churn', () => {
  it('finds every live series after waves of series come and go (refs reused, keys compacted)', () => {
    const table = new SeriesTable();
    const t = table.internString(TENANT);
    const rb = new RecordBatch();
    const wave = (n: number, minute: number) => {
      const list = Array.from({ length: 3000 }, (_, i) => ({
        labels: { __name__: 'm', wave: String(n), i: String(i) },
        samples: [[1, 1]] as [number, number][],
      }));
      decodeRecord(encode(list), t, table, rb, minute * 60_000);
      return Array.from(rb.refs.subarray(0, rb.seriesCount));
    };
    const keep = wave(0, 10);
    for (let n = 1; n <= 6; n++) {
      const refs = wave(n, 1);
      expect(new Set(refs).size).toBe(3000);
      // Wave n is forgotten (last seen at minute 1); wave 0 is kept by being seen again.
      expect(wave(0, 10)).toEqual(keep);
      expect(table.sweep(5 * 60_000, () => {})).toBe(3000);
    }
    expect(table.count).toBe(3000);
    expect(wave(0, 11)).toEqual(keep);
    for (let i = 0; i < 3000; i += 499)
      expect(table.labels[keep[i]!]).toEqual({ __name__: 'm', wave: '0', i: String(i), tenant: TENANT });
  });
});

function viaTableRefs(table: SeriesTable, tenant: string, list: LabelSet[]): number[] {
  const rb = new RecordBatch();
  decodeRecord(
    encode(list.map((labels) => ({ labels, samples: [[1000, 1]] }))),
    table.internString(tenant),
    table,
    rb,
    0,
  );
  return Array.from(rb.refs.subarray(0, rb.seriesCount));
}
