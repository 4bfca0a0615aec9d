/**
 * Blocks: immutable, time-partitioned files holding the samples of one tier (raw or a rollup) for a time
 * range, with their own series index. One file per block (`<data-dir>/tsdb/blocks/<tier>-<seq>.twb`), written
 * to a temporary name, synced and renamed, so a block is either complete or absent. Format
 * (docs/storage.md "Block file"):
 *
 * ```
 * ┌──────────────────────────────────────────────────────────────────────────────────────────┐
 * │ "TWBK" │ version u8 = 3 │ 3 bytes reserved                                             │
 * ├──────────────────────────────────────────────────────────────────────────────────────────┤
 * │ chunks: each series' chunks back to back, in series order (codec/chunk.ts format);        │
 * │ version 3: in pages of whole series (≥ 64 KiB unless the last), each stored deflated      │
 * │ (raw deflate) or as is; chunk offsets in the index are positions in the pages'            │
 * │ concatenated plain bytes (starting at 8, as if nothing were compressed)                   │
 * ├──────────────────────────────────────────────────────────────────────────────────────────┤
 * │ index (version 2: its uncompressed length uvarint, then the rest deflated (raw deflate)):    │
 * │         symbols   count uvarint, strings (sorted)                                          │
 * │         series    count uvarint, per series: npairs, (name sym, value sym)*, nchunks,      │
 * │                   per chunk: column u8, minT svarint (delta to block minT), maxT - minT,   │
 * │                   offset uvarint (delta to the previous chunk's end), length uvarint        │
 * │         postings  count uvarint, per label pair: name sym, value sym, n, series ids (deltas)│
 * │         pages     (version 3) count uvarint, per page: plain length uvarint, stored length   │
 * │                   uvarint, codec u8 (0 as is, 1 deflate); pages follow each other from byte 8 │
 * ├──────────────────────────────────────────────────────────────────────────────────────────┤
 * │ meta JSON (BlockMeta)                                                                       │
 * ├──────────────────────────────────────────────────────────────────────────────────────────┤
 * │ footer: index offset u64 │ index length u32 │ index CRC-32 │ meta offset u64 │ meta length  │
 * │         u32 │ meta CRC-32 │ "TWBK"                              (40 bytes)                  │
 * └──────────────────────────────────────────────────────────────────────────────────────────┘
 * ```
 * Series are sorted in Prometheus order (labels by name, pair by pair), so series ids and postings are in
 * the order a select must return. Version 2 blocks hold version-2 chunks (their first timestamp is the
 * chunk's minT in the index, see codec/chunk.ts); version-1 blocks (written before) are read as they are.
 *
 * Files: the box above is the one contract of block-format.ts (constants, types), block-writer.ts (the writer),
 * block-index.ts (the index as queries read it) and this file (the file reader: pages, lazy index, scratch).
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { crc32, inflateRawSync } from 'node:zlib';
import { ByteReader } from '../protocol/bytes.js';
import {
  BLOCK_MAGIC,
  BLOCK_VERSION,
  BlockCorruptError,
  type BlockMeta,
  FOOTER_BYTES,
  PAGE_DEFLATE,
} from './block-format.js';
import { BlockIndex } from './block-index.js';

export {
  BLOCK_MAGIC,
  BLOCK_VERSION,
  BlockCorruptError,
  type BlockMeta,
  type ChunkRef,
  type TierName,
} from './block-format.js';
export { BlockIndex } from './block-index.js';
export { BlockWriter } from './block-writer.js';

/**
 * Scratch buffers of reads made for callers that decode at once, each with the bytes it holds (`length`
 * bytes of `reader`'s file at `offset`). A read inside a range one of them holds is served from memory: a
 * rollup block's caller reads a series' columns one after another, each over every block of the range, and
 * the first column's read of each block brings the others' bytes in. Used round robin.
 */
const scratchSlots: { reader: BlockReader | undefined; offset: number; length: number; buf: Buffer }[] =
  Array.from({ length: 16 }, () => ({ reader: undefined, offset: 0, length: 0, buf: Buffer.alloc(0) }));
let nextScratchSlot = 0;
/** Bytes a scratch read that misses reads at least. */
const SCRATCH_READ_AHEAD = 64 << 10;

const EMPTY_PAGE = new Uint8Array(0);
/**
 * Plain bytes of recently read version-3 pages (a series' reads, its columns, the next series in label order
 * hit the same page), used round robin. A scratch read returns a view into one: valid until 16 more pages
 * were read, which callers that decode at once never reach.
 */
const pageSlots: { reader: BlockReader | undefined; page: number; bytes: Uint8Array }[] = Array.from(
  { length: 16 },
  () => ({ reader: undefined, page: -1, bytes: EMPTY_PAGE }),
);
let nextPageSlot = 0;

/** An open block: its meta at once, its index on demand, its chunks by positioned reads. */
export class BlockReader {
  private fd: number;
  private indexOffset = 0;
  private indexLength = 0;
  private indexCrc = 0;
  private cachedIndex: BlockIndex | undefined;
  readonly meta: BlockMeta;
  readonly fileBytes: number;
  /** Format version (header byte 4): 1, 2 or 3. */
  readonly version: number;
  /** Called when the index is loaded or dropped (cache accounting). */
  onIndexLoad: ((reader: BlockReader) => void) | undefined;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'r');
    try {
      this.fileBytes = statSync(path).size;
      if (this.fileBytes < FOOTER_BYTES + 8) throw new BlockCorruptError(`block ${path} is too short`);
      const header = Buffer.alloc(8);
      readSync(this.fd, header, 0, 8, 0);
      this.version = header[4]!;
      if (header.toString('latin1', 0, 4) !== BLOCK_MAGIC || this.version < 1 || this.version > BLOCK_VERSION)
        throw new BlockCorruptError(
          `block ${path}: not a block of a version this trainwatch reads (${this.version})`,
        );
      const footer = Buffer.alloc(FOOTER_BYTES);
      readSync(this.fd, footer, 0, FOOTER_BYTES, this.fileBytes - FOOTER_BYTES);
      if (footer.toString('latin1', 32, 36) !== BLOCK_MAGIC)
        throw new BlockCorruptError(`block ${path} has no footer`);
      this.indexOffset = Number(footer.readBigUInt64LE(0));
      this.indexLength = footer.readUInt32LE(8);
      this.indexCrc = footer.readUInt32LE(12);
      const metaOffset = Number(footer.readBigUInt64LE(16));
      const metaLength = footer.readUInt32LE(24);
      const metaCrc = footer.readUInt32LE(28);
      const metaBytes = Buffer.alloc(metaLength);
      readSync(this.fd, metaBytes, 0, metaLength, metaOffset);
      if (crc32(metaBytes) !== metaCrc) throw new BlockCorruptError(`block ${path}: meta CRC mismatch`);
      this.meta = JSON.parse(metaBytes.toString('utf8')) as BlockMeta;
    } catch (err) {
      closeSync(this.fd);
      throw err;
    }
  }

  get indexLoaded(): boolean {
    return this.cachedIndex !== undefined;
  }

  index(): BlockIndex {
    if (!this.cachedIndex) {
      const data = Buffer.alloc(this.indexLength);
      readSync(this.fd, data, 0, this.indexLength, this.indexOffset);
      if (crc32(data) !== this.indexCrc)
        throw new BlockCorruptError(`block ${this.path}: index CRC mismatch`);
      let plain: Uint8Array = data;
      if (this.version >= 2) {
        const r = new ByteReader(data);
        const length = r.uvarint('index length');
        plain = inflateRawSync(data.subarray(r.pos), { maxOutputLength: length });
        if (plain.length !== length)
          throw new BlockCorruptError(
            `block ${this.path}: index inflates to ${plain.length} bytes, not ${length}`,
          );
      }
      this.cachedIndex = new BlockIndex(plain, this.meta.minT, this.version);
      this.onIndexLoad?.(this);
    }
    return this.cachedIndex;
  }

  /** Releases the loaded index (the block cache evicts it); the next query loads it again. */
  dropIndex(): void {
    this.cachedIndex = undefined;
  }

  get indexBytes(): number {
    return this.cachedIndex?.bytes ?? 0;
  }

  /**
   * Reads `length` bytes at `offset` (one series' chunks are contiguous: one read serves them all). With
   * `scratch`, into a shared buffer valid until the next such read (for callers that decode at once); such
   * reads read ahead, and one inside bytes a scratch buffer still holds makes no system call.
   */
  read(offset: number, length: number, scratch = false): Uint8Array {
    if (this.version >= 3) return this.readPaged(offset, length, scratch);
    if (!scratch) {
      const out = Buffer.allocUnsafe(length);
      this.readInto(out, offset, length);
      return out;
    }
    for (const held of scratchSlots)
      if (held.reader === this && offset >= held.offset && offset + length <= held.offset + held.length)
        return held.buf.subarray(offset - held.offset, offset - held.offset + length);
    // A miss reads ahead (up to the end of the file): the next series of a selection usually follow in the
    // file (series are stored in label order), so one system call serves many of them.
    const span = Math.max(length, Math.min(SCRATCH_READ_AHEAD, this.fileBytes - offset));
    const slot = scratchSlots[nextScratchSlot]!;
    nextScratchSlot = (nextScratchSlot + 1) % scratchSlots.length;
    slot.reader = undefined;
    if (slot.buf.length < span) slot.buf = Buffer.allocUnsafe(Math.max(span, slot.buf.length * 2));
    this.readInto(slot.buf, offset, span);
    slot.reader = this;
    slot.offset = offset;
    slot.length = span;
    return slot.buf.subarray(0, length);
  }

  /** {@link read} of a version-3 block: from the plain bytes of the pages holding the range. */
  private readPaged(offset: number, length: number, scratch: boolean): Uint8Array {
    const idx = this.index();
    const starts = idx.pageStart;
    // The page holding `offset`: the last whose start is at or before it.
    let lo = 0;
    let hi = starts.length - 2;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    if (hi < 0 || offset < starts[lo]! || offset + length > starts[starts.length - 1]!)
      throw new BlockCorruptError(
        `block ${this.path}: chunk bytes [${offset}, ${offset + length}) beyond its pages`,
      );
    const page = this.page(idx, lo);
    const at = offset - starts[lo]!;
    if (at + length <= page.length) {
      const view = page.subarray(at, at + length);
      return scratch ? view : Buffer.from(view);
    }
    // Across pages (a writer never puts one series in two, so only a caller reading several series).
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    for (let p = lo; done < length; p++) {
      const bytes = this.page(idx, p);
      const from = p === lo ? at : 0;
      const n = Math.min(length - done, bytes.length - from);
      out.set(bytes.subarray(from, from + n), done);
      done += n;
    }
    return out;
  }

  /** The plain bytes of page `p`, from the shared page cache or read and inflated into it. */
  private page(idx: BlockIndex, p: number): Uint8Array {
    for (const held of pageSlots) if (held.reader === this && held.page === p) return held.bytes;
    const stored = Buffer.allocUnsafe(idx.pageStored[p]!);
    this.readInto(stored, idx.pageFileOffset[p]!, stored.length);
    const plainLength = idx.pageStart[p + 1]! - idx.pageStart[p]!;
    let bytes: Uint8Array = stored;
    if (idx.pageCodec[p] === PAGE_DEFLATE) {
      bytes = inflateRawSync(stored, { maxOutputLength: plainLength });
      if (bytes.length !== plainLength)
        throw new BlockCorruptError(
          `block ${this.path}: page ${p} inflates to ${bytes.length} bytes, not ${plainLength}`,
        );
    }
    const slot = pageSlots[nextPageSlot]!;
    nextPageSlot = (nextPageSlot + 1) % pageSlots.length;
    slot.reader = this;
    slot.page = p;
    slot.bytes = bytes;
    return bytes;
  }

  private readInto(out: Buffer, offset: number, length: number): void {
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) throw new BlockCorruptError(`block ${this.path}: short read at ${offset + done}`);
      done += n;
    }
  }

  close(): void {
    for (const held of scratchSlots) if (held.reader === this) held.reader = undefined;
    for (const held of pageSlots)
      if (held.reader === this) {
        held.reader = undefined;
        held.bytes = EMPTY_PAGE;
      }
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.cachedIndex = undefined;
  }
}
