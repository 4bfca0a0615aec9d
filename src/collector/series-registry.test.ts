import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { seriesPartitionKey } from '../bus/index.js';
import { TrainwatchError } from '../model/errors.js';
import { SeriesKeyBuilder } from './series-key.js';
import { SeriesRegistry } from './series-registry.js';
import { seriesProblem } from './validate.js';

const LIMITS = {
  maxActiveSeries: 1000,
  activeSeriesTtlMs: 60_000,
  series: { maxLabelsPerSeries: 20, maxLabelValueBytes: 100, maxLabelNameBytes: 50 },
};

/** Feeds labels the way remote-write does: byte ranges of one buffer, in the order given. */
function fromBytes(kb: SeriesKeyBuilder, labels: [string, string][]): void {
  const enc = new TextEncoder();
  const parts = labels.map(([n, v]) => [enc.encode(n), enc.encode(v)] as const);
  const buf = new Uint8Array(parts.reduce((a, [n, v]) => a + n.length + v.length, 0) + 3);
  let p = 3; // not at 0: ranges are offsets into a larger message
  const ranges: number[] = [];
  for (const [n, v] of parts) {
    buf.set(n, p);
    buf.set(v, p + n.length);
    ranges.push(p, n.length, p + n.length, v.length);
    p += n.length + v.length;
  }
  kb.begin(buf);
  for (let i = 0; i < ranges.length; i += 4)
    kb.add(ranges[i]!, ranges[i + 1]!, ranges[i + 2]!, ranges[i + 3]!);
  kb.finish();
}

function fromStrings(kb: SeriesKeyBuilder, labels: [string, string][]): void {
  kb.beginStrings();
  for (const [n, v] of labels) kb.addStrings(n, v);
  kb.finish();
}

describe('series keys and the registry', () => {
  it('gives one ref per label set, whatever the order, the input form, a tenant label or empty values', () => {
    const reg = new SeriesRegistry('t1', LIMITS, 0);
    const kb = new SeriesKeyBuilder();
    fromBytes(kb, [
      ['__name__', 'up'],
      ['job', 'node'],
      ['instance', 'a:1'],
    ]);
    const ref = reg.resolve(kb, 1);
    fromBytes(kb, [
      ['instance', 'a:1'],
      ['__name__', 'up'],
      ['job', 'node'],
      ['tenant', 'evil'],
      ['empty', ''],
    ]);
    expect(reg.resolve(kb, 2)).toBe(ref);
    fromStrings(kb, [
      ['job', 'node'],
      ['instance', 'a:1'],
      ['__name__', 'up'],
    ]);
    expect(reg.resolve(kb, 3)).toBe(ref);
    fromStrings(kb, [
      ['job', 'node'],
      ['instance', 'a:2'],
      ['__name__', 'up'],
    ]);
    expect(reg.resolve(kb, 3)).not.toBe(ref);
    expect(reg.labelsOf(ref)).toEqual({ __name__: 'up', instance: 'a:1', job: 'node', tenant: 't1' });
    expect(reg.live).toBe(2);
  });

  it('tells label sets apart exactly (property: same ref iff same labels)', () => {
    const labelSet = fc
      .dictionary(fc.constantFrom('a', 'b', 'ab', 'c_d', 'x'), fc.string({ maxLength: 4 }), { maxKeys: 4 })
      .map((d) => ({ __name__: 'm', ...d }));
    fc.assert(
      fc.property(fc.array(labelSet, { minLength: 1, maxLength: 30 }), (sets) => {
        const reg = new SeriesRegistry('t', LIMITS, 0);
        const kb = new SeriesKeyBuilder();
        const byKey = new Map<string, number>();
        for (const set of sets) {
          const entries = Object.entries(set) as [string, string][];
          fromBytes(kb, entries.reverse());
          const ref = reg.resolve(kb, 1);
          const canonical = JSON.stringify(
            Object.entries(set)
              .filter(([, v]) => v !== '')
              .sort(([a], [b]) => (a < b ? -1 : 1)),
          );
          if (byKey.has(canonical)) expect(ref).toBe(byKey.get(canonical));
          else {
            expect([...byKey.values()]).not.toContain(ref);
            byKey.set(canonical, ref);
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it('refuses exactly the series seriesProblem refuses, and keys partitions as the bus does (property)', () => {
    // Names and values near every check: reserved, invalid, over-long, job ids good and bad, non-ASCII.
    const name = fc.constantFrom(
      '__name__',
      'job_id',
      'node_id',
      'instance',
      'gpu',
      '__x',
      '1a',
      'a-b',
      'n'.repeat(51),
      'é',
    );
    const value = fc.oneof(
      fc.constantFrom(
        'up',
        'job-1',
        'bad job',
        '/x',
        'v'.repeat(100),
        'v'.repeat(101),
        'é'.repeat(34),
        'é'.repeat(33),
      ),
      fc.string({ maxLength: 6 }),
    );
    const labelSet = fc.dictionary(name, value, { maxKeys: 6 });
    fc.assert(
      fc.property(fc.array(labelSet, { minLength: 1, maxLength: 20 }), fc.boolean(), (sets, viaStrings) => {
        const limits = { ...LIMITS, series: { ...LIMITS.series, maxLabelsPerSeries: 4 } };
        const reg = new SeriesRegistry('t', limits, 0);
        const kb = new SeriesKeyBuilder();
        for (const set of sets) {
          const entries = Object.entries(set).filter(([, v]) => v !== '') as [string, string][];
          // The registry checks a new series' labels in key order (by name), the tenant label last.
          const sorted = [...entries].sort(([a], [b]) => (a < b ? -1 : 1));
          const expected = seriesProblem({ ...Object.fromEntries(sorted), tenant: 't' }, limits.series);
          if (viaStrings) fromStrings(kb, entries);
          else fromBytes(kb, entries);
          let ref = -1;
          let error: unknown;
          try {
            ref = reg.resolve(kb, 1);
          } catch (err) {
            error = err;
          }
          if (expected === undefined) {
            expect(error).toBeUndefined();
            expect(reg.labelsOf(ref)).toEqual({ ...Object.fromEntries(entries), tenant: 't' });
            const key = seriesPartitionKey('t', Object.fromEntries(entries), '');
            expect(reg.partitionKeys[reg.partitionIndexOf(ref)]).toBe(key);
          } else {
            expect(error).toBeInstanceOf(TrainwatchError);
            expect((error as Error).message).toContain(expected);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keeps any label string intact in its string arena, through growth and compaction (property)', () => {
    // Long values (2-byte length varints), any Unicode, many distinct strings (the arena grows).
    const value = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 12 }),
      fc.string({ minLength: 120, maxLength: 400 }),
    );
    const labelSet = fc
      .dictionary(fc.constantFrom('a', 'b', 'node_id', 'e_'), value, { maxKeys: 4 })
      .map((d) => ({ __name__: 'm', ...d }));
    const limits = { ...LIMITS, series: { ...LIMITS.series, maxLabelValueBytes: 2000 } };
    fc.assert(
      fc.property(fc.array(labelSet, { minLength: 1, maxLength: 40 }), fc.boolean(), (sets, compact) => {
        const reg = new SeriesRegistry('t', limits, 0);
        const kb = new SeriesKeyBuilder();
        const refs: number[] = [];
        for (let i = 0; i < sets.length; i++) {
          fromBytes(kb, Object.entries(sets[i]!) as [string, string][]);
          // With `compact`, the first half expires and the second half survives a compaction in between.
          const at = compact && i >= sets.length / 2 ? 100_000 : 1;
          if (compact && i === Math.ceil(sets.length / 2)) reg.compact(at);
          refs.push(reg.resolve(kb, at));
        }
        const from = compact ? Math.ceil(sets.length / 2) : 0;
        const dec = new TextDecoder();
        for (let i = from; i < sets.length; i++) {
          fromStrings(kb, Object.entries(sets[i]!) as [string, string][]);
          expect(reg.resolve(kb, 100_000)).toBe(refs[i]);
          const expected = Object.fromEntries(Object.entries(sets[i]!).filter(([, v]) => v !== ''));
          expect(reg.labelsOf(refs[i]!)).toEqual({ ...expected, tenant: 't' });
          // Each interned string's pre-encoded bytes: uvarint(length) then the UTF-8 of the string.
          const ids = reg.labelIds(refs[i]!);
          for (const id of ids) {
            const at = reg.stringStart[id]!;
            const bytes = reg.stringArena.subarray(at, at + reg.stringSize[id]!);
            let len = 0;
            let shift = 0;
            let p = 0;
            for (;;) {
              const b = bytes[p++]!;
              len |= (b & 0x7f) << shift;
              shift += 7;
              if (b < 0x80) break;
            }
            expect(len).toBe(bytes.length - p);
            const s = dec.decode(bytes.subarray(p));
            expect(Object.entries(reg.labelsOf(refs[i]!)).flat()).toContain(s);
          }
        }
      }),
      { numRuns: 150 },
    );
  });

  it('survives many series (table growth) and keeps every mapping', () => {
    const reg = new SeriesRegistry('t', { ...LIMITS, maxActiveSeries: 100_000 }, 0);
    const kb = new SeriesKeyBuilder();
    const refs: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      fromStrings(kb, [
        ['__name__', 'm'],
        ['i', String(i)],
      ]);
      refs.push(reg.resolve(kb, 1));
    }
    for (let i = 0; i < 20_000; i += 997) {
      fromStrings(kb, [
        ['i', String(i)],
        ['__name__', 'm'],
      ]);
      expect(reg.resolve(kb, 2)).toBe(refs[i]);
      expect(reg.labelsOf(refs[i]!).i).toBe(String(i));
    }
  });

  it('drops expired series at compaction, keeping the live ones with their strings and delta totals', () => {
    const reg = new SeriesRegistry('t', LIMITS, 0);
    const kb = new SeriesKeyBuilder();
    const add = (v: string, now: number) => {
      fromStrings(kb, [
        ['__name__', 'm'],
        ['v', v],
      ]);
      return reg.resolve(kb, now);
    };
    reg.beginRequest(0);
    add('old', 0);
    const keep = add('kept', 0);
    reg.accumulate(keep, 5);
    reg.beginRequest(50_000);
    add('kept', 50_000);
    expect(reg.live).toBe(2);
    reg.beginRequest(70_000); // TTL/4 passed: compaction; 'old' last seen at 0 is past the 60 s TTL
    expect(reg.live).toBe(1);
    expect(reg.size).toBe(1);
    const ref = add('kept', 70_000);
    expect(reg.labelsOf(ref)).toEqual({ __name__: 'm', v: 'kept', tenant: 't' });
    expect(reg.accumulate(ref, 1)).toBe(6);
    // tenant, t, __name__, m, v, kept: the string 'old' went with its series.
    expect(reg.stringCount).toBe(6);
  });

  it('refuses new series beyond the limit, and a refused request leaves nothing counted', () => {
    const reg = new SeriesRegistry('t', { ...LIMITS, maxActiveSeries: 2 }, 0);
    const kb = new SeriesKeyBuilder();
    reg.beginRequest(1);
    fromStrings(kb, [['__name__', 'a']]);
    reg.resolve(kb, 1);
    fromStrings(kb, [['__name__', 'b']]);
    reg.resolve(kb, 1);
    fromStrings(kb, [['__name__', 'c']]);
    expect(() => reg.resolve(kb, 1)).toThrow(
      /max_active_series exceeded: tenant t has 0 active series .* and this request adds more than 2 new ones; the limit is 2; first new series refused: c/,
    );
    reg.rollbackRequest();
    expect(reg.live).toBe(0);
    reg.beginRequest(2);
    fromStrings(kb, [['__name__', 'c']]);
    reg.resolve(kb, 2);
    expect(reg.live).toBe(1);
  });
});
