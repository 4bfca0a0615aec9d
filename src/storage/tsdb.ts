/**
 * trainwatch's embedded time-series database behind the {@link Storage} interface.
 *
 * ```
 *  append ──► Head (memory: series index + Gorilla chunks + out-of-order buffers)
 *               │ checkpoint (every few s): one head-log record with what changed + bus positions
 *               │ cut (every block duration): samples older than the boundary → a raw block (+ rollups)
 *               ▼
 *             blocks/  raw, 10s, 1m, 1h — immutable files with their own index
 *               │ compaction: overlapping blocks merged (newest wins), adjacent ones joined into larger ranges
 *               │ retention: whole blocks past their tier's retention deleted; optional cold export to Parquet
 * ```
 * Durability (docs/durability.md, docs/storage.md): the bus is the write-ahead log. A checkpoint makes the
 * head's changes durable in the head log and records the bus positions they cover; after a crash the head is
 * rebuilt from the log and the processor replays the bus from those positions. Blocks are written to a
 * temporary name and renamed; a compaction's output names the blocks it replaces, so a crash between writing
 * it and deleting them is resolved at open.
 *
 * Any write failure (disk full, unwritable directory) stops the storage from accepting appends and
 * checkpoints with an error that says so (503: retry later); nothing on disk is left half-written, and since
 * no checkpoint covers the refused data, the bus still holds it. While stopped, the storage probes the
 * directory at most every {@link WRITE_PROBE_INTERVAL_MS}; once a probe write succeeds it resumes without a
 * restart, and its next checkpoint starts a fresh head-log file from a snapshot (the failed write may have
 * left a torn record at the end of the current one).
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { SeriesBatch } from '../model/batch.js';
import { Errors, type TrainwatchError, twError } from '../model/errors.js';
import { syncDirSync } from '../model/fs.js';
import {
  type LabelMatcher,
  type LabelSet,
  LabelMatcher as Matcher,
  WellKnownLabel,
} from '../model/labels.js';
import { ByteWriter } from '../protocol/bytes.js';
import { type BlockMeta, BlockReader, BlockWriter, type ChunkRef, type TierName } from './block.js';
import { readSeriesInto } from './bulk-read.js';
import { encodeChunk, SampleBuffer } from './codec/chunk.js';
import { Head, type HeadAppendStats, type HeadChunk, HeadRefCache } from './head.js';
import {
  compressHeadRecord,
  compressHeadRecordSync,
  encodeHeadRecord,
  HeadLog,
  headChanged,
  type RecoveredHead,
} from './head-log.js';
import { BlockIterator, EMPTY_ITERATOR, HeadIterator, MergeIterator } from './iterators.js';
import { intersect, type Postings, type PostingsIndex, postingsForMatchers } from './postings.js';
import {
  AGG_COLUMNS,
  AGG_COUNT,
  AGG_SUM,
  aggregateSamples,
  coarsen,
  ROLLUP_FUNCS,
  ROLLUP_TIERS,
  RollupColumns,
  RollupIterator,
  type Tier,
} from './rollup.js';
import { SpillFile } from './spill.js';
import type {
  AggregateArrays,
  AggregateIterator,
  Appender,
  AppendStats,
  BusPositions,
  KeyedSeriesBatch,
  Querier,
  SampleIterator,
  SelectedSeries,
  SelectHints,
  Storage,
} from './storage.js';
import { seriesSet } from './storage.js';

/** The embedded TSDB's reads as they really are: synchronous, from memory and local files. */
export interface LocalQuerier {
  select(matchers: readonly LabelMatcher[], hints?: SelectHints): SelectedSeries[];
  labelNames(matchers?: readonly LabelMatcher[]): string[];
  labelValues(name: string, matchers?: readonly LabelMatcher[]): string[];
}

import { seriesSortKey } from './symbols.js';

export interface TsdbOptions {
  /** Data directory of the TSDB (`<data-dir>/tsdb`); undefined keeps everything in memory (tests). */
  readonly dir: string | undefined;
  /** Head data is cut into raw blocks of this range (aligned to multiples of it). */
  readonly blockDurationMs: number;
  /** Samples up to this much older than their series' newest are accepted. */
  readonly outOfOrderWindowMs: number;
  /** Per tier; 0 keeps it forever. */
  readonly retentionMs: Readonly<Record<TierName, number>>;
  /** fdatasync head-log records and blocks (the bus's `fsync` policy other than `never`). */
  readonly fsync: boolean;
  /** Budget for block indexes held in memory; least recently used ones are dropped beyond it. */
  readonly blockCacheBytes: number;
  readonly logger: Logger;
  /** Wall clock, for retention (tests move it). */
  readonly now?: () => number;
  /** Called after each maintenance pass with the blocks (export policy hooks in here). */
  readonly onBlocks?: (blocks: readonly BlockReader[]) => Promise<void>;
  /** While writes are stopped, how often to try whether the directory is writable again (default 2 s). */
  readonly writeProbeIntervalMs?: number;
}

export const defaultTsdbOptions = {
  blockDurationMs: 600_000,
  outOfOrderWindowMs: 3_600_000,
  retentionMs: { raw: 15 * 86_400_000, '10s': 90 * 86_400_000, '1m': 365 * 86_400_000, '1h': 0 },
  blockCacheBytes: 512 << 20,
} as const;

const ALL_AGGREGATES = (1 << AGG_COLUMNS) - 1;

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

/** Scratch for rollup materialization (synchronous: one at a time). */
const rollupScratch = new SampleBuffer(1024);
const rawScratch = new SampleBuffer(1024);
/** Samples per block chunk: large enough for the codecs to pay off, small enough to seek cheaply. */
const BLOCK_CHUNK_SAMPLES = 1024;
/** Block writers yield to the event loop after this many series. */
const YIELD_EVERY_SERIES = 2000;
/** Compaction joins adjacent blocks into aligned ranges of block duration × these factors, per tier. */
const LEVEL_FACTORS = [1, 6, 36, 216, 1296, 7776, 46656];
/** Compaction stops joining a tier's blocks at about this range (36 h raw and 10 s, 9 days 1 min, 54 days 1 h). */
const MAX_BLOCK_RANGE_MS: Record<TierName, number> = {
  raw: 36 * 3_600_000,
  '10s': 36 * 3_600_000,
  '1m': 216 * 3_600_000,
  '1h': 1296 * 3_600_000,
};
/**
 * A head unchanged for this long counts as idle: its log is compacted into one snapshot (head-log.ts
 * compactionDue). Longer than any scrape interval, so that a store between two scrapes is not compacted at
 * every one of them.
 */
const IDLE_COMPACTION_MS = 30_000;
/** Closed files of deleted blocks stay open this long for queries still reading them. */
const DELETED_BLOCK_GRACE_MS = 60_000;

interface SeriesSources {
  labels: LabelSet;
  head?: ReturnType<Head['snapshot']>;
  blocks: { block: BlockReader; id: number }[];
  rollups: { block: BlockReader; id: number }[];
}

/** While writes are stopped, how often the storage tries whether it can write again. */
const WRITE_PROBE_INTERVAL_MS = 2000;
/** Size of the probe write: enough that a disk with a few bytes free does not count as writable. */
const WRITE_PROBE_BYTES = 1 << 20;

export class Tsdb implements Storage {
  readonly head: Head;
  private blocks: BlockReader[] = [];
  private covered = new Map<number, number>();
  private cutBoundary = Number.NEGATIVE_INFINITY;
  private nextSeq = 1;
  private failure: TrainwatchError | undefined;
  /** When the directory was last probed while writes are stopped. */
  private lastProbeMs = Number.NEGATIVE_INFINITY;
  /** After a failure: the next checkpoint writes a snapshot into a new head-log file. */
  private snapshotNext = false;
  private log: HeadLog | undefined;
  /** Where sealed head chunks wait for the next cut (spill.ts); renewed at every cut. */
  private spillFile: SpillFile | undefined;
  private spillSeq = 0;
  private checkpointing: Promise<void> | undefined;
  private readonly cacheOrder: BlockReader[] = [];
  private readonly now: () => number;
  /** When a checkpoint last found the head changed (wall clock): how long ingest has paused. */
  private lastHeadChangeMs = Number.NEGATIVE_INFINITY;
  /** Oldest sample time appended since the last cut (the head may hold data this old). */
  private headMinTime = Number.POSITIVE_INFINITY;
  private closed = false;
  /** What the last open recovered from the head log (tests, diagnostics). */
  recovery: RecoveredHead | undefined;
  readonly appender: Appender;
  /**
   * Rollup tiers this store keeps: those whose windows fit the aligned ranges of some compaction level
   * (block duration × a level factor), so that some raw block can carry them without a window straddling it.
   */
  readonly tiers: readonly Tier[];
  /** The most a raw block of each tier is joined to, as a compaction level. */
  private readonly maxLevel: Record<TierName, number>;
  /** Raw blocks of version 1 that say rolledUp without naming tiers: the tiers found for them at open. */
  private readonly legacyTiers = new Map<BlockReader, ReadonlySet<TierName>>();

  protected constructor(private readonly opts: TsdbOptions) {
    this.head = new Head({ oooWindowMs: opts.outOfOrderWindowMs, chunkRangeMs: opts.blockDurationMs });
    this.now = opts.now ?? Date.now;
    const D = opts.blockDurationMs;
    const levelFor = (maxRange: number) => {
      let level = 0;
      while (level + 1 < LEVEL_FACTORS.length && D * LEVEL_FACTORS[level + 1]! <= maxRange) level++;
      return level;
    };
    this.maxLevel = {
      raw: levelFor(MAX_BLOCK_RANGE_MS.raw),
      '10s': levelFor(MAX_BLOCK_RANGE_MS['10s']),
      '1m': levelFor(MAX_BLOCK_RANGE_MS['1m']),
      '1h': levelFor(MAX_BLOCK_RANGE_MS['1h']),
    };
    const rawMax = D * LEVEL_FACTORS[this.maxLevel.raw]!;
    this.tiers = ROLLUP_TIERS.filter((t) => rawMax % t.resolutionMs === 0);
    // Appends apply to the head at once; the promise is settled when returned (a rejected one for a refused batch).
    this.appender = {
      append: (tenant, batch, signal) => {
        try {
          signal?.throwIfAborted();
          return Promise.resolve(this.append(tenant, batch, undefined));
        } catch (err) {
          return Promise.reject(err);
        }
      },
      appendKeyed: (tenant, batch, cache, signal) => {
        try {
          signal?.throwIfAborted();
          if (!(cache instanceof HeadRefCache))
            throw new Error('appendKeyed: a cache this storage did not make');
          return Promise.resolve(this.append(tenant, batch, cache));
        } catch (err) {
          return Promise.reject(err);
        }
      },
      newSeriesRefCache: () => new HeadRefCache(),
    };
  }

  /**
   * Tiers a raw block covering the aligned range [lo, hi] may carry: those whose windows tile the range
   * (it starts on a window boundary and spans whole windows), so no window is shared with another block's.
   */
  private tiersFor(lo: number, hi: number): Tier[] {
    return this.tiers.filter((t) => lo % t.resolutionMs === 0 && (hi + 1 - lo) % t.resolutionMs === 0);
  }

  /** Tiers whose rollup blocks hold this raw block's windows. */
  tiersOf(b: BlockReader): ReadonlySet<TierName> {
    if (b.meta.rollups) return new Set(b.meta.rollups);
    return this.legacyTiers.get(b) ?? new Set();
  }

  static async open(opts: TsdbOptions): Promise<Tsdb> {
    const db = new Tsdb(opts);
    if (opts.dir !== undefined) db.openDir(opts.dir);
    return db;
  }

  private get blocksDir(): string {
    return path.join(this.opts.dir!, 'blocks');
  }

  private openDir(dir: string): void {
    try {
      mkdirSync(path.join(dir, 'head'), { recursive: true });
      mkdirSync(path.join(dir, 'blocks'), { recursive: true });
      const probe = path.join(dir, '.write-probe');
      writeFileSync(probe, 'ok');
      unlinkSync(probe);
    } catch (err) {
      throw twError(
        Errors.unavailable,
        `storage: cannot write to the data directory ${dir}: ${(err as Error).message}`,
      );
    }
    this.loadBlocks();
    const headDir = path.join(dir, 'head');
    // Spill files are a cache of memory, not durable state: the head log holds every chunk.
    for (const f of readdirSync(headDir)) if (/^spill-\d+\.bin$/.test(f)) unlinkSync(path.join(headDir, f));
    this.log = new HeadLog(headDir, this.opts.fsync, this.opts.logger);
    const rec = this.log.recover(this.head);
    this.spillFile = this.newSpillFile();
    this.head.spill(this.spillFile);
    this.covered = rec.positions;
    this.cutBoundary = rec.cutBoundary;
    this.headMinTime = this.computeHeadMinTime();
    this.recovery = rec;
    // An older format, or a log not recovered whole: start a new file with a snapshot of what was recovered
    // (covering the positions reported), so that nothing is ever appended to that file.
    if (rec.rewrite)
      this.log.rotate(
        compressHeadRecordSync(encodeHeadRecord(this.head, this.covered, this.cutBoundary, true)),
      );
    this.opts.logger.info(
      {
        blocks: this.blocks.length,
        headSeries: this.head.activeSeries(),
        headLogRecords: rec.records,
        headLogProblems: rec.problems.length,
        covered: Object.fromEntries(this.covered),
      },
      'storage opened',
    );
  }

  private newSpillFile(): SpillFile {
    return new SpillFile(path.join(this.opts.dir!, 'head', `spill-${++this.spillSeq}.bin`));
  }

  private loadBlocks(): void {
    const dir = this.blocksDir;
    const readers: BlockReader[] = [];
    for (const f of readdirSync(dir)) {
      const file = path.join(dir, f);
      if (f.endsWith('.tmp')) {
        // A block whose write was interrupted: it never became part of the store.
        unlinkSync(file);
        continue;
      }
      if (!f.endsWith('.twb')) continue;
      try {
        readers.push(this.track(new BlockReader(file)));
      } catch (err) {
        this.opts.logger.error({ err, file }, 'storage: unreadable block moved aside');
        renameAside(file);
      }
    }
    // Blocks replaced by a compaction whose sources were not deleted yet (crash in between).
    const replaced = new Set<number>();
    for (const r of readers) for (const s of r.meta.sources) replaced.add(s);
    for (const r of readers) {
      if (replaced.has(r.meta.seq)) {
        r.close();
        unlinkSync(r.path);
      } else this.blocks.push(r);
      this.nextSeq = Math.max(this.nextSeq, r.meta.seq + 1);
    }
    this.sortBlocks();
    // Raw blocks written before tiers were named per block ("rolledUp": true): the tiers whose rollup blocks
    // cover their range.
    for (const r of this.blocks) {
      if (r.meta.tier !== 'raw' || !r.meta.rolledUp || r.meta.rollups) continue;
      const found = new Set<TierName>();
      for (const t of this.tiers)
        if (
          this.blocks.some(
            (x) => x.meta.tier === t.name && x.meta.minT <= r.meta.maxT && x.meta.maxT >= r.meta.minT,
          )
        )
          found.add(t.name);
      this.legacyTiers.set(r, found);
    }
  }

  private sortBlocks(): void {
    this.blocks.sort((a, b) => a.meta.seq - b.meta.seq);
  }

  private track(r: BlockReader): BlockReader {
    r.onIndexLoad = (reader) => {
      this.cacheOrder.push(reader);
      let total = 0;
      for (const b of this.cacheOrder) total += b.indexBytes;
      while (total > this.opts.blockCacheBytes && this.cacheOrder.length > 1) {
        const victim = this.cacheOrder.shift()!;
        if (victim === reader) continue;
        total -= victim.indexBytes;
        victim.dropIndex();
      }
    };
    return r;
  }

  // --------------------------------------------------------------------------------------------------------
  // Writing

  /** Appends `batch` (keyed by the caller's ids when `cache` is given: see Appender.appendKeyed). */
  private append(tenant: string, batch: SeriesBatch, cache: undefined): AppendStats;
  private append(tenant: string, batch: KeyedSeriesBatch, cache: HeadRefCache): AppendStats;
  private append(
    tenant: string,
    batch: SeriesBatch | KeyedSeriesBatch,
    cache: HeadRefCache | undefined,
  ): AppendStats {
    if (this.failure && !this.probeWritable()) throw this.failure;
    const stats: HeadAppendStats = {
      series: 0,
      samples: 0,
      duplicates: 0,
      tooOld: 0,
      invalid: 0,
      created: 0,
    };
    if (cache) this.head.appendKeyed(tenant, batch as KeyedSeriesBatch, cache, stats);
    else this.head.append(tenant, batch as SeriesBatch, stats);
    if (stats.samples > 0) {
      // Cheap bound on the oldest data the head may hold (read by rollup coverage).
      const ts = batch.timestamps;
      let min = this.headMinTime;
      for (let i = 0; i < batch.sampleCount; i++) if (ts[i]! < min) min = ts[i]!;
      this.headMinTime = min;
    }
    if (stats.tooOld > 0 || stats.invalid > 0) {
      this.opts.logger.warn(
        { tenant, tooOld: stats.tooOld, invalid: stats.invalid, oooWindowMs: this.opts.outOfOrderWindowMs },
        'storage: refused samples older than the out-of-order window or with invalid timestamps',
      );
    }
    return { series: stats.series, samples: stats.samples, duplicates: stats.duplicates };
  }

  activeSeries(tenant?: string): number {
    return this.head.activeSeries(tenant);
  }

  coveredPositions(): BusPositions {
    return this.covered;
  }

  /** The error that stopped writes, if any. */
  get writeFailure(): TrainwatchError | undefined {
    if (this.failure) this.probeWritable();
    return this.failure;
  }

  /**
   * While writes are stopped: at most every {@link WRITE_PROBE_INTERVAL_MS}, writes and syncs a probe file of
   * {@link WRITE_PROBE_BYTES} in the storage directory; if that works, space is back and writes resume.
   * Returns whether writes are possible now.
   */
  private probeWritable(): boolean {
    if (!this.failure) return true;
    const dir = this.opts.dir;
    const now = Date.now();
    const interval = this.opts.writeProbeIntervalMs ?? WRITE_PROBE_INTERVAL_MS;
    if (dir === undefined || this.closed || now - this.lastProbeMs < interval) return false;
    this.lastProbeMs = now;
    // Where the storage writes: the head (log, spill files) and the directory (blocks).
    for (const where of [path.join(dir, 'head'), dir]) {
      const probe = path.join(where, '.write-probe');
      try {
        const fd = openSync(probe, 'w');
        try {
          writeSync(fd, Buffer.alloc(WRITE_PROBE_BYTES));
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      } catch {
        return false;
      } finally {
        try {
          unlinkSync(probe);
        } catch {
          // Not created, or already gone.
        }
      }
    }
    this.opts.logger.warn(
      { dir },
      'storage can write again; resuming (the stopped writes are replayed from the bus)',
    );
    this.failure = undefined;
    this.snapshotNext = true;
    return true;
  }

  checkpoint(positions: BusPositions): Promise<void> {
    if (this.failure && !this.probeWritable()) return Promise.reject(this.failure);
    if (this.opts.dir === undefined) {
      this.covered = new Map(positions);
      return Promise.resolve();
    }
    // Serialize: a checkpoint asked for while one runs waits for it, then runs with its own positions.
    const run = (this.checkpointing ?? Promise.resolve()).then(() => this.checkpointNow(new Map(positions)));
    this.checkpointing = run.catch(() => {});
    return run;
  }

  private async checkpointNow(positions: Map<number, number>): Promise<void> {
    if (this.failure && !this.probeWritable()) throw this.failure;
    if (this.closed) return;
    try {
      const D = this.opts.blockDurationMs;
      const boundary = Math.floor((this.head.maxTime - Math.min(D / 2, 900_000)) / D) * D;
      const cut = Number.isFinite(boundary) && boundary > this.cutBoundary && this.headMinTime < boundary;
      if (cut) {
        await this.cutHead(boundary);
        this.cutBoundary = boundary;
      }
      const log = this.log!;
      // Records are compressed off the event loop; what they hold was taken when they were encoded.
      if (cut || !log.started || this.snapshotNext) {
        // After a cut (or at the first checkpoint of a fresh store) the log restarts from a snapshot.
        log.rotate(await compressHeadRecord(encodeHeadRecord(this.head, positions, this.cutBoundary, true)));
      } else {
        const changed = headChanged(this.head);
        const now = this.now();
        if (changed) this.lastHeadChangeMs = now;
        // Ingest paused, not merely between two scrapes: the log is compacted once, not after every scrape.
        const idle = !changed && now - this.lastHeadChangeMs >= IDLE_COMPACTION_MS;
        const delta = await compressHeadRecord(
          encodeHeadRecord(this.head, positions, this.cutBoundary, false),
        );
        // Deltas outgrew the snapshot (or ingest paused): compact the log into one snapshot of the head. Encoded
        // after the delta's compression, it may hold appends past `positions`, as the closing snapshot does:
        // the bus replays them after a crash, harmlessly (appends are idempotent, last write wins in bus order).
        if (log.compactionDue(delta.length, idle))
          log.rotate(
            await compressHeadRecord(encodeHeadRecord(this.head, positions, this.cutBoundary, true)),
          );
        // Nothing new at all (an idle store's timer): the log already says all of it; no write, no sync.
        else if (changed || !samePositions(positions, this.covered)) await log.appendDelta(delta);
      }
      this.snapshotNext = false;
      this.covered = positions;
      // Chunks sealed since the last checkpoint leave memory for the spill file; empty slab pages go back.
      this.head.spill(this.spillFile!);
      this.head.trimMemory();
    } catch (err) {
      this.fail(err as Error);
      throw this.failure;
    }
    try {
      await this.maintain();
    } catch (err) {
      this.fail(err as Error);
      throw this.failure;
    }
  }

  private fail(err: Error): void {
    if (this.failure) return;
    const code = (err as NodeJS.ErrnoException).code;
    this.failure = twError(
      Errors.unavailable,
      `storage stopped accepting writes: ${code === 'ENOSPC' ? 'the disk is full' : 'a write failed'} in ${this.opts.dir} (${err.message}). ` +
        'Nothing stored was harmed; data not yet stored stays in the bus. Free space or fix the directory: ' +
        'storage resumes by itself within seconds once it can write again.',
    );
    this.opts.logger.error({ err, dir: this.opts.dir }, this.failure.message);
  }

  // --------------------------------------------------------------------------------------------------------
  // Cutting the head into blocks

  /**
   * Moves every head sample older than `boundary` into a raw block (and its rollups). The block is written
   * asynchronously, yielding to the event loop, while the head goes on serving those samples (and taking
   * appends); the head lets go of them, and the block joins the store, in one synchronous step at the end.
   */
  private async cutHead(boundary: number): Promise<void> {
    const cut = this.head.prepareCut(boundary);
    if (cut.length === 0) return;
    const entries = cut.map((c) => ({ c, key: sortKeyOf(c.labels) }));
    entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    let minT = Number.POSITIVE_INFINITY;
    for (const { c } of entries) {
      if (c.chunks.length > 0) minT = Math.min(minT, c.chunks[0]!.minT);
      if (c.oooT && c.oooT.length > 0) minT = Math.min(minT, c.oooT[0]!);
    }
    const range = this.alignedRange(minT, boundary - 1);
    const overlaps = this.blocks.some(
      (b) => b.meta.tier === 'raw' && this.rangesOverlap(range, this.alignedRange(b.meta.minT, b.meta.maxT)),
    );
    const series = entries.map(({ c }) => ({
      labels: c.labels,
      iterator: () => headCutIterator(c.chunks, c.oooT, c.oooV),
    }));
    // Rollups only where this block alone holds the raw data of its windows.
    const tiers = overlaps ? [] : this.tiersFor(range[0], range[1]);
    const written = await this.writeRaw(series, 0, [], tiers, []);
    this.head.finishCut(cut);
    this.blocks.push(...written);
    // A fresh spill file for the new head; the old one (mostly chunks now in the block) goes away once the
    // queries that may still read it are done.
    const old = this.spillFile!;
    this.spillFile = this.newSpillFile();
    this.head.respill(this.spillFile);
    old.unlink();
    setTimeout(() => old.close(), DELETED_BLOCK_GRACE_MS).unref();
    this.sortBlocks();
    this.headMinTime = this.computeHeadMinTime();
  }

  /**
   * Writes a raw block from series given in sort order, and first the rollup blocks of the tiers `compute`
   * (computed from the same samples), so that a raw block naming a tier always has it. The raw block names
   * `compute` and `inherited` (tiers whose rollups exist already, e.g. when joining blocks that had them).
   * Returns the new blocks, rollups first; the caller adds them to the store.
   */
  private async writeRaw(
    series: readonly { labels: LabelSet; iterator: () => SampleIterator }[],
    level: number,
    sources: readonly number[],
    compute: readonly Tier[],
    inherited: readonly TierName[],
  ): Promise<BlockReader[]> {
    const rawSeq = this.nextSeq++;
    const raw = new BlockWriter(path.join(this.blocksDir, `raw-${rawSeq}.twb`));
    const tiers = [...compute].sort((a, b) => a.resolutionMs - b.resolutionMs);
    const rollups = tiers.length > 0;
    const tierWriters = tiers.map((t) => ({
      tier: t,
      seq: this.nextSeq++,
      w: undefined as BlockWriter | undefined,
    }));
    for (const tw of tierWriters)
      tw.w = new BlockWriter(path.join(this.blocksDir, `${tw.tier.name}-${tw.seq}.twb`));
    const buf = new SampleBuffer(1024);
    const out = new ByteWriter(1 << 14);
    const cols = tiers.map(() => new RollupColumns());
    const names = [...new Set([...inherited, ...tiers.map((t) => t.name)])].sort(
      (a, b) => ROLLUP_TIERS.findIndex((t) => t.name === a) - ROLLUP_TIERS.findIndex((t) => t.name === b),
    );
    const written: BlockReader[] = [];
    try {
      let since = 0;
      for (const s of series) {
        // Yield now and then: a cut of a large head takes a while and must not stall ingest or queries.
        if (++since === YIELD_EVERY_SERIES) {
          since = 0;
          await new Promise<void>((r) => setImmediate(r));
          if (this.closed) throw new Error('storage closed during a block write');
        }
        const it = s.iterator();
        buf.n = 0;
        while (it.next()) {
          buf.ensure(buf.n + 1);
          buf.t[buf.n] = it.t;
          buf.v[buf.n] = it.v;
          buf.n++;
        }
        if (buf.n === 0) continue;
        const labelNames = Object.keys(s.labels).sort();
        const values = labelNames.map((n) => s.labels[n]!);
        raw.addSeries(labelNames, values, encodeColumn(buf.t, buf.v, buf.n, 0, out), buf.n);
        if (rollups) {
          for (let i = 0; i < tiers.length; i++) {
            const c = cols[i]!;
            c.reset();
            // The finest from the samples; each coarser one from the previous tier's windows when they nest.
            if (i > 0 && tiers[i]!.resolutionMs % tiers[i - 1]!.resolutionMs === 0)
              coarsen(cols[i - 1]!, tiers[i]!.resolutionMs, c);
            else
              aggregateSamples(
                buf.t,
                buf.v,
                buf.n,
                tiers[i]!.resolutionMs,
                Number.NEGATIVE_INFINITY,
                Number.POSITIVE_INFINITY,
                c,
              );
            if (c.n > 0) tierWriters[i]!.w!.addSeries(labelNames, values, encodeRollup(c, out), c.n);
          }
        }
      }
      // Rollups first: a raw block that says it is rolled up always has its rollups on disk.
      for (const tw of tierWriters) {
        if (tw.w!.seriesCount === 0) tw.w!.abort();
        else
          written.push(
            this.track(
              new BlockReader(
                finishPath(tw.w!, {
                  tier: tw.tier.name,
                  seq: tw.seq,
                  rolledUp: true,
                  level,
                  sources: [],
                }),
              ),
            ),
          );
      }
      if (raw.seriesCount === 0) raw.abort();
      else
        written.push(
          this.track(
            new BlockReader(
              finishPath(raw, {
                tier: 'raw',
                seq: rawSeq,
                rolledUp: names.length > 0,
                rollups: names,
                level,
                sources,
              }),
            ),
          ),
        );
      if (this.opts.fsync) syncDirSync(this.blocksDir);
      return written;
    } catch (err) {
      raw.abort();
      for (const tw of tierWriters) tw.w?.abort();
      for (const r of written) r.close();
      throw err;
    }
  }

  private alignedRange(minT: number, maxT: number): [number, number] {
    const D = this.opts.blockDurationMs;
    return [Math.floor(minT / D) * D, Math.floor(maxT / D) * D + D - 1];
  }

  private rangesOverlap(a: [number, number], b: [number, number]): boolean {
    return a[0] <= b[1] && b[0] <= a[1];
  }

  private computeHeadMinTime(): number {
    let min = Number.POSITIVE_INFINITY;
    for (let ref = 0; ref < this.head.nextRef; ref++) {
      if (!this.head.isAlive(ref)) continue;
      const [lo] = this.head.timeRange(ref);
      if (lo < min) min = lo;
    }
    return min;
  }

  // --------------------------------------------------------------------------------------------------------
  // Maintenance: compaction, retention

  /** One pass: retention, then at most one compaction (so that a checkpoint never waits long). */
  private async maintain(): Promise<void> {
    this.applyRetention();
    await this.compactOnce();
    if (this.opts.onBlocks) await this.opts.onBlocks(this.blocks);
  }

  private applyRetention(): void {
    const now = this.now();
    const doomed = this.blocks.filter((b) => {
      const keep = this.opts.retentionMs[b.meta.tier];
      return keep > 0 && b.meta.maxT < now - keep;
    });
    if (doomed.length > 0) {
      this.removeBlocks(doomed);
      this.opts.logger.info(
        { blocks: doomed.map((b) => path.basename(b.path)) },
        'storage: retention deleted blocks',
      );
    }
  }

  private removeBlocks(doomed: readonly BlockReader[]): void {
    const set = new Set(doomed);
    this.blocks = this.blocks.filter((b) => !set.has(b));
    for (const b of doomed) {
      unlinkSync(b.path);
      // Queries that selected this block may still read it; the open descriptor keeps the data readable.
      setTimeout(() => b.close(), DELETED_BLOCK_GRACE_MS).unref();
    }
  }

  /** Plans and runs one compaction; returns whether one ran. */
  async compactOnce(): Promise<boolean> {
    for (const tier of ['raw', ...this.tiers.map((t) => t.name)] as TierName[]) {
      const blocks = this.blocks.filter((b) => b.meta.tier === tier);
      // 1. Overlapping blocks (late data, or a crash between cut and log rotation): merge them all.
      const group = this.overlapGroup(blocks);
      if (group) {
        await this.compact(tier, group, Math.max(...group.map((b) => b.meta.level)));
        return true;
      }
      // 2. Adjacent blocks inside one aligned range of the next level, once the head has moved past it.
      const D = this.opts.blockDurationMs;
      for (let level = 1; level <= this.maxLevel[tier]; level++) {
        const range = D * LEVEL_FACTORS[level]!;
        const byWindow = new Map<number, BlockReader[]>();
        for (const b of blocks) {
          if (b.meta.level >= level) continue;
          const w = Math.floor(b.meta.minT / range) * range;
          if (b.meta.maxT >= w + range) continue;
          if (w + range > this.cutBoundary) continue;
          const list = byWindow.get(w) ?? [];
          list.push(b);
          byWindow.set(w, list);
        }
        for (const [w, list] of byWindow) {
          // Two or more to join; or one raw block that tiers new at this level can be computed for.
          if (list.length < 2 && !(tier === 'raw' && this.missingTiers(list[0]!, w, w + range - 1))) continue;
          await this.compact(tier, list, level, [w, w + range - 1]);
          return true;
        }
      }
    }
    return false;
  }

  /** Whether raw block `b`, alone in the level window [lo, hi], lacks tiers that window could carry. */
  private missingTiers(b: BlockReader, lo: number, hi: number): boolean {
    const has = this.tiersOf(b);
    return this.tiersFor(lo, hi).some((t) => !has.has(t.name));
  }

  private overlapGroup(blocks: readonly BlockReader[]): BlockReader[] | undefined {
    const sorted = [...blocks].sort((a, b) => a.meta.minT - b.meta.minT);
    for (let i = 0; i < sorted.length; i++) {
      let range = this.alignedRange(sorted[i]!.meta.minT, sorted[i]!.meta.maxT);
      const group = [sorted[i]!];
      for (let j = i + 1; j < sorted.length; j++) {
        const r = this.alignedRange(sorted[j]!.meta.minT, sorted[j]!.meta.maxT);
        if (!this.rangesOverlap(range, r)) continue;
        group.push(sorted[j]!);
        range = [Math.min(range[0], r[0]), Math.max(range[1], r[1])];
      }
      if (group.length > 1) return group;
    }
    return undefined;
  }

  /**
   * Merges `inputs` (one tier) into one block at `level`, then deletes them. `window`: the aligned range of
   * the level they are joined into (absent when merging overlapping blocks).
   */
  private async compact(
    tier: TierName,
    inputs: BlockReader[],
    level: number,
    window?: [number, number],
  ): Promise<void> {
    inputs.sort((a, b) => a.meta.seq - b.meta.seq);
    const started = Date.now();
    // Series of every input, merged in sort order.
    const byKey = new Map<string, { labels: LabelSet; parts: { block: BlockReader; id: number }[] }>();
    for (const b of inputs) {
      const idx = b.index();
      for (let id = 0; id < idx.seriesCount; id++) {
        const { names, values } = idx.labels(id);
        const key = seriesSortKey(names, values);
        let e = byKey.get(key);
        if (!e) {
          e = { labels: idx.labelSet(id), parts: [] };
          byKey.set(key, e);
        }
        e.parts.push({ block: b, id });
      }
    }
    const keys = [...byKey.keys()].sort();
    const sources = inputs.map((b) => b.meta.seq);
    if (tier === 'raw') {
      // Rollups are (re)computed only where no other raw block holds data of the same windows.
      const merged = this.alignedRange(
        Math.min(...inputs.map((b) => b.meta.minT)),
        Math.max(...inputs.map((b) => b.meta.maxT)),
      );
      const range = window ?? merged;
      const others = this.blocks.filter((b) => b.meta.tier === 'raw' && !inputs.includes(b));
      const clear = !others.some((b) =>
        this.rangesOverlap(range, this.alignedRange(b.meta.minT, b.meta.maxT)),
      );
      const joining = window !== undefined && this.overlapGroup(inputs) === undefined;
      // Joining adjacent blocks keeps the tiers every one of them has (their rollups exist) and computes the
      // tiers the joined range newly allows (1 h windows once 10-min blocks make an hour); merging overlapping
      // ones recomputes every tier of the merged range.
      let inherited: TierName[] = [];
      if (joining) {
        const sets = inputs.map((b) => this.tiersOf(b));
        inherited = this.tiers.map((t) => t.name).filter((n) => sets.every((x) => x.has(n)));
      }
      const compute = clear
        ? this.tiersFor(range[0], range[1]).filter((t) => !inherited.includes(t.name))
        : [];
      const series = keys.map((k) => {
        const e = byKey.get(k)!;
        return {
          labels: e.labels,
          iterator: () =>
            new MergeIterator(e.parts.map((p) => new BlockIterator(p.block, p.id, 0, -Infinity, Infinity))),
        };
      });
      // Yield once so the event loop breathes between planning and writing.
      await new Promise<void>((r) => setImmediate(r));
      const written = await this.writeRaw(series, level, sources, compute, inherited);
      this.blocks.push(...written);
    } else {
      const seq = this.nextSeq++;
      const w = new BlockWriter(path.join(this.blocksDir, `${tier}-${seq}.twb`));
      const out = new ByteWriter(1 << 14);
      const cols = new RollupColumns();
      try {
        for (const k of keys) {
          const e = byKey.get(k)!;
          const its = Array.from(
            { length: AGG_COLUMNS },
            (_, c) =>
              new MergeIterator(e.parts.map((p) => new BlockIterator(p.block, p.id, c, -Infinity, Infinity))),
          );
          cols.reset();
          while (its.every((it) => it.next()))
            cols.push(its[0]!.t, its[0]!.v, its[1]!.v, its[2]!.v, its[3]!.v, its[4]!.v);
          if (cols.n === 0) continue;
          const names = Object.keys(e.labels).sort();
          w.addSeries(
            names,
            names.map((n) => e.labels[n]!),
            encodeRollup(cols, out),
            cols.n,
          );
        }
        if (w.seriesCount === 0) w.abort();
        else
          this.blocks.push(
            this.track(new BlockReader(finishPath(w, { tier, seq, rolledUp: true, level, sources }))),
          );
        if (this.opts.fsync) syncDirSync(this.blocksDir);
      } catch (err) {
        w.abort();
        throw err;
      }
    }
    this.sortBlocks();
    this.removeBlocks(inputs);
    this.opts.logger.info(
      { tier, inputs: sources, level, ms: Date.now() - started },
      'storage: compacted blocks',
    );
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

  private scoped(tenant: string | null, matchers: readonly LabelMatcher[]): readonly LabelMatcher[] {
    return tenant === null ? matchers : [...matchers, new Matcher('=', WellKnownLabel.tenant, tenant)];
  }

  private gather(
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

  private rawIterator(s: SeriesSources, lo: number, hi: number): SampleIterator {
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
  private rollupCoverageEnd(tier: Tier, withHead = true): number {
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

  private select(
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
  private rollupColumns(
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
  private scopedIndexes(
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

  private labelNames(
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

  private labelValues(
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

  async close(): Promise<void> {
    if (this.closed) return;
    await this.checkpointing;
    this.closed = true;
    if (this.log?.started && this.log.hasDeltas && !this.failure) {
      // Leave one compact snapshot instead of a chain of deltas: smaller on disk, faster to open. It covers
      // what the last checkpoint covered (appends after it are replayed from the bus, harmlessly).
      try {
        this.log.rotate(
          compressHeadRecordSync(encodeHeadRecord(this.head, this.covered, this.cutBoundary, true)),
        );
      } catch (err) {
        this.opts.logger.warn(
          { err },
          'storage: could not write the closing snapshot; the log is complete without it',
        );
      }
    }
    this.log?.close();
    this.spillFile?.close();
    this.spillFile?.unlink();
    for (const b of this.blocks) b.close();
    this.blocks = [];
  }
}

function samePositions(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [p, o] of a) if (b.get(p) !== o) return false;
  return true;
}

function finishPath(
  w: BlockWriter,
  meta: Omit<BlockMeta, 'series' | 'samples' | 'chunks' | 'minT' | 'maxT'>,
): string {
  w.finish(meta);
  return w.path;
}

function sortKeyOf(labels: LabelSet): string {
  const names = Object.keys(labels).sort();
  return seriesSortKey(
    names,
    names.map((n) => labels[n]!),
  );
}

/** Iterator over a cut's chunks and out-of-order samples (the out-of-order ones win ties). */
function headCutIterator(chunks: HeadChunk[], oooT?: Float64Array, oooV?: Float64Array): SampleIterator {
  return new HeadIterator(
    { sealed: chunks, open: undefined, oooT, oooV },
    Number.NEGATIVE_INFINITY,
    Number.POSITIVE_INFINITY,
  );
}

/** Encodes one column of samples into block chunks of at most BLOCK_CHUNK_SAMPLES. */
function encodeColumn(
  ts: Float64Array,
  vs: Float64Array,
  n: number,
  column: number,
  out: ByteWriter,
): ChunkRef[] {
  const chunks: ChunkRef[] = [];
  for (let from = 0; from < n; from += BLOCK_CHUNK_SAMPLES) {
    const to = Math.min(n, from + BLOCK_CHUNK_SAMPLES);
    out.reset();
    encodeChunk(ts, vs, from, to, out);
    chunks.push({ column, minT: ts[from]!, maxT: ts[to - 1]!, bytes: out.toBytes() });
  }
  return chunks;
}

function encodeRollup(c: RollupColumns, out: ByteWriter): ChunkRef[] {
  const chunks: ChunkRef[] = [];
  for (let col = 0; col < AGG_COLUMNS; col++) chunks.push(...encodeColumn(c.t, c.cols[col]!, c.n, col, out));
  return chunks;
}

function renameAside(file: string): void {
  try {
    renameSync(file, `${file}.corrupt`);
  } catch {
    // Nothing more to do: the block is left out of the store either way.
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

const noop = () => {};
const silentLogger = {
  info: noop,
  warn: noop,
  error: noop,
  debug: noop,
  child: () => silentLogger,
} as unknown as Logger;
