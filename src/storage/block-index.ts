/**
 * A block's series index as a query reads it (the "index" section of the box in block.ts): symbols, series
 * with their chunk references, postings per label pair, and the page table. Separate from the file reader
 * (block.ts), which loads it lazily and drops it under memory pressure, and from the writer.
 */

import type { LabelSet } from '../model/labels.js';
import { ByteReader } from '../protocol/bytes.js';
import { BLOCK_VERSION, BlockCorruptError, PAGE_DEFLATE } from './block-format.js';
import { EMPTY_POSTINGS, type Postings, type PostingsIndex } from './postings.js';

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
