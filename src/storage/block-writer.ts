/**
 * Writes a block file in the format of the box in block.ts: chunks in pages, then the index, meta and
 * footer. Separate from the readers (block.ts, block-index.ts): writing happens once per block, at a cut or
 * a compaction, and shares only the format's constants with them.
 */
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { crc32, deflateRawSync } from 'node:zlib';
import { ByteWriter } from '../protocol/bytes.js';
import {
  BLOCK_MAGIC,
  BLOCK_VERSION,
  type BlockMeta,
  type ChunkRef,
  FOOTER_BYTES,
  PAGE_BYTES,
  PAGE_DEFLATE,
  PAGE_PLAIN,
} from './block-format.js';

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
