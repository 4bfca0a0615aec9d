/**
 * Head.appendKeyed (the processor's fast path: the caller's series ids → head refs remembered in a
 * HeadRefCache) stores exactly what Head.append stores for the same batches by label set, through cuts that
 * drop series and renumberings (compact) that move every ref, and through keys the caller reuses for other
 * series after telling the cache to forget them.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { LabelSet } from '../model/labels.js';
import { Head, HeadRefCache, newHeadAppendStats } from './head.js';
import { HeadIterator } from './iterators.js';
import type { KeyedLabelIds, KeyedSeriesBatch } from './storage.js';

const newStats = newHeadAppendStats;

/** Every series of the head: its labels (sorted, as a string) → its samples as "t:value-bits". */
function contents(head: Head): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const all = head.allPostings();
  const f = new Float64Array(1);
  const bits = new Uint32Array(f.buffer);
  for (let i = 0; i < all.length; i++) {
    const ref = all[i]!;
    const labels = head.labelSet(ref);
    const key = JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
    const it = new HeadIterator(head.snapshot(ref), -1e15, 1e15);
    const samples: string[] = [];
    while (it.next()) {
      f[0] = it.v;
      samples.push(`${it.t}:${bits[1]}.${bits[0]}`);
    }
    out.set(key, samples);
  }
  return out;
}

/** One step of the model: a batch of (series index, timestamp, value), a cut at a boundary, or a forget. */
type Step =
  | { kind: 'batch'; tenant: number; entries: { series: number; t: number; v: number }[] }
  | { kind: 'cut'; boundary: number }
  | { kind: 'reuse'; key: number };

const SERIES = 12;

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('batch' as const),
      tenant: fc.integer({ min: 0, max: 1 }),
      entries: fc.array(
        fc.record({
          series: fc.integer({ min: 0, max: SERIES - 1 }),
          t: fc.integer({ min: 0, max: 40 }).map((x) => x * 1000),
          v: fc.oneof(fc.double(), fc.integer({ min: 0, max: 3 })),
        }),
        { maxLength: 10 },
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('cut' as const),
      boundary: fc.integer({ min: 1, max: 5 }).map((x) => x * 10_000),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('reuse' as const), key: fc.integer({ min: 0, max: 5 }) }),
  },
);

describe('Head.appendKeyed', () => {
  it('stores what Head.append stores, through cuts, renumberings and reused keys (labels or label ids)', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 40 }), (steps) => {
        const opts = { oooWindowMs: 3_600_000, chunkRangeMs: 10_000, maxChunkSamples: 4 };
        const byLabels = new Head(opts);
        const keyed = new Head(opts);
        const cache = new HeadRefCache();
        // The same keyed appends, the labels given as ids of the caller's strings (the series table's way).
        const byIds = new Head(opts);
        const idCache = new HeadRefCache();
        const strings: string[] = [];
        const sidOf = new Map<string, number>();
        const sid = (x: string) => {
          let id = sidOf.get(x);
          if (id === undefined) {
            id = strings.length;
            strings.push(x);
            sidOf.set(x, id);
          }
          return id;
        };
        const labelIds: KeyedLabelIds = {
          strings,
          pairsOf: (key) => {
            const pairs: number[] = [];
            for (const [name, value] of Object.entries(labels[key]!))
              if (name !== 'tenant') pairs.push(sid(name), sid(value));
            return Int32Array.from(pairs);
          },
        };
        // The caller's table: key → (tenant, series index); a key is bound at its first use.
        const keyOf = new Map<string, number>();
        const labels: (LabelSet | undefined)[] = [];
        let generation = 0;
        const labelsFor = (series: number): LabelSet => ({
          __name__: `m${series % 3}`,
          node_id: `n${series}`,
          // Shifted by each reuse, so that a reused key names a series the head may never have seen.
          gen: String(generation),
          // An empty value: dropped, as Prometheus drops it.
          ...(series % 4 === 0 ? { empty: '' } : {}),
        });
        for (const step of steps) {
          if (step.kind === 'cut') {
            for (const head of [byLabels, keyed, byIds]) head.finishCut(head.prepareCut(step.boundary));
            continue;
          }
          if (step.kind === 'reuse') {
            // Forget one bound key and rebind it to another series (as the series table reuses a freed ref).
            const entry = [...keyOf.entries()].find(([, k]) => k === step.key);
            if (entry) {
              keyOf.delete(entry[0]);
              cache.forget(step.key);
              idCache.forget(step.key);
              labels[step.key] = undefined;
            }
            generation++;
            continue;
          }
          const tenant = `t${step.tenant}`;
          // Entries grouped per series, in first-seen order (a record lists each series once).
          const groups = new Map<number, { t: number; v: number }[]>();
          for (const e of step.entries) {
            const g = groups.get(e.series) ?? [];
            g.push({ t: e.t, v: e.v });
            groups.set(e.series, g);
          }
          const n = groups.size;
          const keys = new Int32Array(n);
          const offsets = new Uint32Array(n + 1);
          const timestamps = new Float64Array(step.entries.length);
          const values = new Float64Array(step.entries.length);
          const series: LabelSet[] = [];
          let i = 0;
          let j = 0;
          for (const [s, samples] of groups) {
            const set = labelsFor(s);
            const id = `${tenant}|${JSON.stringify(set)}`;
            let key = keyOf.get(id);
            if (key === undefined) {
              key = 0;
              while (labels[key] !== undefined) key++;
              keyOf.set(id, key);
              labels[key] = { ...set, tenant };
            }
            keys[i] = key;
            series.push(set);
            for (const x of samples) {
              timestamps[j] = x.t;
              values[j] = x.v;
              j++;
            }
            offsets[++i] = j;
          }
          const a = newStats();
          const b = newStats();
          byLabels.append(tenant, { series, offsets, timestamps, values, sampleCount: j }, a);
          const kb: KeyedSeriesBatch = {
            seriesCount: n,
            keys,
            labels,
            offsets,
            timestamps,
            values,
            sampleCount: j,
          };
          keyed.appendKeyed(tenant, kb, cache, b);
          expect(b).toEqual(a);
          const c = newStats();
          byIds.appendKeyed(tenant, { ...kb, labelIds }, idCache, c);
          expect(c).toEqual(a);
        }
        expect(contents(keyed)).toEqual(contents(byLabels));
        expect(contents(byIds)).toEqual(contents(byLabels));
      }),
      { numRuns: 300 },
    );
  });

  it('looks a remembered series up again after a renumbering', () => {
    const head = new Head({ oooWindowMs: 3_600_000, chunkRangeMs: 10_000 });
    const cache = new HeadRefCache();
    const labels: LabelSet[] = [];
    for (let k = 0; k < 8; k++) labels.push({ __name__: 'm', node_id: `n${k}`, tenant: 't' });
    const batch = (keys: number[], t: number): KeyedSeriesBatch => ({
      seriesCount: keys.length,
      keys: Int32Array.from(keys),
      labels,
      offsets: Uint32Array.from(keys.map((_, i) => i).concat(keys.length)),
      timestamps: new Float64Array(keys.length).fill(t),
      values: new Float64Array(keys.length).fill(1),
      sampleCount: keys.length,
    });
    head.appendKeyed('t', batch([0, 1, 2, 3, 4, 5, 6, 7], 1000), cache, newStats());
    // Series 0..5 stop; a cut drops them and renumbers the rest (6 → 0, 7 → 1).
    head.appendKeyed('t', batch([6, 7], 25_000), cache, newStats());
    head.finishCut(head.prepareCut(20_000));
    expect(head.generation).toBe(1);
    const stats = newStats();
    head.appendKeyed('t', batch([7], 26_000), cache, newStats());
    head.appendKeyed('t', batch([6], 26_000), cache, stats);
    expect(stats.created).toBe(0);
    expect(head.activeSeries()).toBe(2);
    expect(head.allPostings().length).toBe(2);
  });

  it('does not carry refs from one head to another', () => {
    const opts = { oooWindowMs: 3_600_000, chunkRangeMs: 10_000 };
    const a = new Head(opts);
    const b = new Head(opts);
    const cache = new HeadRefCache();
    const labels: LabelSet[] = [
      { __name__: 'm', node_id: 'x', tenant: 't' },
      { __name__: 'm', node_id: 'y', tenant: 't' },
    ];
    const batch = (key: number): KeyedSeriesBatch => ({
      seriesCount: 1,
      keys: Int32Array.of(key),
      labels,
      offsets: Uint32Array.of(0, 1),
      timestamps: Float64Array.of(1000),
      values: Float64Array.of(1),
      sampleCount: 1,
    });
    // In head a, key 1 is ref 1. Head b has other series at refs 0 and 1: key 1 must not land on b's ref 1.
    a.appendKeyed('t', batch(0), cache, newStats());
    a.appendKeyed('t', batch(1), cache, newStats());
    const other = {
      series: [
        { __name__: 'm', node_id: 'z' },
        { __name__: 'm', node_id: 'w' },
      ],
      offsets: Uint32Array.of(0, 1, 2),
      timestamps: Float64Array.of(500, 500),
      values: Float64Array.of(2, 2),
      sampleCount: 2,
    };
    b.append('t', other, newStats());
    const stats = newStats();
    b.appendKeyed('t', batch(1), cache, stats);
    expect(stats.created).toBe(1);
    expect(b.labelSet(2)).toEqual(labels[1]);
    expect(
      contents(b).get(
        JSON.stringify([
          ['__name__', 'm'],
          ['node_id', 'w'],
          ['tenant', 't'],
        ]),
      ),
    ).toHaveLength(1);
  });

  it('finds every live series by its labels through index growth, cuts and renumberings', () => {
    // A Map from each label set to its ref is the model: one series per label set, found again while alive.
    const head = new Head({ oooWindowMs: 3_600_000, chunkRangeMs: 10_000 });
    const model = new Map<string, number>();
    const stats = newStats();
    const labelsOf = (i: number): LabelSet => ({ __name__: `m${i % 7}`, node_id: `n${i}` });
    const tenant = 't';
    const tenantValue = head.symbols.intern(tenant);
    let t = 1000;
    for (let round = 0; round < 4; round++) {
      // Round r appends series [1000 r, 1000 r + 3000): every round keeps 2000 of the previous one alive.
      for (let i = 1000 * round; i < 1000 * round + 3000; i++) {
        const ref = head.getOrCreate(tenant, tenantValue, labelsOf(i), stats);
        head.appendSample(ref, t, i, stats);
        const key = `n${i}`;
        const known = model.get(key);
        if (known !== undefined) expect(ref).toBe(known);
        else {
          expect([...model.values()]).not.toContain(ref);
          model.set(key, ref);
        }
      }
      t += 30_000;
      // A cut drops the series of the round before last (no sample since), which renumbers the rest.
      head.finishCut(head.prepareCut(Math.floor((t - 15_000) / 10_000) * 10_000));
      model.clear();
      for (const ref of head.allPostings()) model.set(head.labelSet(ref).node_id!, ref);
      const before = stats.created;
      for (const [node, ref] of model) {
        const i = Number(node.slice(1));
        expect(head.getOrCreate(tenant, tenantValue, labelsOf(i), stats)).toBe(ref);
      }
      expect(stats.created).toBe(before);
      expect(head.memoryStats().hashEntries).toBe(model.size);
    }
  });
});
