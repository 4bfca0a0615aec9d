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
 * Size: one on-disk format, kept in one file on purpose: the block writer beside its reader.
 */
import { closeSync, fsyncSync, openSync, readSync, renameSync, statSync, writeSync } from 'node:fs';
import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';
import type { LabelSet } from '../model/labels.js';
import { ByteReader, ByteWriter } from '../protocol/bytes.js';
import { EMPTY_POSTINGS, type Postings, type PostingsIndex } from './postings.js';

export const BLOCK_MAGIC = 'TWBK';
/**
 * Block format written. Read: version 1 (uncompressed index, chunks with their first timestamp), version 2
 * (chunks stored as they are), version 3 (chunks in deflated pages: the chunk codecs leave the value bytes'
 * skewed distribution and repeated chunk headers to a general compressor, about a fifth of a raw block and
 * a third to a half of a rollup block on the bench's data).
 */
export const BLOCK_VERSION = 3;
/** A version-3 page is closed after the series that brings it to this many plain bytes. */
const PAGE_BYTES = 64 << 10;
const PAGE_PLAIN = 0;
const PAGE_DEFLATE = 1;
const FOOTER_BYTES = 40;

export type TierName = 'raw' | '10s' | '1m' | '1h';

export interface BlockMeta {
  readonly tier: TierName;
  /** Sequence number: higher is newer; for equal (series, timestamp), the newer block's sample wins. */
  readonly seq: number;
  readonly minT: number;
  /** Inclusive. */
  readonly maxT: number;
  readonly series: number;
  readonly samples: number;
  readonly chunks: number;
  /** Raw blocks: whether rollups of this block's range were written (tsdb.ts): `rollups` names the tiers. */
  readonly rolledUp: boolean;
  /**
   * Raw blocks: the tiers whose rollup blocks hold this block's windows (absent in blocks written before it
   * existed: tsdb.ts then finds them at open).
   */
  readonly rollups?: readonly TierName[];
  /** Compaction level: 0 for a block cut from the head. */
  readonly level: number;
  /** Seqs of the blocks this one replaces (compaction); those left behind by a crash are deleted at open. */
  readonly sources: readonly number[];
  /** Cold export (export.ts) already wrote this block's data. */
  readonly exported?: boolean;
}

export interface ChunkRef {
  /** 0 for raw values; 0..4 = min, max, sum, count, last in rollup blocks. */
  readonly column: number;
  readonly minT: number;
  readonly maxT: number;
  readonly bytes: Uint8Array;
}

/**
 * Writes a block. Series must be added in Prometheus order (see symbols.ts seriesSortKey). The index is
 * built in memory and written at the end.
 */
export class BlockWriter {
  private fd: number;
  /** Chunk bytes not written yet (version 3: the open page). */
  private readonly buf = new ByteWriter(1 << 20);
  /** Where the file's next byte goes. */
  private fileOffset = 8;
  /** Position of the next chunk byte in the plain chunk bytes (the file offset before version 3). */
  private chunkOffset = 8;
  /** Version 3: the pages written, in order. */
  private readonly pages: { plain: number; stored: number; codec: number }[] = [];
  private readonly symbolIds = new Map<string, number>();
  private readonly series: {
    pairs: string[];
    chunks: { column: number; minT: number; maxT: number; offset: number; length: number }[];
  }[] = [];
  private samples = 0;
  private chunkCount = 0;
  private minT = Number.POSITIVE_INFINITY;
  private maxT = Number.NEGATIVE_INFINITY;

  /** `version`: the format to write; an earlier one only for tests of reading what earlier builds wrote. */
  constructor(
    readonly path: string,
    private readonly version: 2 | 3 = BLOCK_VERSION,
  ) {
    this.fd = openSync(`${path}.tmp`, 'w');
    const header = new Uint8Array(8);
    header.set(Buffer.from(BLOCK_MAGIC), 0);
    header[4] = version;
    writeSync(this.fd, header);
  }

  get seriesCount(): number {
    return this.series.length;
  }

  /** Adds one series (labels sorted by name) and its encoded chunks, in time order per column. */
  addSeries(
    names: readonly string[],
    values: readonly string[],
    chunks: readonly ChunkRef[],
    samples: number,
  ): void {
    const pairs: string[] = [];
    for (let i = 0; i < names.length; i++) {
      pairs.push(names[i]!, values[i]!);
      this.symbolIds.set(names[i]!, 0);
      this.symbolIds.set(values[i]!, 0);
    }
    const metas: { column: number; minT: number; maxT: number; offset: number; length: number }[] = [];
    for (const c of chunks) {
      metas.push({
        column: c.column,
        minT: c.minT,
        maxT: c.maxT,
        offset: this.chunkOffset,
        length: c.bytes.length,
      });
      this.buf.bytes(c.bytes);
      this.chunkOffset += c.bytes.length;
      if (c.minT < this.minT) this.minT = c.minT;
      if (c.maxT > this.maxT) this.maxT = c.maxT;
      this.chunkCount++;
    }
    this.samples += samples;
    this.series.push({ pairs, chunks: metas });
    // A series' chunks never straddle two pages: one read of a series is one page.
    if (this.buf.length >= (this.version >= 3 ? PAGE_BYTES : 1 << 20)) this.flush();
  }

  private flush(): void {
    if (this.buf.length === 0) return;
    const plain = this.buf.view_();
    let stored = plain;
    if (this.version >= 3) {
      const packed = deflateRawSync(plain, { level: 6 });
      const codec = packed.length < plain.length ? PAGE_DEFLATE : PAGE_PLAIN;
      if (codec === PAGE_DEFLATE) stored = packed;
      this.pages.push({ plain: plain.length, stored: stored.length, codec });
    }
    writeSync(this.fd, stored);
    this.fileOffset += stored.length;
    this.buf.reset();
  }

  /** Writes index, meta and footer, syncs and renames into place. Returns the final meta. */
  finish(
    meta: Omit<BlockMeta, 'series' | 'samples' | 'chunks' | 'minT' | 'maxT'> & {
      minT?: number;
      maxT?: number;
    },
  ): BlockMeta {
    this.flush();
    // Symbols sorted, ids by rank.
    const symbols = [...this.symbolIds.keys()].sort();
    for (let i = 0; i < symbols.length; i++) this.symbolIds.set(symbols[i]!, i);
    const minT = meta.minT ?? (this.minT === Number.POSITIVE_INFINITY ? 0 : this.minT);
    const maxT = meta.maxT ?? (this.maxT === Number.NEGATIVE_INFINITY ? 0 : this.maxT);
    const w = new ByteWriter(1 << 20);
    w.uvarint(symbols.length);
    for (const s of symbols) w.string(s);
    w.uvarint(this.series.length);
    const postings = new Map<string, number[]>();
    this.series.forEach((s, id) => {
      w.uvarint(s.pairs.length / 2);
      for (let i = 0; i < s.pairs.length; i += 2) {
        const n = this.symbolIds.get(s.pairs[i]!)!;
        const v = this.symbolIds.get(s.pairs[i + 1]!)!;
        w.uvarint(n);
        w.uvarint(v);
        const key = `${n},${v}`;
        let list = postings.get(key);
        if (!list) {
          list = [];
          postings.set(key, list);
        }
        list.push(id);
      }
      w.uvarint(s.chunks.length);
      let prevEnd = 0;
      for (const c of s.chunks) {
        w.u8(c.column);
        w.svarint(c.minT - minT);
        w.uvarint(c.maxT - c.minT);
        w.uvarint(c.offset - prevEnd);
        w.uvarint(c.length);
        prevEnd = c.offset + c.length;
      }
    });
    const keys = [...postings.keys()];
    w.uvarint(keys.length);
    for (const key of keys) {
      const [n, v] = key.split(',').map(Number) as [number, number];
      const ids = postings.get(key)!;
      w.uvarint(n);
      w.uvarint(v);
      w.uvarint(ids.length);
      let prev = 0;
      for (const id of ids) {
        w.uvarint(id - prev);
        prev = id;
      }
    }
    if (this.version >= 3) {
      w.uvarint(this.pages.length);
      for (const p of this.pages) {
        w.uvarint(p.plain);
        w.uvarint(p.stored);
        w.u8(p.codec);
      }
    }
    // The index is mostly small integers and repeated label strings: deflate halves it or better, and it is
    // inflated once per block load (then cached).
    const plain = w.view_();
    const lenPrefix = new ByteWriter(8);
    lenPrefix.uvarint(plain.length);
    const packed = deflateRawSync(plain, { level: 6 });
    const index = new Uint8Array(lenPrefix.length + packed.length);
    index.set(lenPrefix.view_(), 0);
    index.set(packed, lenPrefix.length);
    const indexOffset = this.fileOffset;
    writeSync(this.fd, index);
    const full: BlockMeta = {
      ...meta,
      minT,
      maxT,
      series: this.series.length,
      samples: this.samples,
      chunks: this.chunkCount,
    } as BlockMeta;
    const metaBytes = Buffer.from(JSON.stringify(full));
    const metaOffset = indexOffset + index.length;
    writeSync(this.fd, metaBytes);
    const footer = Buffer.alloc(FOOTER_BYTES);
    footer.writeBigUInt64LE(BigInt(indexOffset), 0);
    footer.writeUInt32LE(index.length, 8);
    footer.writeUInt32LE(crc32(index), 12);
    footer.writeBigUInt64LE(BigInt(metaOffset), 16);
    footer.writeUInt32LE(metaBytes.length, 24);
    footer.writeUInt32LE(crc32(metaBytes), 28);
    footer.write(BLOCK_MAGIC, 32);
    writeSync(this.fd, footer);
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = -1;
    renameSync(`${this.path}.tmp`, this.path);
    return full;
  }

  /** Gives up: closes the temporary file (the caller deletes it). */
  abort(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** A block's series index, loaded into memory when a query first needs it. */
export class BlockIndex implements PostingsIndex {
  readonly symbols: string[];
  private readonly symbolIds = new Map<string, number>();
  /** Per series: offset of its pairs in `pairs`, and count. */
  readonly pairOff: Uint32Array;
  readonly pairLen: Uint16Array;
  readonly pairs: Uint32Array;
  /** Per series: first chunk index and count in the chunk columns. */
  readonly chunkStart: Uint32Array;
  readonly chunkCount: Uint32Array;
  readonly chunkColumn: Uint8Array;
  readonly chunkMinT: Float64Array;
  readonly chunkMaxT: Float64Array;
  readonly chunkOffset: Float64Array;
  readonly chunkLength: Uint32Array;
  private readonly postingsByName = new Map<number, Map<number, Postings>>();
  private all: Postings | undefined;
  /** Approximate memory held, for the block cache's budget. */
  readonly bytes: number;
  /**
   * Version 3: per page, where its plain bytes start among the chunk offsets, where its stored bytes start in
   * the file, how many there are, and its codec (a sentinel start after the last page); empty before.
   */
  readonly pageStart: Float64Array;
  readonly pageFileOffset: Float64Array;
  readonly pageStored: Uint32Array;
  readonly pageCodec: Uint8Array;

  constructor(data: Uint8Array, blockMinT: number, version = BLOCK_VERSION) {
    const r = new ByteReader(data);
    const nsym = r.uvarint('symbol count');
    this.symbols = new Array<string>(nsym);
    for (let i = 0; i < nsym; i++) {
      const s = r.string('symbol', 1 << 20);
      this.symbols[i] = s;
      this.symbolIds.set(s, i);
    }
    const nseries = r.uvarint('series count');
    this.pairOff = new Uint32Array(nseries);
    this.pairLen = new Uint16Array(nseries);
    this.chunkStart = new Uint32Array(nseries);
    this.chunkCount = new Uint32Array(nseries);
    const pairs: number[] = [];
    const cCol: number[] = [];
    const cMin: number[] = [];
    const cMax: number[] = [];
    const cOff: number[] = [];
    const cLen: number[] = [];
    for (let s = 0; s < nseries; s++) {
      const np = r.uvarint('pair count');
      this.pairOff[s] = pairs.length;
      this.pairLen[s] = np;
      for (let i = 0; i < np; i++) pairs.push(r.uvarint('name'), r.uvarint('value'));
      const nc = r.uvarint('chunk count');
      this.chunkStart[s] = cCol.length;
      this.chunkCount[s] = nc;
      let prevEnd = 0;
      for (let i = 0; i < nc; i++) {
        cCol.push(r.u8('column'));
        const minT = blockMinT + r.svarint('chunk minT');
        cMin.push(minT);
        cMax.push(minT + r.uvarint('chunk span'));
        const off = prevEnd + r.uvarint('chunk offset');
        const len = r.uvarint('chunk length');
        cOff.push(off);
        cLen.push(len);
        prevEnd = off + len;
      }
    }
    this.pairs = Uint32Array.from(pairs);
    this.chunkColumn = Uint8Array.from(cCol);
    this.chunkMinT = Float64Array.from(cMin);
    this.chunkMaxT = Float64Array.from(cMax);
    this.chunkOffset = Float64Array.from(cOff);
    this.chunkLength = Uint32Array.from(cLen);
    const np = r.uvarint('postings count');
    for (let i = 0; i < np; i++) {
      const n = r.uvarint('postings name');
      const v = r.uvarint('postings value');
      const len = r.uvarint('postings length');
      const ids = new Int32Array(len);
      let prev = 0;
      for (let k = 0; k < len; k++) {
        prev += r.uvarint('posting');
        ids[k] = prev;
      }
      let byValue = this.postingsByName.get(n);
      if (!byValue) {
        byValue = new Map();
        this.postingsByName.set(n, byValue);
      }
      byValue.set(v, ids);
    }
    const npages = version >= 3 ? r.uvarint('page count') : 0;
    this.pageStart = new Float64Array(npages + 1);
    this.pageFileOffset = new Float64Array(npages);
    this.pageStored = new Uint32Array(npages);
    this.pageCodec = new Uint8Array(npages);
    let plainAt = 8;
    let fileAt = 8;
    for (let i = 0; i < npages; i++) {
      this.pageStart[i] = plainAt;
      this.pageFileOffset[i] = fileAt;
      plainAt += r.uvarint('page length');
      this.pageStored[i] = r.uvarint('page stored length');
      fileAt += this.pageStored[i]!;
      this.pageCodec[i] = r.u8('page codec');
      if (this.pageCodec[i]! > PAGE_DEFLATE)
        throw new BlockCorruptError(`unknown page codec ${this.pageCodec[i]}`);
    }
    this.pageStart[npages] = plainAt;
    this.bytes = data.length * 3 + nsym * 48 + npages * 32;
  }

  get seriesCount(): number {
    return this.pairOff.length;
  }

  allPostings(): Postings {
    if (!this.all) {
      this.all = new Int32Array(this.seriesCount);
      for (let i = 0; i < this.all.length; i++) this.all[i] = i;
    }
    return this.all;
  }

  labelValues(name: string): readonly string[] {
    const id = this.symbolIds.get(name);
    const byValue = id === undefined ? undefined : this.postingsByName.get(id);
    if (!byValue) return [];
    return [...byValue.keys()].map((v) => this.symbols[v]!);
  }

  labelNames(): string[] {
    return [...this.postingsByName.keys()].map((n) => this.symbols[n]!);
  }

  postings(name: string, value: string): Postings {
    const n = this.symbolIds.get(name);
    const v = this.symbolIds.get(value);
    if (n === undefined || v === undefined) return EMPTY_POSTINGS;
    return this.postingsByName.get(n)?.get(v) ?? EMPTY_POSTINGS;
  }

  private sortKeys: (string | undefined)[] | undefined;

  /** The series' Prometheus sort key (symbols.ts seriesSortKey), computed once per loaded index. */
  sortKey(id: number): string {
    this.sortKeys ??= new Array<string | undefined>(this.seriesCount);
    let key = this.sortKeys[id];
    if (key === undefined) {
      const off = this.pairOff[id]!;
      const n = this.pairLen[id]!;
      key = '';
      for (let i = 0; i < n; i++)
        key += `${this.symbols[this.pairs[off + i * 2]!]}\u0000${this.symbols[this.pairs[off + i * 2 + 1]!]}\u0000`;
      this.sortKeys[id] = key;
    }
    return key;
  }

  /** Labels of series `id`, names sorted. */
  labels(id: number): { names: string[]; values: string[] } {
    const off = this.pairOff[id]!;
    const n = this.pairLen[id]!;
    const names: string[] = [];
    const values: string[] = [];
    for (let i = 0; i < n; i++) {
      names.push(this.symbols[this.pairs[off + i * 2]!]!);
      values.push(this.symbols[this.pairs[off + i * 2 + 1]!]!);
    }
    return { names, values };
  }

  labelSet(id: number): LabelSet {
    const { names, values } = this.labels(id);
    const out: Record<string, string> = {};
    for (let i = 0; i < names.length; i++) out[names[i]!] = values[i]!;
    return out;
  }
}

export class BlockCorruptError extends Error {}

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
