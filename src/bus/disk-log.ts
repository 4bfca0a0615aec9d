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
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from 'pino';
import { Errors, twError } from '../model/errors.js';
import {
  type AppendResult,
  type Bus,
  type BusEntry,
  type GroupMember,
  hashPartitionKey,
  type RebalanceListener,
} from './bus.js';
import { recoverPartition } from './disk-log-recovery.js';
import {
  createSegment,
  FILE_HEADER_BYTES,
  MAX_RECORD_BYTES,
  Partition,
  type PendingAppend,
  READ_CHUNK_BYTES,
  RECORD_HEADER_BYTES,
  type Segment,
  type Waiter,
  writevAll,
} from './disk-log-segment.js';
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
      await recoverPartition({ opts: bus.opts, losses: bus.losses }, part);
      bus.parts.push(part);
    }
    if (opts.fsync === 'interval') {
      bus.fsyncTimer = setInterval(() => void bus.syncUnsynced(), opts.fsyncIntervalMs);
      bus.fsyncTimer.unref();
    }
    return bus;
  }

  // Bus.partitionOf and the start of Bus.append as KafkaBus (kafka.ts) has them: the contract's checks.
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
    const seg = await createSegment(part, old.end);
    part.segments.push(seg);
    // Keep the old handle if it has unsynced writes; it is closed when the segment is deleted.
    if (this.opts.fsync === 'always') await old.close();
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
}
