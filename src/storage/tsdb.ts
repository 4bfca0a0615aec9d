import type { Logger } from 'pino';
import {
  type LabelMatcher,
  type LabelSet,
  LabelMatcher as Matcher,
  WellKnownLabel,
} from '../model/labels.js';
import type { BlockMeta, BlockReader, TierName } from './block.js';
import { readSeriesInto } from './bulk-read.js';
import { SampleBuffer } from './codec/chunk.js';
import type { Head } from './head.js';
import { BlockIterator, EMPTY_ITERATOR, HeadIterator, MergeIterator } from './iterators.js';
import { intersect, type Postings, type PostingsIndex, postingsForMatchers } from './postings.js';
import {
  AGG_COLUMNS,
  AGG_COUNT,
  AGG_SUM,
  aggregateSamples,
  ROLLUP_FUNCS,
  RollupColumns,
  RollupIterator,
  type Tier,
} from './rollup.js';
import { silentLogger } from './silent-logger.js';
import type {
  AggregateArrays,
  AggregateIterator,
  Querier,
  SampleIterator,
  SelectedSeries,
  SelectHints,
  Storage,
} from './storage.js';
import { seriesSet } from './storage.js';
import { seriesSortKey } from './symbols.js';
import { TsdbCompactor } from './tsdb-compact.js';
import { defaultTsdbOptions, type LocalQuerier, type TsdbOptions } from './tsdb-lifecycle.js';

export { defaultTsdbOptions, type LocalQuerier, type TsdbOptions } from './tsdb-lifecycle.js';

/** The AGG_* columns named in SelectHints.aggregates, as bits (all when absent); count is always read. */
function aggregateMask(names: readonly string[] | undefined): number {
  if (!names) return ALL_AGGREGATES;
  let mask = 1 << AGG_COUNT;
  for (const n of names) {
    const c = ['min', 'max', 'sum', 'count', 'last'].indexOf(n);
    if (c < 0) throw new Error(`unknown aggregate ${JSON.stringify(n)}`);
    mask |= 1 << c;
  }
  return mask;
}

const ALL_AGGREGATES = (1 << AGG_COLUMNS) - 1;

/** Scratch for rollup materialization (synchronous: one at a time). */
const rollupScratch = new SampleBuffer(1024);

const rawScratch = new SampleBuffer(1024);

interface SeriesSources {
  labels: LabelSet;
  head?: ReturnType<Head['snapshot']>;
  blocks: { block: BlockReader; id: number }[];
  rollups: { block: BlockReader; id: number }[];
}

export class Tsdb extends TsdbCompactor implements Storage {
  protected constructor(opts: TsdbOptions) {
    super(opts);
  }

  static async open(opts: TsdbOptions): Promise<Tsdb> {
    const db = new Tsdb(opts);
    if (opts.dir !== undefined) db.openDir(opts.dir);
    return db;
  }

  // --------------------------------------------------------------------------------------------------------
  // Reading

  /**
   * The embedded querier answers from memory and local files at once: each call does its work synchronously
   * and returns a settled promise (no network, so nothing to cancel mid-way; an already aborted signal
   * rejects before any work).
   */
  querier(tenant: string | null, minT: number, maxT: number): Querier {
    const q = this.localQuerier(tenant, minT, maxT);
    return {
      select: async (matchers, hints, signal) => {
        signal?.throwIfAborted();
        return seriesSet(q.select(matchers, hints));
      },
      labelNames: async (matchers = [], signal) => {
        signal?.throwIfAborted();
        return q.labelNames(matchers);
      },
      labelValues: async (name, matchers = [], signal) => {
        signal?.throwIfAborted();
        return q.labelValues(name, matchers);
      },
    };
  }

  /** The same reads without promises, for code that holds the embedded TSDB itself (its tests, benches). */
  localQuerier(tenant: string | null, minT: number, maxT: number): LocalQuerier {
    return {
      select: (matchers, hints) => this.select(tenant, matchers, minT, maxT, hints),
      labelNames: (matchers = []) => this.labelNames(tenant, matchers, minT, maxT),
      labelValues: (name, matchers = []) => this.labelValues(tenant, name, matchers, minT, maxT),
    };
  }

  /** Blocks of `tier` overlapping [lo, hi], oldest first. */
  blocksFor(tier: TierName, lo: number, hi: number): BlockReader[] {
    return this.blocks.filter((b) => b.meta.tier === tier && b.meta.maxT >= lo && b.meta.minT <= hi);
  }

  protected scoped(tenant: string | null, matchers: readonly LabelMatcher[]): readonly LabelMatcher[] {
    return tenant === null ? matchers : [...matchers, new Matcher('=', WellKnownLabel.tenant, tenant)];
  }

  protected gather(
    tenant: string | null,
    matchers: readonly LabelMatcher[],
    lo: number,
    hi: number,
    rollupTier: TierName | undefined,
    rawFrom = lo,
  ): Map<string, SeriesSources> {
    const all = this.scoped(tenant, matchers);
    const out = new Map<string, SeriesSources>();
    const entry = (key: string, labels: () => LabelSet): SeriesSources => {
      let e = out.get(key);
      if (!e) {
        e = { labels: labels(), blocks: [], rollups: [] };
        out.set(key, e);
      }
      return e;
    };
    const addBlocks = (tier: TierName, into: 'blocks' | 'rollups', from: number) => {
      for (const b of this.blocksFor(tier, from, hi)) {
        const idx = b.index();
        const ids = postingsForMatchers(idx, all);
        for (let k = 0; k < ids.length; k++) {
          const id = ids[k]!;
          // Skip series with no chunk in range.
          let hit = false;
          const end = idx.chunkStart[id]! + idx.chunkCount[id]!;
          for (let c = idx.chunkStart[id]!; c < end; c++) {
            if (idx.chunkMaxT[c]! >= lo && idx.chunkMinT[c]! <= hi) {
              hit = true;
              break;
            }
          }
          if (!hit) continue;
          entry(idx.sortKey(id), () => idx.labelSet(id))[into].push({ block: b, id });
        }
      }
    };
    // With a rollup tier, raw blocks matter only where the rollups are not complete yet.
    if (rawFrom <= hi) addBlocks('raw', 'blocks', Math.max(lo, rawFrom));
    if (rollupTier) addBlocks(rollupTier, 'rollups', lo);
    const refs = this.head.select(all);
    for (let k = 0; k < refs.length; k++) {
      const ref = refs[k]!;
      const [a, b] = this.head.timeRange(ref);
      if (b < lo || a > hi) continue;
      const { names, values } = this.head.labelsOf(ref);
      entry(seriesSortKey(names, values), () => {
        const labels: Record<string, string> = {};
        for (let i = 0; i < names.length; i++) labels[names[i]!] = values[i]!;
        return labels;
      }).head = this.head.snapshot(ref);
    }
    return out;
  }

  protected rawIterator(s: SeriesSources, lo: number, hi: number): SampleIterator {
    const children: SampleIterator[] = s.blocks.map((p) => new BlockIterator(p.block, p.id, 0, lo, hi));
    if (s.head) children.push(new HeadIterator(s.head, lo, hi));
    if (children.length === 0) return EMPTY_ITERATOR;
    return children.length === 1 ? children[0]! : new MergeIterator(children);
  }

  /** The coarsest enabled tier that answers `hints` exactly, if any. */
  chooseTier(hints: SelectHints | undefined): Tier | undefined {
    if (!hints?.func || !hints.stepMs || !hints.rangeMs) return undefined;
    if (!(hints.func in ROLLUP_FUNCS)) return undefined;
    let best: Tier | undefined;
    for (const t of this.tiers) {
      if (
        t.resolutionMs <= hints.stepMs &&
        hints.stepMs % t.resolutionMs === 0 &&
        hints.rangeMs % t.resolutionMs === 0
      )
        best = t;
    }
    return best;
  }

  /**
   * Where the rollup tier is complete: every window before the returned time (aligned to the tier) has its
   * rollup on disk; from there on, windows are aggregated from raw data at query time.
   */
  protected rollupCoverageEnd(tier: Tier, withHead = true): number {
    let end = Math.min(
      withHead ? this.headMinTime : Number.POSITIVE_INFINITY,
      this.cutBoundary === Number.NEGATIVE_INFINITY ? Infinity : this.cutBoundary,
    );
    for (const b of this.blocks) {
      if (b.meta.tier !== 'raw' || this.tiersOf(b).has(tier.name)) continue;
      end = Math.min(end, this.alignedRange(b.meta.minT, b.meta.maxT)[0]);
    }
    if (!Number.isFinite(end)) end = Number.POSITIVE_INFINITY;
    return Math.floor(end / tier.resolutionMs) * tier.resolutionMs;
  }

  protected select(
    tenant: string | null,
    matchers: readonly LabelMatcher[],
    minT: number,
    maxT: number,
    hints: SelectHints | undefined,
  ): SelectedSeries[] {
    const lo = Math.max(minT, hints?.minT ?? minT);
    const hi = Math.min(maxT, hints?.maxT ?? maxT);
    if (lo > hi) return [];
    const tier = this.chooseTier(hints);
    const split = tier ? this.rollupCoverageEnd(tier) : lo;
    const blockSplit = tier ? this.rollupCoverageEnd(tier, false) : lo;
    const funcColumn = tier ? ROLLUP_FUNCS[hints!.func!]! : 0;
    const wanted =
      aggregateMask(hints?.aggregates) |
      (funcColumn < 0 ? (1 << AGG_SUM) | (1 << AGG_COUNT) : 1 << funcColumn);
    const sources = this.gather(tenant, matchers, lo, hi, tier?.name, tier ? Math.max(lo, split) : lo);
    const keys = [...sources.keys()].sort();
    const out: SelectedSeries[] = [];
    if (!tier) {
      for (const k of keys) {
        const s = sources.get(k)!;
        out.push({
          labels: s.labels,
          iterator: () => this.rawIterator(s, lo, hi),
          readSamples: (into) => readSeriesInto(s.blocks, s.head, lo, hi, into),
        });
      }
      return out;
    }
    const column = ROLLUP_FUNCS[hints!.func!]!;
    for (const k of keys) {
      const s = sources.get(k)!;
      // Per series: its head (late samples, a chunk that spans a cut boundary) may hold samples of windows
      // the blocks' rollups were computed without; from there on its windows come from raw data.
      let seriesSplit = blockSplit;
      if (s.head) {
        const h = s.head;
        let headMin = h.sealed.length > 0 ? h.sealed[0]!.minT : (h.open?.minT ?? Number.POSITIVE_INFINITY);
        if (h.oooT && h.oooT.length > 0) headMin = Math.min(headMin, h.oooT[0]!);
        const res = tier.resolutionMs;
        seriesSplit = Math.min(seriesSplit, Math.floor(headMin / res) * res);
      }
      const materialize = (into?: AggregateArrays) =>
        this.rollupColumns(s, tier, lo, hi, seriesSplit, wanted, into);
      out.push({
        labels: s.labels,
        resolutionMs: tier.resolutionMs,
        iterator: () => new RollupIterator(materialize(), column),
        aggregates: (): AggregateIterator => new RollupIterator(materialize(), column),
        readAggregates: (into) => materialize(into).n,
        readSamples: (into) => {
          const c = materialize();
          into.n = 0;
          into.ensure(c.n);
          into.t.set(c.t.subarray(0, c.n));
          if (column >= 0) into.v.set(c.cols[column]!.subarray(0, c.n));
          else for (let i = 0; i < c.n; i++) into.v[i] = c.cols[AGG_SUM]![i]! / c.cols[AGG_COUNT]![i]!;
          into.n = c.n;
          return c.n;
        },
      });
    }
    return out;
  }

  /** Windows of `tier` for one series over [lo, hi]: stored rollups before `split`, raw aggregated after. */
  /**
   * Windows of `tier` for one series over [lo, hi]: stored rollups before `split`, raw aggregated after. Only
   * the columns in `wanted` (a bit per AGG_* column) are read from the rollup blocks; the others are NaN there.
   */
  protected rollupColumns(
    s: SeriesSources,
    tier: Tier,
    lo: number,
    hi: number,
    split: number,
    wanted = ALL_AGGREGATES,
    /** Caller-owned columns to fill (their contents replaced) instead of new ones. */
    into?: AggregateArrays,
  ): AggregateArrays {
    const res = tier.resolutionMs;
    const winLo = Math.floor(lo / res) * res + res - 1;
    const buf = rollupScratch;
    // Raw samples after the split first (their count bounds their windows), then the stored windows: the
    // columns are then allocated once, at their final size.
    const from = Math.max(split, Math.floor(lo / res) * res);
    const rawN = split <= hi ? readSeriesInto(s.blocks, s.head, from, hi, rawScratch) : 0;
    const stored = split > lo && s.rollups.length > 0;
    const wHi = Math.min(hi, split - 1);
    let first = 0;
    while (first < AGG_COLUMNS && (wanted & (1 << first)) === 0) first++;
    const n = stored ? readSeriesInto(s.rollups, undefined, winLo, wHi, buf, first) : 0;
    const capacity = n + (rawN > 0 ? Math.min(rawN, Math.floor((hi - from) / res) + 1) : 0);
    let out: AggregateArrays;
    if (into) {
      out = into;
      out.reset();
      out.reserve(capacity);
    } else out = new RollupColumns(capacity);
    if (stored) {
      // Bulk reads of each column wanted (same windows in every column of a rollup block).
      out.t.set(buf.t.subarray(0, n));
      for (let c = first; c < AGG_COLUMNS; c++) {
        if ((wanted & (1 << c)) === 0) {
          out.cols[c]!.fill(Number.NaN, 0, n);
          continue;
        }
        const k = c === first ? n : readSeriesInto(s.rollups, undefined, winLo, wHi, buf, c);
        if (k !== n) throw new Error(`storage: rollup columns of ${JSON.stringify(s.labels)} disagree`);
        out.cols[c]!.set(buf.v.subarray(0, k));
      }
      for (let c = 0; c < first; c++) out.cols[c]!.fill(Number.NaN, 0, n);
      out.n = n;
    }
    if (rawN > 0) aggregateSamples(rawScratch.t, rawScratch.v, rawN, res, from, hi, out, lo);
    return out;
  }

  /**
   * The indexes (head and blocks overlapping [minT, maxT]) with, for each, the ids of the series matching
   * `matchers` within the tenant. Label names and values are read from postings, not from series: a
   * dashboard asking for every `job_id` of a tenant costs a walk over the values, not over a million series.
   */
  protected scopedIndexes(
    tenant: string | null,
    matchers: readonly LabelMatcher[],
    minT: number,
    maxT: number,
  ): { index: PostingsIndex; ids: Postings }[] {
    const all = this.scoped(tenant, matchers);
    const out: { index: PostingsIndex; ids: Postings }[] = [];
    const add = (index: PostingsIndex) => {
      const ids = all.length === 0 ? index.allPostings() : postingsForMatchers(index, all);
      if (ids.length > 0) out.push({ index, ids });
    };
    if (this.headMinTime <= maxT && this.head.maxTime >= minT) add(this.head);
    for (const b of this.blocks) {
      if (b.meta.maxT < minT || b.meta.minT > maxT) continue;
      add(b.index());
    }
    return out;
  }

  protected labelNames(
    tenant: string | null,
    matchers: readonly LabelMatcher[],
    minT: number,
    maxT: number,
  ): string[] {
    const names = new Set<string>();
    for (const { index, ids } of this.scopedIndexes(tenant, matchers, minT, maxT)) {
      for (const name of index.labelNames()) {
        if (names.has(name)) continue;
        for (const v of index.labelValues(name)) {
          if (intersect(index.postings(name, v), ids).length > 0) {
            names.add(name);
            break;
          }
        }
      }
    }
    return [...names].sort();
  }

  protected labelValues(
    tenant: string | null,
    name: string,
    matchers: readonly LabelMatcher[],
    minT: number,
    maxT: number,
  ): string[] {
    const values = new Set<string>();
    for (const { index, ids } of this.scopedIndexes(tenant, matchers, minT, maxT)) {
      for (const v of index.labelValues(name)) {
        if (!values.has(v) && intersect(index.postings(name, v), ids).length > 0) values.add(v);
      }
    }
    return [...values].sort();
  }

  /** Blocks currently part of the store (tests, export, stats). */
  listBlocks(): readonly BlockMeta[] {
    return this.blocks.map((b) => b.meta);
  }

  blockReaders(): readonly BlockReader[] {
    return this.blocks;
  }
}

/**
 * The TSDB with nothing on disk: the head only, accepting samples of any age. For tests and tools that need a
 * real Storage without a data directory.
 */
export class MemoryStorage extends Tsdb {
  constructor(opts: { logger?: Logger } = {}) {
    super({
      dir: undefined,
      blockDurationMs: defaultTsdbOptions.blockDurationMs,
      outOfOrderWindowMs: Number.POSITIVE_INFINITY,
      retentionMs: { raw: 0, '10s': 0, '1m': 0, '1h': 0 },
      fsync: false,
      blockCacheBytes: defaultTsdbOptions.blockCacheBytes,
      logger: opts.logger ?? silentLogger,
    });
  }
}
