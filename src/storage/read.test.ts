/**
 * Reading: bulk reads (`readSamples`) give exactly what the sample iterators give — over the head, blocks,
 * out-of-order buffers, overlapping blocks and any sub-range — and blocks of format version 1 (written before
 * version 2) read back every sample.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { SeriesBatchBuilder, STALE_NAN } from '../model/batch.js';
import { LabelMatcher } from '../model/labels.js';
import { ByteWriter } from '../protocol/bytes.js';
import { BlockReader, BlockWriter } from './block.js';
import { readSeriesInto } from './bulk-read.js';
import { encodeChunk, SampleBuffer } from './codec/chunk.js';
import { RollupColumns } from './rollup.js';
import type { SelectedSeries, SelectHints } from './storage.js';
import { Tsdb, type TsdbOptions } from './tsdb.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'tw-read-'));
const all = [new LabelMatcher('=~', '__name__', '.+')];

function open(dir: string, over: Partial<TsdbOptions> = {}) {
  return Tsdb.open({
    dir,
    blockDurationMs: 60_000,
    outOfOrderWindowMs: 3_600_000,
    retentionMs: { raw: 0, '10s': 0, '1m': 0, '1h': 0 },
    fsync: false,
    blockCacheBytes: 1 << 20,
    logger: pino({ level: 'silent' }),
    ...over,
  });
}

const bits = new BigUint64Array(1);
const f64 = new Float64Array(bits.buffer);
const bitsOf = (v: number) => {
  f64[0] = v;
  return bits[0]!;
};

/** The samples of a series through its iterator, as [t, value bits] pairs. */
function iterated(s: SelectedSeries): [number, bigint][] {
  const out: [number, bigint][] = [];
  const it = s.iterator();
  while (it.next()) out.push([it.t, bitsOf(it.v)]);
  return out;
}

/** The samples of a series through a bulk read. */
function bulk(s: SelectedSeries, buf: SampleBuffer): [number, bigint][] {
  const n = s.readSamples!(buf);
  expect(n).toBe(buf.n);
  const vb = new BigUint64Array(buf.v.buffer, 0, n);
  return Array.from({ length: n }, (_, i) => [buf.t[i]!, vb[i]!] as [number, bigint]);
}

describe('bulk reads', () => {
  it('give exactly what the iterators give, over head, blocks, late data and sub-ranges', async () => {
    const buf = new SampleBuffer(8);
    for (let seed = 1; seed <= 4; seed++) {
      let rng = seed * 104729;
      const random = () => {
        rng = (rng * 1103515245 + 12345) % 2147483648;
        return rng / 2147483648;
      };
      const db = await open(tmp());
      const next = [0, 0, 0].map(() => 1_000_000_000_000);
      const special = new Float64Array([STALE_NAN, -0, Number.NaN, Number.POSITIVE_INFINITY, 5e-324]);
      for (let step = 0; step < 120; step++) {
        const b = new SeriesBatchBuilder();
        for (let s = 0; s < next.length; s++) {
          b.addSeries({ __name__: `m${s}` });
          const k = 1 + Math.floor(random() * 30);
          for (let j = 0; j < k; j++) {
            next[s]! += 1000;
            const r = random();
            b.add(
              next[s]!,
              r < 0.05 ? special[Math.floor(r * 100)]! : s === 1 ? Math.floor(r * 50) : r * 1e3,
            );
          }
          // Late samples (some into ranges already cut into blocks) and rewrites of stored timestamps.
          if (random() < 0.3) b.add(next[s]! - Math.floor(random() * 200_000) - 1, random());
          if (random() < 0.1) b.add(next[s]! - 1000 * Math.floor(random() * 20), random());
        }
        db.appender.append('t', b.build());
        if (step % 7 === 6) await db.checkpoint(new Map([[0, step]]));
      }
      expect(db.listBlocks().filter((b) => b.tier === 'raw').length).toBeGreaterThan(0);
      const ranges: [number, number][] = [[-1e15, 1e15]];
      for (let k = 0; k < 6; k++) {
        const a = 1_000_000_000_000 + Math.floor(random() * 2_000_000);
        ranges.push([a, a + Math.floor(random() * 1_500_000)]);
      }
      for (const [lo, hi] of ranges) {
        const hints: (SelectHints | undefined)[] = [undefined, { minT: lo + 500, maxT: hi - 500 }];
        for (const h of hints) {
          const selected = db.localQuerier('t', lo, hi).select(all, h);
          if (lo < 0) expect(selected.length).toBe(3);
          for (const s of selected)
            expect(bulk(s, buf), `seed ${seed} [${lo}, ${hi}] ${s.labels.__name__}`).toEqual(iterated(s));
        }
      }
      // Rollup tiers answer bulk reads with the window aggregates the iterator yields.
      for (const func of ['avg_over_time', 'max_over_time', 'count_over_time']) {
        const sel = db.localQuerier('t', -1e15, 1e15).select(all, { stepMs: 60_000, rangeMs: 60_000, func });
        expect(sel.some((s) => s.resolutionMs !== undefined)).toBe(true);
        for (const s of sel) expect(bulk(s, buf)).toEqual(iterated(s));
      }
      // … and readAggregates the windows aggregates() yields, into one reused set of columns (grown from
      // two windows), with or without a narrower list of aggregates and time range.
      const windows = new RollupColumns(2);
      for (const h of [
        { stepMs: 10_000, rangeMs: 10_000, func: 'avg_over_time' },
        {
          stepMs: 60_000,
          rangeMs: 60_000,
          func: 'avg_over_time',
          aggregates: ['sum', 'count', 'last'] as const,
        },
        {
          stepMs: 10_000,
          rangeMs: 10_000,
          func: 'max_over_time',
          minT: 1_000_000_312_345,
          maxT: 1_000_000_901_234,
        },
        // The newest 30 s: windows aggregated from the head's raw samples only.
        { stepMs: 10_000, rangeMs: 10_000, func: 'avg_over_time', minT: Math.max(...next) - 30_000 },
      ]) {
        const sel = db.localQuerier('t', -1e15, 1e15).select(all, h);
        expect(
          sel.some((s) => s.resolutionMs !== undefined),
          JSON.stringify(h),
        ).toBe(true);
        for (const s of sel) {
          const it = s.aggregates!();
          const viaIterator: bigint[][] = [];
          while (it.next())
            viaIterator.push(
              [it.t, it.min, it.max, it.sum, it.count, it.last].map((x, i) => (i ? bitsOf(x) : BigInt(x))),
            );
          const n = s.readAggregates!(windows);
          expect(n).toBe(windows.n);
          const viaBulk = Array.from({ length: n }, (_, i) => [
            BigInt(windows.t[i]!),
            ...windows.cols.map((c) => bitsOf(c[i]!)),
          ]);
          expect(viaBulk, `${JSON.stringify(h)} ${s.labels.__name__}`).toEqual(viaIterator);
        }
      }
      await db.close();
    }
  }, 60_000);
});

describe('bulk reads over joined blocks', () => {
  it('put disjoint blocks in time order whatever order they come in (sequence order is not time order)', async () => {
    const db = await open(tmp());
    const want: [number, bigint][] = [];
    for (let minute = 0; minute < 5; minute++) {
      const b = new SeriesBatchBuilder();
      b.addSeries({ __name__: 'j' });
      for (let s = 0; s < 60; s++) {
        const t = minute * 60_000 + s * 1000;
        b.add(t, t / 7);
        want.push([t, bitsOf(t / 7)]);
      }
      db.appender.append('t', b.build());
      await db.checkpoint(new Map([[0, minute]]));
    }
    const raw = db.blockReaders().filter((b) => b.meta.tier === 'raw');
    expect(raw.length).toBeGreaterThan(2);
    // As a compaction leaves them: a joined or merged block is newer than later ones. Shuffled here.
    const sources = [...raw].reverse().map((block) => ({ block, id: 0 }));
    [sources[0], sources[1]] = [sources[1]!, sources[0]!];
    const buf = new SampleBuffer(8);
    const n = readSeriesInto(sources, undefined, -1e15, 1e15, buf);
    const inBlocks = want.filter(([t]) => t <= Math.max(...raw.map((b) => b.meta.maxT)));
    const vb = new BigUint64Array(buf.v.buffer, 0, n);
    expect(Array.from({ length: n }, (_, i) => [buf.t[i]!, vb[i]!])).toEqual(inBlocks);
    await db.close();
  });
});

describe('bulk reads of spilled head chunks', () => {
  it('read runs of chunks spilled back to back at a cut in one go, exactly', async () => {
    const db = await open(tmp(), { blockDurationMs: 600_000 });
    const buf = new SampleBuffer(8);
    // 1-second samples for 27 minutes: chunks of 120 samples spilled at checkpoints, cuts at 10 and 20 min
    // (the chunks left in the head are then rewritten series by series into the new spill file).
    for (let k = 0; k < 27 * 60; k += 30) {
      const b = new SeriesBatchBuilder();
      for (let s = 0; s < 3; s++) {
        b.addSeries({ __name__: `sp${s}` });
        for (let i = k; i < k + 30; i++) b.add(i * 1000, s === 0 ? i : Math.sin(i) * (s + 1));
      }
      db.appender.append('t', b.build());
      await db.checkpoint(new Map([[0, k]]));
    }
    const sel = db.localQuerier('t', -1e15, 1e15).select(all);
    expect(sel).toHaveLength(3);
    for (const s of sel) expect(bulk(s, buf)).toEqual(iterated(s));
    for (const [lo, hi] of [
      [1_200_000, 1_500_000],
      [1_330_000, 1_333_000],
      [1_000_000, 1_700_000],
    ])
      for (const s of db.localQuerier('t', lo!, hi!).select(all)) expect(bulk(s, buf)).toEqual(iterated(s));
    await db.close();
  });
});

describe('blocks of format version 1', () => {
  // testdata/make-blocks-v1.mjs wrote them (keep value() in sync with it).
  const M = 60_000;
  const T0 = 1_700_000_000_000 - (1_700_000_000_000 % (10 * M));
  const special = new Float64Array(6);
  special[0] = STALE_NAN;
  special[1] = -0;
  special[2] = Number.POSITIVE_INFINITY;
  special[3] = Number.NEGATIVE_INFINITY;
  special[4] = 5e-324;
  new DataView(special.buffer).setBigUint64(40, 0x7ff8000000000123n, true);
  const specialBits = new BigUint64Array(special.buffer);
  const expected = (s: string): [number, bigint][] =>
    Array.from({ length: 600 }, (_, i) => {
      const t = T0 + i * 1000 + (s === 'd' ? i % 3 : 0);
      const v =
        s === 'a'
          ? bitsOf(i * 0.25)
          : s === 'b'
            ? i >= 100 && i < 106
              ? specialBits[i - 100]!
              : bitsOf(40 + Math.sin(i / 7) * 3.123456789)
            : s === 'c'
              ? bitsOf(7)
              : bitsOf(i % 5 === 0 ? 2 ** 40 + i : 1000 + i * 3);
      return [t, v];
    });

  it('reads every sample of raw and rollup blocks written by an earlier build', async () => {
    const dir = tmp();
    mkdirSync(path.join(dir, 'blocks'), { recursive: true });
    const from = path.join(import.meta.dirname, 'testdata', 'blocks-v1');
    for (const f of readdirSync(from)) copyFileSync(path.join(from, f), path.join(dir, 'blocks', f));
    const db = await open(dir);
    expect(db.blockReaders().every((b) => b.version === 1)).toBe(true);
    // Raw blocks of version 1 say "rolledUp" without naming tiers: found from their rollup blocks.
    for (const b of db.blockReaders().filter((x) => x.meta.tier === 'raw'))
      expect([...db.tiersOf(b)]).toEqual(['10s', '1m']);
    const buf = new SampleBuffer(8);
    const sel = db
      .localQuerier('fixture', 0, 2e12)
      .select([new LabelMatcher('=~', '__name__', 'fixture_[a-d]')]);
    expect(sel.map((s) => s.labels.k)).toEqual(['a', 'b', 'c', 'd']);
    for (const s of sel) {
      expect(iterated(s), s.labels.k).toEqual(expected(s.labels.k!));
      expect(bulk(s, buf), s.labels.k).toEqual(expected(s.labels.k!));
    }
    // The 1-minute rollup tier: each window's count and sum, as the raw samples give them.
    const rolled = db
      .localQuerier('fixture', 0, 2e12)
      .select([new LabelMatcher('=', '__name__', 'fixture_a')], {
        stepMs: M,
        rangeMs: M,
        func: 'sum_over_time',
      });
    expect(rolled[0]!.resolutionMs).toBe(M);
    const it = rolled[0]!.aggregates!();
    let windows = 0;
    while (it.next()) {
      const first = (it.t + 1 - M - T0) / 1000;
      let sum = 0;
      for (let i = first; i < first + 60; i++) sum += i * 0.25;
      expect([it.count, it.sum]).toEqual([60, sum]);
      windows++;
    }
    expect(windows).toBe(10);
    // A compaction rewrites them in the current version with the same samples.
    await db.close();
  });
});

describe('blocks of format versions 2 and 3', () => {
  /**
   * One block's worth of series written in `version`: noisy readings of single precision, every third
   * series repeating its neighbour's (GPUs of one node in step): repeats a general compressor finds across
   * series and the chunk codecs, one series at a time, cannot.
   */
  function writeBlock(file: string, version: 2 | 3) {
    const w = new BlockWriter(file, version);
    const out = new ByteWriter(1 << 12);
    const t = new Float64Array(240);
    const v = new Float64Array(240);
    for (let s = 0; s < 600; s++) {
      const b = s % 3 === 1 ? s - 1 : s;
      for (let i = 0; i < 240; i++) {
        t[i] = 1_800_000_000_000 + i * 1000;
        v[i] =
          b % 7 === 0
            ? i
            : Math.fround(50 + Math.sin(i * 0.37 + b) * 12.345678 + ((b * 7919 + i * 104729) % 997) / 1e4);
      }
      const chunks = [];
      for (let from = 0; from < 240; from += 120) {
        out.reset();
        encodeChunk(t, v, from, from + 120, out);
        chunks.push({ column: 0, minT: t[from]!, maxT: t[from + 119]!, bytes: out.toBytes() });
      }
      w.addSeries(
        ['__name__', 'gpu', 'tenant'],
        ['fixture_v', String(s).padStart(4, '0'), 'fixture'],
        chunks,
        240,
      );
    }
    w.finish({ tier: 'raw', seq: version, rolledUp: false, rollups: [], level: 0, sources: [] });
  }

  it('read the same chunk bytes and samples from deflated pages (version 3) as from plain chunks (version 2)', async () => {
    const dir = tmp();
    mkdirSync(path.join(dir, 'blocks'), { recursive: true });
    writeBlock(path.join(dir, 'blocks', 'raw-2.twb'), 2);
    writeBlock(path.join(dir, 'blocks', 'raw-3.twb'), 3);
    const v2 = new BlockReader(path.join(dir, 'blocks', 'raw-2.twb'));
    const v3 = new BlockReader(path.join(dir, 'blocks', 'raw-3.twb'));
    expect([v2.version, v3.version]).toEqual([2, 3]);
    // Several pages, and smaller than the plain chunks.
    expect(v3.index().pageCodec.length).toBeGreaterThan(3);
    expect(v3.fileBytes).toBeLessThan(v2.fileBytes * 0.95);
    const i2 = v2.index();
    const i3 = v3.index();
    expect(Array.from(i3.chunkOffset)).toEqual(Array.from(i2.chunkOffset));
    // Every chunk, in an order that jumps between pages, by scratch and owned reads.
    const n = i2.chunkOffset.length;
    for (let k = 0; k < n; k++) {
      const c = (k * 389) % n;
      const [off, len] = [i2.chunkOffset[c]!, i2.chunkLength[c]!];
      expect(Buffer.from(v3.read(off, len, k % 2 === 0)).equals(Buffer.from(v2.read(off, len)))).toBe(true);
    }
    // A range across pages (several series at once).
    const whole = i2.chunkOffset[n - 1]! + i2.chunkLength[n - 1]! - 8;
    expect(Buffer.from(v3.read(8, whole)).equals(Buffer.from(v2.read(8, whole)))).toBe(true);
    v2.close();
    v3.close();
    // Through the store: both blocks hold the same samples (the newer one wins ties, with equal values).
    const db = await open(dir);
    const buf = new SampleBuffer(8);
    const sel = db.localQuerier('fixture', 0, 2e12).select([new LabelMatcher('=~', 'gpu', '00[0-9]7')]);
    expect(sel).toHaveLength(10);
    for (const s of sel) {
      const got = iterated(s);
      expect(got).toHaveLength(240);
      expect(bulk(s, buf)).toEqual(got);
    }
    await db.close();
  });
});
