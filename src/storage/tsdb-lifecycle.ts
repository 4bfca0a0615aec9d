/**
 * trainwatch's embedded time-series database behind the {@link Storage} interface.
 *
 * One class over three files: this one (state, opening a data directory, appends, checkpoints, closing),
 * tsdb-compact.ts (cutting the head into blocks, compaction, retention) and tsdb.ts (queries). Shared
 * constants and helpers live here.
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
import type { LabelMatcher } from '../model/labels.js';
import { BlockReader, type TierName } from './block.js';
import { Head, HeadRefCache, newHeadAppendStats } from './head.js';
import {
  compressHeadRecord,
  compressHeadRecordSync,
  encodeHeadRecord,
  HeadLog,
  headChanged,
  type RecoveredHead,
} from './head-log.js';
import { ROLLUP_TIERS, type Tier } from './rollup.js';
import { SpillFile } from './spill.js';
import type {
  Appender,
  AppendStats,
  BusPositions,
  KeyedSeriesBatch,
  SelectedSeries,
  SelectHints,
} from './storage.js';

/** The embedded TSDB's reads as they really are: synchronous, from memory and local files. */
export interface LocalQuerier {
  select(matchers: readonly LabelMatcher[], hints?: SelectHints): SelectedSeries[];
  labelNames(matchers?: readonly LabelMatcher[]): string[];
  labelValues(name: string, matchers?: readonly LabelMatcher[]): string[];
}

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

/** Compaction joins adjacent blocks into aligned ranges of block duration × these factors, per tier. */
export const LEVEL_FACTORS = [1, 6, 36, 216, 1296, 7776, 46656];
/** Compaction stops joining a tier's blocks at about this range (36 h raw and 10 s, 9 days 1 min, 54 days 1 h). */
export const MAX_BLOCK_RANGE_MS: Record<TierName, number> = {
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
export const IDLE_COMPACTION_MS = 30_000;

/** While writes are stopped, how often the storage tries whether it can write again. */
export const WRITE_PROBE_INTERVAL_MS = 2000;
/** Size of the probe write: enough that a disk with a few bytes free does not count as writable. */
export const WRITE_PROBE_BYTES = 1 << 20;

export function samePositions(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [p, o] of a) if (b.get(p) !== o) return false;
  return true;
}

export function renameAside(file: string): void {
  try {
    renameSync(file, `${file}.corrupt`);
  } catch {
    // Nothing more to do: the block is left out of the store either way.
  }
}

export abstract class TsdbLifecycle {
  readonly head: Head;
  protected blocks: BlockReader[] = [];
  protected covered = new Map<number, number>();
  protected cutBoundary = Number.NEGATIVE_INFINITY;
  protected nextSeq = 1;
  protected failure: TrainwatchError | undefined;
  /** When the directory was last probed while writes are stopped. */
  protected lastProbeMs = Number.NEGATIVE_INFINITY;
  /** After a failure: the next checkpoint writes a snapshot into a new head-log file. */
  protected snapshotNext = false;
  protected log: HeadLog | undefined;
  /** Where sealed head chunks wait for the next cut (spill.ts); renewed at every cut. */
  protected spillFile: SpillFile | undefined;
  protected spillSeq = 0;
  protected checkpointing: Promise<void> | undefined;
  protected readonly cacheOrder: BlockReader[] = [];
  protected readonly now: () => number;
  /** When a checkpoint last found the head changed (wall clock): how long ingest has paused. */
  protected lastHeadChangeMs = Number.NEGATIVE_INFINITY;
  /** Oldest sample time appended since the last cut (the head may hold data this old). */
  protected headMinTime = Number.POSITIVE_INFINITY;
  protected closed = false;
  /** What the last open recovered from the head log (tests, diagnostics). */
  recovery: RecoveredHead | undefined;
  readonly appender: Appender;
  /**
   * Rollup tiers this store keeps: those whose windows fit the aligned ranges of some compaction level
   * (block duration × a level factor), so that some raw block can carry them without a window straddling it.
   */
  readonly tiers: readonly Tier[];
  /** The most a raw block of each tier is joined to, as a compaction level. */
  protected readonly maxLevel: Record<TierName, number>;
  /** Raw blocks of version 1 that say rolledUp without naming tiers: the tiers found for them at open. */
  protected readonly legacyTiers = new Map<BlockReader, ReadonlySet<TierName>>();

  protected constructor(protected readonly opts: TsdbOptions) {
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
  protected tiersFor(lo: number, hi: number): Tier[] {
    return this.tiers.filter((t) => lo % t.resolutionMs === 0 && (hi + 1 - lo) % t.resolutionMs === 0);
  }

  /** Tiers whose rollup blocks hold this raw block's windows. */
  tiersOf(b: BlockReader): ReadonlySet<TierName> {
    if (b.meta.rollups) return new Set(b.meta.rollups);
    return this.legacyTiers.get(b) ?? new Set();
  }

  protected get blocksDir(): string {
    return path.join(this.opts.dir!, 'blocks');
  }

  protected openDir(dir: string): void {
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

  protected newSpillFile(): SpillFile {
    return new SpillFile(path.join(this.opts.dir!, 'head', `spill-${++this.spillSeq}.bin`));
  }

  protected loadBlocks(): void {
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

  protected sortBlocks(): void {
    this.blocks.sort((a, b) => a.meta.seq - b.meta.seq);
  }

  protected track(r: BlockReader): BlockReader {
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
  protected append(tenant: string, batch: SeriesBatch, cache: undefined): AppendStats;
  protected append(tenant: string, batch: KeyedSeriesBatch, cache: HeadRefCache): AppendStats;
  protected append(
    tenant: string,
    batch: SeriesBatch | KeyedSeriesBatch,
    cache: HeadRefCache | undefined,
  ): AppendStats {
    if (this.failure && !this.probeWritable()) throw this.failure;
    const stats = newHeadAppendStats();
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
  protected probeWritable(): boolean {
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

  protected async checkpointNow(positions: Map<number, number>): Promise<void> {
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

  protected fail(err: Error): void {
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

  /** Oldest sample time the head holds (+Infinity when empty). */
  protected computeHeadMinTime(): number {
    let min = Number.POSITIVE_INFINITY;
    for (let ref = 0; ref < this.head.nextRef; ref++) {
      if (!this.head.isAlive(ref)) continue;
      const [lo] = this.head.timeRange(ref);
      if (lo < min) min = lo;
    }
    return min;
  }

  /** Cuts the head at `boundary` into a block (tsdb-compact.ts). */
  protected abstract cutHead(boundary: number): Promise<void>;
  /** Compaction and retention (tsdb-compact.ts). */
  protected abstract maintain(): Promise<void>;
}
