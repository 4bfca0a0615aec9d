/**
 * The embedded bus: one append-only log per partition, in segment files under `<data-dir>/bus/`.
 * Format (docs/durability.md):
 *
 * ```
 * segment file  <base offset, 20 digits>.seg
 * ┌──────────────────────────┬────────────────────────────────────────────────────────────────┐
 * │ "TWLG" │ version u32le=1 │ record │ record │ ...                                           │
 * └──────────────────────────┴────────────────────────────────────────────────────────────────┘
 * record  ┌──────────────┬──────────────────────────┬────────────────┐
 *         │ length u32le │ CRC-32 of payload u32le  │ payload        │
 *         └──────────────┴──────────────────────────┴────────────────┘
 * ```
 * A record's offset is the segment's base offset plus its index in the segment.
 *
 * Durability: appends are queued and written by one flush loop (group commit): every record queued while a
 * flush is in progress is written by the next flush with one `writev` per partition, followed by one
 * `fdatasync` per file touched. `append` resolves only after that (policy `always`, the default). Readers
 * never see bytes that are not yet durable.
 *
 * Recovery at open (issue 16, item 5): a torn tail of the last segment (a write cut by a crash, never
 * acknowledged) is cut off. Any other damage loses only what is damaged: a record whose checksum does not
 * match is skipped by resynchronising on the next valid header and checksum, keeping its offset (a hole) and
 * every good record after it; a bad file header is repaired and the records behind it scanned; a segment
 * missing between two others leaves a gap in the offsets. The end offset is never below any group's
 * committed offset, so no offset a consumer has passed is ever handed out again. Every loss is logged as an
 * error and reported by {@link DiskLogBus.recoveryLosses} (a self-metric and `/readyz` show it).
 */
import { constants as fsConstants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from 'pino';
import { Errors, twError } from '../model/errors.js';
import { syncDir } from '../model/fs.js';
import {
  type AppendResult,
  type Bus,
  type BusEntry,
  type GroupMember,
  hashPartitionKey,
  type RebalanceListener,
} from './bus.js';
import { LocalGroupCoordinator, type LocalLog } from './local-group.js';

export type FsyncPolicy = 'always' | 'interval' | 'never';

export interface DiskLogOptions {
  readonly dir: string;
  readonly partitions: number;
  /** A segment is closed and a new one started once it reaches this size. */
  readonly segmentBytes: number;
  /**
   * A commit that covers at least this many bytes of the active segment closes it (a new one is started
   * at the next write), so that the covered bytes can be deleted instead of waiting for the segment to fill;
   * a commit that covers the whole active segment closes it and deletes it at once. Rolls happen only at
   * commits (one per checkpoint), so this bounds the bus's covered bytes without making segments tiny.
   * Default {@link defaultDiskLogOptions}.rollCoveredBytes.
   */
  readonly rollCoveredBytes?: number;
  /**
   * `always`: fdatasync before acknowledging (group commit; safe against power loss).
   * `interval`: acknowledge after write(2), fdatasync every `fsyncIntervalMs` (survives a process crash,
   * may lose the last interval on power loss). `never`: leave it to the OS (tests and benchmarks only).
   */
  readonly fsync: FsyncPolicy;
  readonly fsyncIntervalMs: number;
  /** Appends are refused with a retryable error while more than this many bytes wait to be written. */
  readonly maxQueuedBytes: number;
  readonly logger: Logger;
}

export const defaultDiskLogOptions = {
  partitions: 8,
  segmentBytes: 64 << 20,
  rollCoveredBytes: 1 << 20,
  fsync: 'always' as FsyncPolicy,
  fsyncIntervalMs: 200,
  maxQueuedBytes: 256 << 20,
};

const FILE_MAGIC = Buffer.from('TWLG');
const FILE_VERSION = 1;
const FILE_HEADER_BYTES = 8;
const RECORD_HEADER_BYTES = 8;
/** Largest record accepted; bounds the read buffer and protects against a corrupt length field. */
const MAX_RECORD_BYTES = 256 << 20;
/** One sparse-index entry per this many bytes of a segment. */
const INDEX_INTERVAL_BYTES = 64 << 10;
const READ_CHUNK_BYTES = 1 << 20;

interface PendingAppend {
  readonly record: Uint8Array;
  readonly resolve: (r: AppendResult) => void;
  readonly reject: (e: Error) => void;
}

class Segment {
  /** Bytes of durable records plus the file header. */
  size = FILE_HEADER_BYTES;
  count = 0;
  /** Sparse index: record offsets (relative to base) and their byte positions. */
  readonly indexOffsets: number[] = [0];
  readonly indexPositions: number[] = [FILE_HEADER_BYTES];
  private lastIndexedPos = FILE_HEADER_BYTES;
  handle: FileHandle | undefined;
  private opening: Promise<FileHandle> | undefined;
  /**
   * Damaged records found at open, by relative offset: the byte position where the next record starts.
   * Readers skip them (their length field may be the damaged part). Undefined while there are none.
   */
  holes: Map<number, number> | undefined;

  constructor(
    readonly base: number,
    readonly file: string,
  ) {}

  get end(): number {
    return this.base + this.count;
  }

  /** Called for each record appended or found at open, in order. */
  noteRecord(position: number, length: number): void {
    if (position - this.lastIndexedPos >= INDEX_INTERVAL_BYTES) {
      this.indexOffsets.push(this.count);
      this.indexPositions.push(position);
      this.lastIndexedPos = position;
    }
    this.count++;
    this.size = position + RECORD_HEADER_BYTES + length;
  }

  /** A damaged stretch `[position, end)` found at open: it keeps one offset, and readers skip it. */
  noteHole(position: number, end: number): void {
    this.holes ??= new Map();
    this.holes.set(this.count, end);
    // A stretch shorter than a record header is possible (resynchronised a few bytes on): size = end still.
    this.noteRecord(position, end - position - RECORD_HEADER_BYTES);
  }

  /** The byte position of the indexed record at or before relative offset `rel`, and that record's offset. */
  seekHint(rel: number): [number, number] {
    let lo = 0;
    let hi = this.indexOffsets.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.indexOffsets[mid]! <= rel) lo = mid;
      else hi = mid - 1;
    }
    return [this.indexOffsets[lo]!, this.indexPositions[lo]!];
  }

  /**
   * The segment's one file handle, shared by the writer and readers. Concurrent first calls share one open
   * (a second handle opened by a racing reader would otherwise be dropped unclosed).
   */
  open(): Promise<FileHandle> {
    if (this.handle) return Promise.resolve(this.handle);
    this.opening ??= fsp.open(this.file, fsConstants.O_RDWR).then((h) => {
      this.handle = h;
      this.opening = undefined;
      return h;
    });
    return this.opening;
  }

  async close(): Promise<void> {
    if (this.opening) await this.opening.catch(() => undefined);
    const h = this.handle;
    this.handle = undefined;
    await h?.close();
  }
}

interface Waiter {
  readonly offset: number;
  readonly resolve: () => void;
  readonly timer: NodeJS.Timeout;
}

class Partition {
  segments: Segment[] = [];
  queue: PendingAppend[] = [];
  waiters: Waiter[] = [];
  readonly committed = new Map<string, number>();
  /**
   * Set by a commit that covers enough of the active segment: the flush loop closes the segment at its next
   * round (it is the only writer, so a segment never changes under a write) and resolves this.
   */
  rollRequest: { done: Promise<void>; resolve: () => void } | undefined;
  /** Where the last sequential read ended: lets the next read of the following offset skip the index. */
  readHint: { offset: number; segment: Segment; position: number } | undefined;

  constructor(
    readonly id: number,
    readonly dir: string,
  ) {}

  get active(): Segment {
    return this.segments[this.segments.length - 1]!;
  }

  get end(): number {
    return this.active.end;
  }

  get start(): number {
    return this.segments[0]!.base;
  }
}

function segmentName(base: number): string {
  return `${String(base).padStart(20, '0')}.seg`;
}

export class DiskLogBus implements Bus, LocalLog {
  readonly partitionCount: number;
  private readonly parts: Partition[] = [];
  private queuedBytes = 0;
  private flushing: Promise<void> | undefined;
  private closed = false;
  private fsyncTimer: NodeJS.Timeout | undefined;
  private unsyncedHandles = new Set<FileHandle>();
  /** Consumer groups over this log (Bus.join). */
  private readonly groups: LocalGroupCoordinator;
  /** What recovery at open lost: records (at least; a gap of unknown size counts 1) and why. */
  private readonly losses = { records: 0, problems: [] as string[] };

  private constructor(private readonly opts: DiskLogOptions) {
    this.partitionCount = opts.partitions;
    this.groups = new LocalGroupCoordinator(this, opts.logger);
  }

  join(group: string, listener: RebalanceListener): Promise<GroupMember> {
    if (this.closed) return Promise.reject(twError(Errors.unavailable, 'the bus is shutting down', 1));
    return this.groups.join(group, listener);
  }

  /** Opens (or creates) the log in `opts.dir`, recovering each partition's segments. */
  static async open(opts: DiskLogOptions): Promise<DiskLogBus> {
    const bus = new DiskLogBus(opts);
    await fsp.mkdir(opts.dir, { recursive: true });
    await bus.checkPartitionCount();
    for (let p = 0; p < opts.partitions; p++) {
      const part = new Partition(p, path.join(opts.dir, `p-${String(p).padStart(3, '0')}`));
      await bus.recover(part);
      bus.parts.push(part);
    }
    if (opts.fsync === 'interval') {
      bus.fsyncTimer = setInterval(() => void bus.syncUnsynced(), opts.fsyncIntervalMs);
      bus.fsyncTimer.unref();
    }
    return bus;
  }

  partitionOf(key: string): number {
    return hashPartitionKey(key) % this.partitionCount;
  }

  append(key: string, record: Uint8Array, signal?: AbortSignal): Promise<AppendResult> {
    // Once queued, the record is written whatever the signal says: the abort only stops what has not started.
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.closed) return Promise.reject(twError(Errors.unavailable, 'the bus is shutting down', 1));
    if (record.length > MAX_RECORD_BYTES) {
      return Promise.reject(
        twError(Errors.payloadTooLarge, `bus record of ${record.length} bytes exceeds ${MAX_RECORD_BYTES}`),
      );
    }
    if (this.queuedBytes + record.length > this.opts.maxQueuedBytes) {
      return Promise.reject(
        twError(
          Errors.unavailable,
          `the bus write queue is full (${this.queuedBytes} bytes waiting for disk); retry later`,
          1,
        ),
      );
    }
    const part = this.parts[this.partitionOf(key)]!;
    this.queuedBytes += record.length;
    const done = new Promise<AppendResult>((resolve, reject) => part.queue.push({ record, resolve, reject }));
    this.scheduleFlush();
    return done;
  }

  async read(partition: number, fromOffset: number, maxBytes: number): Promise<BusEntry[]> {
    const part = this.partition(partition);
    const out: BusEntry[] = [];
    let offset = Math.max(fromOffset, part.start);
    let budget = maxBytes;
    while (budget > 0 && offset < part.end) {
      const idx = this.segmentIndexFor(part, offset);
      const seg = part.segments[idx]!;
      if (offset < seg.base) offset = seg.base;
      if (offset >= seg.end) {
        // Past this segment's records: a gap left by a segment cut short at open. Continue at the next one.
        const next = part.segments[idx + 1];
        if (!next) break;
        offset = next.base;
        continue;
      }
      let position: number;
      let at: number;
      const hint = part.readHint;
      if (hint && hint.segment === seg && hint.offset === offset) {
        position = hint.position;
        at = offset;
      } else {
        const [rel, pos] = seg.seekHint(offset - seg.base);
        at = seg.base + rel;
        position = pos;
      }
      const handle = await seg.open();
      const chunkLen = Math.min(
        Math.max(READ_CHUNK_BYTES, Math.min(budget, MAX_RECORD_BYTES) + RECORD_HEADER_BYTES),
        seg.size - position,
      );
      const chunk = Buffer.allocUnsafe(chunkLen);
      const { bytesRead } = await handle.read(chunk, 0, chunkLen, position);
      let p = 0;
      while (at < seg.end) {
        const holeEnd = seg.holes?.get(at - seg.base);
        if (holeEnd !== undefined) {
          // A damaged record found at open: its offset stays taken, its bytes are never handed out.
          p = holeEnd - position;
          at++;
          if (p > bytesRead) break;
          continue;
        }
        if (p + RECORD_HEADER_BYTES > bytesRead) break;
        const len = chunk.readUInt32LE(p);
        if (p + RECORD_HEADER_BYTES + len > bytesRead) {
          if (p === 0) {
            // A record larger than the chunk: read exactly it.
            const big = Buffer.allocUnsafe(RECORD_HEADER_BYTES + len);
            await handle.read(big, 0, big.length, position);
            if (at >= offset) {
              out.push({ partition, offset: at, record: big.subarray(RECORD_HEADER_BYTES) });
              budget -= len;
            }
            p = big.length;
            at++;
          }
          break;
        }
        if (at >= offset) {
          out.push({
            partition,
            offset: at,
            record: chunk.subarray(p + RECORD_HEADER_BYTES, p + RECORD_HEADER_BYTES + len),
          });
          budget -= len;
        }
        p += RECORD_HEADER_BYTES + len;
        at++;
        if (budget <= 0) break;
      }
      part.readHint = { offset: at, segment: seg, position: position + p };
      offset = at;
      if (p === 0) break; // nothing parsed: stop rather than spin
    }
    return out;
  }

  waitFor(partition: number, offset: number, timeoutMs: number): Promise<void> {
    const part = this.partition(partition);
    if (offset < part.end || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter: Waiter = {
        offset,
        resolve,
        timer: setTimeout(() => {
          part.waiters = part.waiters.filter((w) => w !== waiter);
          resolve();
        }, timeoutMs),
      };
      part.waiters.push(waiter);
    });
  }

  endOffset(partition: number): number {
    return this.partition(partition).end;
  }

  startOffset(partition: number): number {
    return this.partition(partition).start;
  }

  async commit(group: string, partition: number, offset: number): Promise<void> {
    if (!/^[a-z0-9_-]+$/.test(group)) throw new Error(`invalid consumer group name ${JSON.stringify(group)}`);
    const part = this.partition(partition);
    if ((part.committed.get(group) ?? 0) === offset) return;
    const file = path.join(part.dir, `committed-${group}`);
    const tmp = `${file}.tmp`;
    await fsp.writeFile(tmp, `${offset}\n`);
    const h = await fsp.open(tmp, 'r');
    await h.datasync();
    await h.close();
    await fsp.rename(tmp, file);
    part.committed.set(group, offset);
  }

  committed(group: string, partition: number): number {
    return this.partition(partition).committed.get(group) ?? 0;
  }

  /**
   * Deletes whole segments ending at or before `offset` (every group committed past them). When the
   * commit covers the whole active segment, or at least `rollCoveredBytes` of it, the active segment is
   * closed first (by the flush loop, between two writes), so that what is covered does not stay on disk
   * until the segment fills: with nothing written since the commit, the bus then holds no record at all.
   */
  async truncateBefore(partition: number, offset: number): Promise<void> {
    const part = this.partition(partition);
    const active = part.active;
    if (!this.closed && active.count > 0 && offset > active.base) {
      const rollAt = this.opts.rollCoveredBytes ?? defaultDiskLogOptions.rollCoveredBytes;
      // Bytes of the active segment below `offset`, from the sparse index (short by < one index interval).
      const covered = offset >= active.end ? active.size : active.seekHint(offset - active.base)[1];
      if (offset >= active.end || covered - FILE_HEADER_BYTES >= rollAt) await this.requestRoll(part);
    }
    while (part.segments.length > 1 && part.segments[0]!.end <= offset) {
      const seg = part.segments.shift()!;
      if (part.readHint?.segment === seg) part.readHint = undefined;
      await seg.close();
      await fsp.rm(seg.file, { force: true });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.groups.leaveAll();
    this.closed = true;
    if (this.fsyncTimer) clearInterval(this.fsyncTimer);
    while (this.flushing) await this.flushing;
    await this.syncUnsynced();
    for (const part of this.parts) {
      for (const w of part.waiters) {
        clearTimeout(w.timer);
        w.resolve();
      }
      part.waiters = [];
      for (const seg of part.segments) await seg.close();
    }
  }

  /**
   * Records lost to damage found at open, and one line per problem (empty when the log was intact). Exported
   * as `trainwatch_bus_corrupt_records_total` and shown by `/readyz`.
   */
  recoveryLosses(): { readonly records: number; readonly problems: readonly string[] } {
    return this.losses;
  }

  /** Bytes waiting to be written; exported as a self-metric. */
  get pendingBytes(): number {
    return this.queuedBytes;
  }

  // -------------------------------------------------------------------------------------------------------

  private partition(p: number): Partition {
    const part = this.parts[p];
    if (!part) throw new RangeError(`partition ${p} does not exist (the bus has ${this.partitionCount})`);
    return part;
  }

  private segmentIndexFor(part: Partition, offset: number): number {
    const segs = part.segments;
    let lo = 0;
    let hi = segs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (segs[mid]!.base <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private scheduleFlush(): void {
    if (this.flushing) return;
    this.flushing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flushLoop());
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.parts.some((p) => p.queue.length > 0 || p.rollRequest)) await this.flushOnce();
    } finally {
      this.flushing = undefined;
    }
  }

  /** Writes everything queued now, syncs, then acknowledges. Records queued meanwhile wait for the next round. */
  private async flushOnce(): Promise<void> {
    const rounds: { part: Partition; batch: PendingAppend[]; seg: Segment; handle: FileHandle }[] = [];
    try {
      await Promise.all(
        this.parts.map(async (part) => {
          const rollRequest = part.rollRequest;
          if (part.queue.length === 0 && !rollRequest) return;
          if (rollRequest) {
            part.rollRequest = undefined;
            try {
              if (part.active.count > 0) await this.roll(part);
            } catch (err) {
              // The old segment stays active (nothing is lost); the next covering commit asks again.
              this.opts.logger.warn({ err, partition: part.id }, 'bus: could not start a new segment');
            }
            rollRequest.resolve();
          }
          if (part.queue.length === 0) return;
          const batch = part.queue;
          part.queue = [];
          try {
            let bytes = 0;
            for (const a of batch) bytes += RECORD_HEADER_BYTES + a.record.length;
            if (part.active.count > 0 && part.active.size + bytes > this.opts.segmentBytes)
              await this.roll(part);
            const seg = part.active;
            const handle = await seg.open();
            const buffers: Uint8Array[] = [];
            for (const a of batch) {
              const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
              header.writeUInt32LE(a.record.length, 0);
              header.writeUInt32LE(crc32(a.record), 4);
              buffers.push(header, a.record);
            }
            await writevAll(handle, buffers, seg.size);
            rounds.push({ part, batch, seg, handle });
          } catch (err) {
            this.fail(batch, err as Error);
          }
        }),
      );
      if (this.opts.fsync === 'always') {
        await Promise.all(rounds.map((r) => r.handle.datasync()));
      } else {
        for (const r of rounds) this.unsyncedHandles.add(r.handle);
      }
    } catch (err) {
      for (const r of rounds) this.fail(r.batch, err as Error);
      // The bytes may be partly on disk; cut the segment back to its last durable size so offsets stay dense.
      for (const r of rounds) await r.handle.truncate(r.seg.size).catch(() => undefined);
      return;
    }
    for (const { part, batch, seg } of rounds) {
      for (const a of batch) {
        const offset = seg.end;
        seg.noteRecord(seg.size, a.record.length);
        this.queuedBytes -= a.record.length;
        a.resolve({ partition: part.id, offset });
      }
      this.wake(part);
    }
  }

  private fail(batch: PendingAppend[], err: Error): void {
    this.opts.logger.error({ err }, 'bus write failed');
    for (const a of batch) {
      this.queuedBytes -= a.record.length;
      a.reject(twError(Errors.unavailable, `the bus could not write to disk: ${err.message}`, 5));
    }
  }

  private wake(part: Partition): void {
    if (part.waiters.length === 0) return;
    const end = part.end;
    const still: Waiter[] = [];
    for (const w of part.waiters) {
      if (w.offset < end) {
        clearTimeout(w.timer);
        w.resolve();
      } else still.push(w);
    }
    part.waiters = still;
  }

  private async syncUnsynced(): Promise<void> {
    const handles = [...this.unsyncedHandles];
    this.unsyncedHandles.clear();
    await Promise.all(handles.map((h) => h.datasync().catch(() => undefined)));
  }

  /** Asks the flush loop to close the active segment; resolves once it has (or the bus is closing). */
  private requestRoll(part: Partition): Promise<void> {
    if (!part.rollRequest) {
      let resolve!: () => void;
      const done = new Promise<void>((r) => {
        resolve = r;
      });
      part.rollRequest = { done, resolve };
    }
    const done = part.rollRequest.done;
    this.scheduleFlush();
    return done;
  }

  private async roll(part: Partition): Promise<void> {
    const old = part.active;
    const seg = await this.createSegment(part, old.end);
    part.segments.push(seg);
    // Keep the old handle if it has unsynced writes; it is closed when the segment is deleted.
    if (this.opts.fsync === 'always') await old.close();
  }

  private async createSegment(part: Partition, base: number): Promise<Segment> {
    const seg = new Segment(base, path.join(part.dir, segmentName(base)));
    const header = Buffer.alloc(FILE_HEADER_BYTES);
    FILE_MAGIC.copy(header, 0);
    header.writeUInt32LE(FILE_VERSION, 4);
    const h = await fsp.open(seg.file, 'w+');
    await h.write(header, 0, header.length, 0);
    await h.datasync();
    seg.handle = h;
    await syncDir(part.dir);
    return seg;
  }

  /** The partition count is part of the on-disk layout: reopening with another count would misroute keys. */
  private async checkPartitionCount(): Promise<void> {
    const file = path.join(this.opts.dir, 'partitions');
    try {
      const n = Number((await fsp.readFile(file, 'utf8')).trim());
      if (n !== this.opts.partitions) {
        throw new Error(
          `bus.partitions is ${this.opts.partitions} but the bus in ${this.opts.dir} was created with ${n} partitions; ` +
            `set bus.partitions: ${n} (changing it requires a new data directory)`,
        );
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await fsp.writeFile(file, `${this.opts.partitions}\n`);
    }
  }

  /** Logs and counts a loss found at open: loudly, since acknowledged data may be gone. */
  private lost(part: Partition, records: number, problem: string, details: Record<string, unknown>): void {
    this.losses.records += records;
    const line = `partition ${part.id}: ${problem}`;
    if (this.losses.problems.length < 100) this.losses.problems.push(line);
    this.opts.logger.error(
      { partition: part.id, lostRecords: records, ...details },
      `bus data lost: ${line}`,
    );
  }

  private async recover(part: Partition): Promise<void> {
    await fsp.mkdir(part.dir, { recursive: true });
    const names = (await fsp.readdir(part.dir)).filter((n) => /^\d{20}\.seg$/.test(n)).sort();
    for (const n of await fsp.readdir(part.dir)) {
      const m = /^committed-([a-z0-9_-]+)$/.exec(n);
      if (m)
        part.committed.set(m[1]!, Number((await fsp.readFile(path.join(part.dir, n), 'utf8')).trim()) || 0);
    }
    for (let i = 0; i < names.length; i++) {
      const seg = new Segment(Number(names[i]!.slice(0, 20)), path.join(part.dir, names[i]!));
      const prev = part.segments[part.segments.length - 1];
      if (prev && seg.base < prev.end) {
        this.lost(
          part,
          0,
          `segment ${names[i]} overlaps the previous one (which ends at ${prev.end}); ignored`,
          {
            file: seg.file,
          },
        );
        continue;
      }
      if (prev && seg.base > prev.end) {
        this.lost(
          part,
          seg.base - prev.end,
          `offsets ${prev.end} to ${seg.base - 1} are missing (a segment was deleted or cut short)`,
          { file: seg.file },
        );
      }
      await this.scanSegment(part, seg, i === names.length - 1);
      part.segments.push(seg);
    }
    // Never hand out an offset a consumer group has already passed: its new records would be skipped.
    let committed = 0;
    for (const c of part.committed.values()) committed = Math.max(committed, c);
    const end = part.segments.length > 0 ? part.end : 0;
    if (committed > end) {
      this.lost(
        part,
        committed - end,
        `the log ends at offset ${end} but a consumer committed ${committed}; new records start at ${committed}`,
        { end, committed },
      );
      part.segments.push(await this.createSegment(part, committed));
    } else if (part.segments.length === 0) {
      part.segments.push(await this.createSegment(part, 0));
    }
  }

  /**
   * Reads a segment at open, building its index. A torn tail of the last segment is cut off (a crash during
   * a write that was never acknowledged); any other damaged record becomes a hole and the scan resynchronises
   * on the next valid header and checksum.
   */
  private async scanSegment(part: Partition, seg: Segment, isLast: boolean): Promise<void> {
    const h = await fsp.open(seg.file, 'r+');
    try {
      const { size: fileSize } = await h.stat();
      const head = Buffer.alloc(FILE_HEADER_BYTES);
      await h.read(head, 0, FILE_HEADER_BYTES, 0);
      if (fileSize < FILE_HEADER_BYTES || !head.subarray(0, 4).equals(FILE_MAGIC)) {
        // The records behind a damaged header may be intact: repair the header and scan them.
        if (fileSize > FILE_HEADER_BYTES)
          this.lost(part, 0, `segment ${path.basename(seg.file)} had a damaged file header; repaired`, {
            file: seg.file,
          });
        else this.opts.logger.warn({ file: seg.file }, 'bus segment has no valid header; rewriting it empty');
        FILE_MAGIC.copy(head, 0);
        head.writeUInt32LE(FILE_VERSION, 4);
        if (fileSize < FILE_HEADER_BYTES) await h.truncate(0);
        await h.write(head, 0, FILE_HEADER_BYTES, 0);
        await h.datasync();
        if (fileSize <= FILE_HEADER_BYTES) return;
      }
      let pos = FILE_HEADER_BYTES;
      let buf = Buffer.allocUnsafe(8 << 20);
      let bufStart = 0;
      let bufLen = 0;
      const ensure = async (at: number, need: number): Promise<boolean> => {
        if (at + need > fileSize) return false;
        if (at >= bufStart && at + need <= bufStart + bufLen) return true;
        if (need > buf.length) buf = Buffer.allocUnsafe(need);
        bufStart = at;
        const { bytesRead } = await h.read(buf, 0, Math.min(buf.length, fileSize - at), at);
        bufLen = bytesRead;
        return at + need <= bufStart + bufLen;
      };
      /** The length of the valid record at `at` (header, length and checksum), or -1. */
      const validAt = async (at: number): Promise<number> => {
        if (!(await ensure(at, RECORD_HEADER_BYTES))) return -1;
        const len = buf.readUInt32LE(at - bufStart);
        const crc = buf.readUInt32LE(at - bufStart + 4);
        if (len > MAX_RECORD_BYTES || !(await ensure(at, RECORD_HEADER_BYTES + len))) return -1;
        const from = at - bufStart + RECORD_HEADER_BYTES;
        return crc32(buf.subarray(from, from + len)) === crc ? len : -1;
      };
      while (pos < fileSize) {
        const len = await validAt(pos);
        if (len >= 0) {
          seg.noteRecord(pos, len);
          pos += RECORD_HEADER_BYTES + len;
          continue;
        }
        // Damage at `pos`. If its length field still leads to a valid record (or exactly to the end of a
        // segment), only the payload is bad: one record lost. Otherwise scan byte by byte for the next
        // valid record.
        let next = -1;
        if (await ensure(pos, RECORD_HEADER_BYTES)) {
          const claimed = pos + RECORD_HEADER_BYTES + buf.readUInt32LE(pos - bufStart);
          if (claimed <= fileSize && (claimed === fileSize ? !isLast : (await validAt(claimed)) >= 0))
            next = claimed;
        }
        for (let at = pos + 1; next < 0 && at + RECORD_HEADER_BYTES <= fileSize; at++)
          if ((await validAt(at)) >= 0) next = at;
        if (next < 0 && !isLast) next = fileSize;
        if (next < 0) {
          // Nothing valid after it in the last segment: a torn tail, cut off.
          this.opts.logger.warn(
            { file: seg.file, position: pos, fileSize, recordsKept: seg.count },
            'bus segment ends in a torn or damaged record; truncating it after its last good record',
          );
          if (fileSize - pos > RECORD_HEADER_BYTES)
            this.lost(part, 1, `segment ${path.basename(seg.file)} ended in a damaged record; cut off`, {
              file: seg.file,
              position: pos,
            });
          await h.truncate(pos);
          await h.datasync();
          break;
        }
        this.lost(
          part,
          1,
          `a damaged record at offset ${seg.end} (bytes ${pos} to ${next} of ${path.basename(seg.file)}) was skipped`,
          { file: seg.file, position: pos, next },
        );
        seg.noteHole(pos, next);
        pos = next;
      }
    } finally {
      await h.close();
    }
  }
}

async function writevAll(handle: FileHandle, buffers: Uint8Array[], position: number): Promise<void> {
  // writev may write less than asked (large batches): continue where it stopped.
  let total = 0;
  for (const b of buffers) total += b.length;
  let written = 0;
  let pending = buffers;
  while (written < total) {
    const { bytesWritten } = await handle.writev(pending, position + written);
    written += bytesWritten;
    if (written >= total) break;
    let skip = bytesWritten;
    const next: Uint8Array[] = [];
    for (const b of pending) {
      if (skip >= b.length) {
        skip -= b.length;
        continue;
      }
      next.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
    pending = next;
  }
}
