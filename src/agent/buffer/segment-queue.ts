/**
 * The agent's on-disk buffer: a bounded FIFO of encoded native frames in segment files, with one reader (the
 * shipper) and a read cursor. The format is documented in docs/agent.md ("Buffer format"):
 *
 * ```
 * segment file <data_dir>/buffer/<id, 16 digits>.seg
 * ┌────────────────────────────┬──────────┬──────────┬─────┐
 * │ "TWAQ" │ version u8 = 1 │ 000 │ record 1 │ record 2 │ ... │
 * └────────────────────────────┴──────────┴──────────┴─────┘
 * record
 * ┌──────────────┬────────────┬──────────────────┬─────────────┬──────────────────────────────┐
 * │ frame len u32│ CRC-32 u32 │ createdAtMs f64  │ samples u32 │ frame (a native frame, as    │
 * │              │ of the rest│                  │             │ sent: docs/protocol.md)      │
 * └──────────────┴────────────┴──────────────────┴─────────────┴──────────────────────────────┘
 * all little-endian; the CRC covers createdAtMs, samples and the frame.
 * cursor file <data_dir>/buffer/cursor.json: {"segment": id, "offset": byte offset of the next record}
 * ```
 *
 * Invariants:
 * - A record is only ever appended to the active (newest) segment; other segments are immutable.
 * - `append` resolves once the record is written (and, with fsync `always`, on disk): that is when a batch
 *   counts as buffered and when the local endpoint answers 200.
 * - Everything before the cursor was delivered or dropped. The cursor is persisted lazily (at most every
 *   `cursorPersistMs`), so after a crash a few delivered frames may be sent again; they carry the same
 *   idempotency key and the collector and storage drop the repeats.
 * - Bounded: beyond `maxBytes` the oldest segments are deleted; records older than `ttlMs` are skipped.
 *   Every dropped record is reported through `onDrop` with its reason and sample count: nothing is dropped
 *   silently.
 * - Torn tails (a crash in the middle of a write) are found by the CRC at open and cut off.
 */
import {
  closeSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import type { AgentLogger } from '../log.js';

export const SEGMENT_MAGIC = Buffer.from('TWAQ', 'latin1');
export const SEGMENT_VERSION = 1;
export const SEGMENT_HEADER_BYTES = 8;
export const RECORD_HEADER_BYTES = 20;
/** A frame larger than this cannot be a frame we wrote: the length field is damaged. */
const MAX_FRAME_BYTES = 1 << 30;

export type DropReason = 'ttl' | 'size' | 'rejected' | 'corrupt';

export interface BufferedRecord {
  readonly segment: number;
  readonly offset: number;
  /** Offset just after this record in its segment. */
  readonly end: number;
  readonly createdAtMs: number;
  readonly samples: number;
  readonly frame: Uint8Array;
}

export interface SegmentQueueOptions {
  readonly dir: string;
  readonly maxBytes: number;
  readonly segmentBytes: number;
  readonly ttlMs: number;
  readonly fsync: 'always' | 'never';
  readonly logger: AgentLogger;
  readonly onDrop?: (reason: DropReason, frames: number, samples: number) => void;
  readonly cursorPersistMs?: number;
  readonly now?: () => number;
}

interface Segment {
  readonly id: number;
  readonly path: string;
  size: number;
  records: number;
  samples: number;
  newestMs: number;
}

interface PendingWrite {
  readonly bytes: Buffer;
  readonly samples: number;
  readonly createdAtMs: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

export class BufferFullError extends Error {}

export class SegmentQueue {
  /** Oldest first; the last one is the active segment. */
  private readonly segments: Segment[] = [];
  private activeFh: FileHandle | undefined;
  private readonly pendingWrites: PendingWrite[] = [];
  private writing = false;
  private closed = false;
  private waiter: (() => void) | undefined;

  // Read cursor: the next record to hand out is at `cursorOffset` in `segments[0]` (the head segment).
  private cursorOffset = SEGMENT_HEADER_BYTES;
  private headConsumedRecords = 0;
  private headConsumedSamples = 0;
  private readFh: { id: number; fd: number } | undefined;
  /** The record handed out by next() and not yet acked or dropped. */
  private inFlight: BufferedRecord | undefined;
  private cursorDirty = false;
  private lastCursorPersist = 0;
  private readonly now: () => number;
  private readonly headerScratch = Buffer.alloc(RECORD_HEADER_BYTES);

  private constructor(private readonly opts: SegmentQueueOptions) {
    this.now = opts.now ?? Date.now;
  }

  static async open(opts: SegmentQueueOptions): Promise<SegmentQueue> {
    const q = new SegmentQueue(opts);
    mkdirSync(opts.dir, { recursive: true });
    q.recover();
    await q.startSegment();
    q.expire();
    return q;
  }

  /** Bytes on disk, records and samples not yet delivered or dropped. */
  stats(): { bytes: number; records: number; samples: number; segments: number } {
    let bytes = 0;
    let records = 0;
    let samples = 0;
    for (const s of this.segments) {
      bytes += s.size;
      records += s.records;
      samples += s.samples;
    }
    return {
      bytes,
      records: records - this.headConsumedRecords,
      samples: samples - this.headConsumedSamples,
      segments: this.segments.length,
    };
  }

  /**
   * Appends one frame; resolves when it is buffered (written, and fdatasync'd with fsync `always`). Appends
   * that arrive while a write is running are written together with one sync (group commit).
   */
  append(frame: Uint8Array, samples: number, createdAtMs = this.now()): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the agent buffer is closed'));
    const size = RECORD_HEADER_BYTES + frame.length;
    if (size + SEGMENT_HEADER_BYTES > this.opts.maxBytes)
      return Promise.reject(
        new BufferFullError(
          `a batch of ${frame.length} bytes does not fit in the buffer (buffer.max_bytes = ${this.opts.maxBytes})`,
        ),
      );
    const bytes = Buffer.allocUnsafe(size);
    bytes.writeUInt32LE(frame.length, 0);
    bytes.writeDoubleLE(createdAtMs, 8);
    bytes.writeUInt32LE(samples, 16);
    bytes.set(frame, RECORD_HEADER_BYTES);
    bytes.writeUInt32LE(crc32(bytes.subarray(8)), 4);
    return new Promise<void>((resolve, reject) => {
      this.pendingWrites.push({ bytes, samples, createdAtMs, resolve, reject });
      if (!this.writing) void this.drainWrites();
    });
  }

  /**
   * The record at the read cursor, waiting for one if the buffer is empty; skips (and reports) records past
   * their TTL. Resolves undefined when `signal` aborts or the queue closes. One reader only: call `ack` or
   * `drop` for the returned record before calling `next` again.
   */
  async next(signal?: AbortSignal): Promise<BufferedRecord | undefined> {
    for (;;) {
      if (this.closed || signal?.aborted) return undefined;
      const head = this.segments[0]!;
      if (this.cursorOffset >= head.size) {
        if (this.segments.length > 1) {
          this.retireHead();
          continue;
        }
        await this.waitForAppend(signal);
        continue;
      }
      const rec = this.readAt(head, this.cursorOffset);
      if (!rec) {
        // Damaged on disk after it was written: drop the rest of this segment, say so, go on.
        const lostRecords = head.records - this.headConsumedRecords;
        const lostSamples = head.samples - this.headConsumedSamples;
        this.opts.logger.error(
          { segment: head.path, offset: this.cursorOffset, records: lostRecords },
          'agent buffer: a record failed its CRC check on read; dropping the rest of the segment',
        );
        this.opts.onDrop?.('corrupt', lostRecords, lostSamples);
        this.headConsumedRecords = head.records;
        this.headConsumedSamples = head.samples;
        // Appends continue after the damaged bytes; the cursor skips to them.
        this.cursorOffset = head.size;
        continue;
      }
      if (rec.createdAtMs + this.opts.ttlMs < this.now()) {
        this.inFlight = rec;
        this.drop(rec, 'ttl');
        continue;
      }
      this.inFlight = rec;
      return rec;
    }
  }

  /** The record was delivered: move the cursor past it. */
  ack(rec: BufferedRecord): void {
    this.advancePast(rec);
  }

  /** The record will not be delivered: move past it and report why. */
  drop(rec: BufferedRecord, reason: DropReason): void {
    // A record whose segment was already dropped for space was counted then.
    if (this.advancePast(rec)) this.opts.onDrop?.(reason, 1, rec.samples);
  }

  /**
   * Deletes whole segments whose newest record is past the TTL (reporting what was not delivered), so that
   * an outage longer than the TTL frees the disk and is counted while it lasts, not only when the link is back.
   */
  expire(): void {
    const cutoff = this.now() - this.opts.ttlMs;
    while (this.segments.length > 1 && this.segments[0]!.newestMs < cutoff) this.dropHead('ttl');
    this.maybePersistCursor(false);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    while (this.writing || this.pendingWrites.length > 0) await new Promise((r) => setTimeout(r, 5));
    this.closed = true;
    this.waiter?.();
    await this.activeFh?.close();
    this.activeFh = undefined;
    this.closeReadFh();
    this.maybePersistCursor(true);
  }

  // -------------------------------------------------------------------------------------------------------
  // Writing

  private async drainWrites(): Promise<void> {
    this.writing = true;
    try {
      while (this.pendingWrites.length > 0) {
        const group = this.pendingWrites.splice(0);
        try {
          await this.writeGroup(group);
          for (const w of group) w.resolve();
        } catch (err) {
          this.opts.logger.error({ err }, 'agent buffer: write failed');
          for (const w of group) w.reject(err as Error);
        }
        this.enforceSize();
        this.waiter?.();
      }
    } finally {
      this.writing = false;
    }
  }

  private async writeGroup(group: PendingWrite[]): Promise<void> {
    let i = 0;
    while (i < group.length) {
      let active = this.segments[this.segments.length - 1]!;
      if (active.records > 0 && active.size + group[i]!.bytes.length > this.opts.segmentBytes) {
        await this.roll();
        active = this.segments[this.segments.length - 1]!;
      }
      // Everything that fits in the active segment goes in one writev.
      const batch: Buffer[] = [];
      let bytes = 0;
      while (
        i < group.length &&
        (batch.length === 0 || active.size + bytes + group[i]!.bytes.length <= this.opts.segmentBytes)
      ) {
        batch.push(group[i]!.bytes);
        bytes += group[i]!.bytes.length;
        i++;
      }
      await this.writeAll(this.activeFh!, batch, active.size);
      if (this.opts.fsync === 'always') await this.activeFh!.datasync();
      active.size += bytes;
      for (let k = i - batch.length; k < i; k++) {
        const w = group[k]!;
        active.records++;
        active.samples += w.samples;
        if (w.createdAtMs > active.newestMs) active.newestMs = w.createdAtMs;
      }
    }
  }

  private async writeAll(fh: FileHandle, buffers: Buffer[], position: number): Promise<void> {
    let pos = position;
    let pending = buffers;
    while (pending.length > 0) {
      const { bytesWritten } = await fh.writev(pending, pos);
      pos += bytesWritten;
      // Short writes are rare; resume from where the kernel stopped.
      let skip = bytesWritten;
      const rest: Buffer[] = [];
      for (const b of pending) {
        if (skip >= b.length) {
          skip -= b.length;
          continue;
        }
        rest.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
      pending = rest;
    }
  }

  private async startSegment(): Promise<void> {
    const last = this.segments[this.segments.length - 1];
    const id = last ? last.id + 1 : 1;
    const file = this.segmentPath(id);
    const fh = await open(file, 'w');
    const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
    SEGMENT_MAGIC.copy(header, 0);
    header[4] = SEGMENT_VERSION;
    await fh.write(header, 0, header.length, 0);
    if (this.opts.fsync === 'always') await fh.datasync();
    this.activeFh = fh;
    this.segments.push({ id, path: file, size: SEGMENT_HEADER_BYTES, records: 0, samples: 0, newestMs: 0 });
    if (this.segments.length === 1) this.resetCursor();
  }

  private async roll(): Promise<void> {
    await this.activeFh?.close();
    this.activeFh = undefined;
    await this.startSegment();
  }

  private enforceSize(): void {
    let total = 0;
    for (const s of this.segments) total += s.size;
    while (total > this.opts.maxBytes && this.segments.length > 1) {
      total -= this.segments[0]!.size;
      this.dropHead('size');
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Reading

  private readAt(seg: Segment, offset: number): BufferedRecord | undefined {
    const fd = this.readFd(seg);
    const h = this.headerScratch;
    if (readFully(fd, h, offset) < RECORD_HEADER_BYTES) return undefined;
    const len = h.readUInt32LE(0);
    if (len > MAX_FRAME_BYTES || offset + RECORD_HEADER_BYTES + len > seg.size) return undefined;
    const frame = Buffer.allocUnsafe(len);
    if (readFully(fd, frame, offset + RECORD_HEADER_BYTES) < len) return undefined;
    if (crc32(frame, crc32(h.subarray(8))) !== h.readUInt32LE(4)) return undefined;
    return {
      segment: seg.id,
      offset,
      end: offset + RECORD_HEADER_BYTES + len,
      createdAtMs: h.readDoubleLE(8),
      samples: h.readUInt32LE(16),
      frame,
    };
  }

  private readFd(seg: Segment): number {
    if (this.readFh?.id !== seg.id) {
      this.closeReadFh();
      this.readFh = { id: seg.id, fd: openSync(seg.path, 'r') };
    }
    return this.readFh.fd;
  }

  private closeReadFh(): void {
    if (this.readFh) closeSync(this.readFh.fd);
    this.readFh = undefined;
  }

  private waitForAppend(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.waiter = undefined;
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.waiter = done;
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Moves the cursor past `rec`; false if its segment is gone (dropped for space or TTL meanwhile). */
  private advancePast(rec: BufferedRecord): boolean {
    if (this.inFlight === rec) this.inFlight = undefined;
    const head = this.segments[0];
    if (!head || head.id !== rec.segment || rec.offset !== this.cursorOffset) return false;
    this.cursorOffset = rec.end;
    this.headConsumedRecords++;
    this.headConsumedSamples += rec.samples;
    this.cursorDirty = true;
    if (this.cursorOffset >= head.size && this.segments.length > 1) this.retireHead();
    this.maybePersistCursor(false);
    return true;
  }

  /** The head segment is fully consumed: delete it and move the cursor to the next one. */
  private retireHead(): void {
    const head = this.segments.shift()!;
    if (this.readFh?.id === head.id) this.closeReadFh();
    rmSync(head.path, { force: true });
    this.resetCursor();
    this.maybePersistCursor(true);
  }

  /** Deletes the head segment before it was consumed, reporting the records it still held. */
  private dropHead(reason: DropReason): void {
    const head = this.segments[0]!;
    let records = head.records - this.headConsumedRecords;
    let samples = head.samples - this.headConsumedSamples;
    // The record being sent right now is counted by the shipper if it fails; if it is delivered, it was not lost.
    if (this.inFlight && this.inFlight.segment === head.id) {
      records--;
      samples -= this.inFlight.samples;
    }
    if (records > 0) {
      this.opts.logger.warn(
        { reason, records, samples, segment: path.basename(head.path) },
        reason === 'size'
          ? 'agent buffer full (buffer.max_bytes): dropping the oldest segment'
          : 'agent buffer: dropping a segment older than buffer.ttl_ms',
      );
      this.opts.onDrop?.(reason, records, samples);
    }
    this.retireHead();
  }

  private resetCursor(): void {
    this.cursorOffset = SEGMENT_HEADER_BYTES;
    this.headConsumedRecords = 0;
    this.headConsumedSamples = 0;
    this.cursorDirty = true;
  }

  private maybePersistCursor(force: boolean): void {
    if (!this.cursorDirty) return;
    const now = Date.now();
    if (!force && now - this.lastCursorPersist < (this.opts.cursorPersistMs ?? 500)) return;
    const head = this.segments[0];
    if (!head) return;
    const file = path.join(this.opts.dir, 'cursor.json');
    writeFileSync(`${file}.tmp`, JSON.stringify({ segment: head.id, offset: this.cursorOffset }));
    renameSync(`${file}.tmp`, file);
    this.cursorDirty = false;
    this.lastCursorPersist = now;
  }

  // -------------------------------------------------------------------------------------------------------
  // Recovery

  /** Scans the segments left by a previous run: checks every record, cuts torn tails, restores the cursor. */
  private recover(): void {
    const ids = readdirSync(this.opts.dir)
      .filter((f) => /^\d{16}\.seg$/.test(f))
      .map((f) => Number(f.slice(0, 16)))
      .sort((a, b) => a - b);
    let cursor: { segment: number; offset: number } | undefined;
    try {
      cursor = JSON.parse(readFileSync(path.join(this.opts.dir, 'cursor.json'), 'utf8'));
    } catch {
      cursor = undefined;
    }
    for (const id of ids) {
      if (cursor && id < cursor.segment) {
        // Fully consumed before the previous run stopped; only its deletion was lost.
        rmSync(this.segmentPath(id), { force: true });
        continue;
      }
      const seg = this.scanSegment(id);
      if (!seg) continue;
      if (cursor && id === cursor.segment && this.segments.length === 0) {
        // Count what the previous run consumed in this segment, stopping at the first boundary ≥ the cursor.
        this.segments.push(seg);
        this.countConsumed(seg, cursor.offset);
        continue;
      }
      if (seg.records === 0) {
        rmSync(seg.path, { force: true });
        continue;
      }
      this.segments.push(seg);
    }
    if (this.segments.length > 0 && this.segments[0]!.records === this.headConsumedRecords) {
      // The head was consumed entirely; drop it unless it is all we have (startSegment adds the next).
      const head = this.segments.shift()!;
      rmSync(head.path, { force: true });
      this.headConsumedRecords = 0;
      this.headConsumedSamples = 0;
      this.cursorOffset = SEGMENT_HEADER_BYTES;
    }
    const pending = this.stats();
    if (pending.records > 0)
      this.opts.logger.info(
        { records: pending.records, samples: pending.samples, bytes: pending.bytes },
        'agent buffer: resuming with batches buffered by a previous run',
      );
  }

  private scanSegment(id: number): Segment | undefined {
    const file = this.segmentPath(id);
    const data = readFileSync(file);
    if (data.length < SEGMENT_HEADER_BYTES || !data.subarray(0, 4).equals(SEGMENT_MAGIC)) {
      this.opts.logger.warn({ segment: file }, 'agent buffer: not a segment file (bad header); removing it');
      rmSync(file, { force: true });
      return undefined;
    }
    const seg: Segment = { id, path: file, size: SEGMENT_HEADER_BYTES, records: 0, samples: 0, newestMs: 0 };
    let pos = SEGMENT_HEADER_BYTES;
    while (pos + RECORD_HEADER_BYTES <= data.length) {
      const len = data.readUInt32LE(pos);
      const end = pos + RECORD_HEADER_BYTES + len;
      if (len > MAX_FRAME_BYTES || end > data.length) break;
      if (crc32(data.subarray(pos + 8, end)) !== data.readUInt32LE(pos + 4)) break;
      seg.records++;
      seg.samples += data.readUInt32LE(pos + 16);
      const created = data.readDoubleLE(pos + 8);
      if (created > seg.newestMs) seg.newestMs = created;
      pos = end;
    }
    if (pos < data.length) {
      this.opts.logger.warn(
        { segment: file, keptBytes: pos, cutBytes: data.length - pos },
        'agent buffer: cutting a torn or damaged tail left by a crash',
      );
      const fd = openSync(file, 'r+');
      try {
        ftruncateSync(fd, pos);
      } finally {
        closeSync(fd);
      }
    }
    seg.size = pos;
    return seg;
  }

  private countConsumed(seg: Segment, offset: number): void {
    const data = readFileSync(seg.path);
    let pos = SEGMENT_HEADER_BYTES;
    this.headConsumedRecords = 0;
    this.headConsumedSamples = 0;
    while (pos < offset && pos < seg.size) {
      const len = data.readUInt32LE(pos);
      this.headConsumedRecords++;
      this.headConsumedSamples += data.readUInt32LE(pos + 16);
      pos += RECORD_HEADER_BYTES + len;
    }
    this.cursorOffset = pos;
  }

  private segmentPath(id: number): string {
    return path.join(this.opts.dir, `${String(id).padStart(16, '0')}.seg`);
  }
}

function readFully(fd: number, into: Buffer, position: number): number {
  let got = 0;
  while (got < into.length) {
    const n = readSync(fd, into, got, into.length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}
