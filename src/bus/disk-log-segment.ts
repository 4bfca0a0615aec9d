/**
 * The embedded bus's on-disk pieces (format box in disk-log.ts): the segment file constants, a segment (its
 * file, handle and sparse index), a partition (its segments, queued appends, waiting readers and committed
 * offsets) and the file writes they share. Separate from the bus, which orders the work on them (flush loop,
 * reads, commits), and from the recovery at open (disk-log-recovery.ts).
 */
import { constants as fsConstants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { syncDir } from '../model/fs.js';
import type { AppendResult } from './bus.js';

export const FILE_MAGIC = Buffer.from('TWLG');
export const FILE_VERSION = 1;
export const FILE_HEADER_BYTES = 8;
export const RECORD_HEADER_BYTES = 8;
/** Largest record accepted; bounds the read buffer and protects against a corrupt length field. */
export const MAX_RECORD_BYTES = 256 << 20;
/** One sparse-index entry per this many bytes of a segment. */
export const INDEX_INTERVAL_BYTES = 64 << 10;
export const READ_CHUNK_BYTES = 1 << 20;

export interface PendingAppend {
  readonly record: Uint8Array;
  readonly resolve: (r: AppendResult) => void;
  readonly reject: (e: Error) => void;
}

export class Segment {
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

export interface Waiter {
  readonly offset: number;
  readonly resolve: () => void;
  readonly timer: NodeJS.Timeout;
}

export class Partition {
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

export function segmentName(base: number): string {
  return `${String(base).padStart(20, '0')}.seg`;
}

/** Creates segment `base` of `part`: its file header written and synced, the directory synced. */
export async function createSegment(part: Partition, base: number): Promise<Segment> {
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

export async function writevAll(handle: FileHandle, buffers: Uint8Array[], position: number): Promise<void> {
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
