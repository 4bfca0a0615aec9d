/**
 * The head: the most recent data, in memory, for every active series, until it is cut into a block.
 *
 * Series registry: labels are interned ({@link SymbolTable}) and kept as (name id, value id) pairs sorted by
 * name id in one shared arena; per-series state lives in typed-array columns indexed by the series ref. A
 * series is found by a hash of its symbol ids (order-independent of how the batch listed its labels), and
 * confirmed by comparing ids. Postings (label pair → sorted refs) answer label matchers.
 *
 * Samples: each series has one open Gorilla chunk (codec/xor.ts) that appends in place, bit by bit, into a
 * buffer of its own; full chunks are sealed (trimmed copies) and stay in memory until the next cut moves them
 * into a block. A chunk never spans a multiple of the block duration, so a cut never splits one. Samples
 * older than the series' newest (out of order, within the window) or re-written with another value go to a
 * small sorted per-series buffer (`ooo`) that wins over chunk samples of the same timestamp (last write wins).
 *
 * Not safe for concurrent use; JavaScript's single thread is the lock. Appends never allocate per sample.
 *
 * One class over five files, as Prometheus splits its head (head_append.go, head_read.go): head-series.ts
 * (columns, registry, labels) ← head-append.ts ← head-read.ts ← head-cut.ts (cuts, renumbering) ← this file
 * (checkpoint support and recovery). The head log sees only {@link HeadLogView}.
 */
import { appendXorSample } from './codec/xor.js';
import { HeadCutter } from './head-cut.js';
import { pairHash } from './head-series.js';
import {
  chunkBytes,
  type HeadChunk,
  type HeadMemoryStats,
  type OooBuffer,
  SAMPLE_HEADROOM,
  type SealedSinceCheckpoint,
} from './head-types.js';
import type { SpillFile } from './spill.js';
import type { SymbolTable } from './symbols.js';

export { HeadAppender } from './head-append.js';
export { HeadRefCache } from './head-series.js';
export {
  type CutSeries,
  chunkBytes,
  type HeadAppendStats,
  type HeadChunk,
  type HeadMemoryStats,
  type HeadOptions,
  type HeadSeriesSnapshot,
  lowerBound,
  memoryChunk,
  newHeadAppendStats,
  type OooBuffer,
  type SealedSinceCheckpoint,
  sameBits,
} from './head-types.js';

/** What changed in the head since the last checkpoint (see {@link HeadLogView}). */
export interface HeadChanges {
  /** The head was renumbered (compact): refs and symbol ids changed, so the next record must be a snapshot. */
  readonly renumbered: boolean;
  /** Series touched. */
  readonly dirty: readonly number[];
  /** Series created. */
  readonly newRefs: readonly number[];
  /** Chunks sealed, in order. */
  readonly sealed: readonly SealedSinceCheckpoint[];
  /** Series whose out-of-order buffer changed. */
  readonly ooo: ReadonlySet<number>;
  /** Symbols below this id are in the log already. */
  readonly symbolsPersisted: number;
}

/**
 * All the head log (head-log.ts) sees of the head: series and their chunks, what changed since the last
 * checkpoint, and the recovery entry points. The log changes the head only through {@link markPersisted},
 * {@link checkpointWritten} and the restore methods.
 */
export interface HeadLogView {
  readonly symbols: SymbolTable;
  readonly nextRef: number;
  isAlive(ref: number): boolean;
  labelPairs(ref: number): Uint32Array;
  labelsOf(ref: number): { names: string[]; values: string[] };
  sealedOf(ref: number): readonly HeadChunk[];
  oooOf(ref: number): OooBuffer | undefined;
  openBits(ref: number): number;
  openCount(ref: number): number;
  copyOpenBytes(ref: number, from: number, to: number, dst: Uint8Array, at: number): number;
  changes(): HeadChanges;
  /** Bits of the open chunk of `ref` the log already holds. */
  persistedBitsOf(ref: number): number;
  /** The log now holds the open chunk of `ref` up to `bits` (`count` samples). */
  markPersisted(ref: number, bits: number, count: number): void;
  /** A record with every change since the last checkpoint was written (a snapshot also ends a renumbering). */
  checkpointWritten(snapshot: boolean): void;
  restoreSeries(ref: number, pairs: Uint32Array): void;
  restoreSealed(ref: number, chunk: HeadChunk): void;
  restoreOpen(ref: number, bytes: Uint8Array, bits: number, count: number): void;
  restoreOoo(ref: number, t: Float64Array, v: Float64Array): void;
  finishRestore(): void;
}

export class Head extends HeadCutter implements HeadLogView {
  // ------------------------------------------------------------------------------------------------------
  // Checkpoint support (head-log.ts)

  /** Bits written to the open chunk of `ref` (0 when it has none). */
  openBits(ref: number): number {
    return this.cCount[ref]! > 0 ? this.cBits[ref]! : 0;
  }

  openCount(ref: number): number {
    return this.cCount[ref]!;
  }

  /**
   * Copies bytes [from, to) of the open chunk of `ref` into `dst` at `at` (the head log's delta: a few bytes per
   * series, copied without a view object per series). Returns the position after them.
   */
  copyOpenBytes(ref: number, from: number, to: number, dst: Uint8Array, at: number): number {
    const handle = this.cSlot[ref]!;
    const page = this.slab.page(handle);
    const off = this.slab.offset(handle);
    const n = to - from;
    if (n > 32) dst.set(page.subarray(off + from, off + to), at);
    else for (let k = 0; k < n; k++) dst[at + k] = page[off + from + k]!;
    return at + n;
  }

  /**
   * Moves the bytes of chunks sealed since the last call out of memory into `file` (one write). Chunks that
   * left the head meanwhile (cut into a block) are skipped. Returns the bytes spilled.
   */
  spill(file: SpillFile): number {
    const chunks = this.unspilled.filter((c) => c.bytes !== undefined);
    this.unspilled = [];
    if (chunks.length === 0) return 0;
    let offset = file.append(chunks.map((c) => c.bytes!));
    for (const c of chunks) {
      c.file = file;
      c.offset = offset;
      c.bytes = undefined;
      offset += c.size;
    }
    return offset;
  }

  /** After a cut: copies the chunks still in the head that live in another spill file into `file`. */
  respill(file: SpillFile): void {
    const moving: HeadChunk[] = [];
    for (let ref = 0; ref < this.refEnd; ref++) {
      if (this.alive[ref] !== 1) continue;
      for (const c of this.sealed[ref] ?? []) if (c.file && c.file !== file) moving.push(c);
    }
    if (moving.length === 0) return;
    let offset = file.append(moving.map((c) => chunkBytes(c)));
    for (const c of moving) {
      c.file = file;
      c.offset = offset;
      offset += c.size;
    }
  }

  /** Bytes held by open-chunk slots. */
  get slabBytes(): number {
    return this.slab.bytes;
  }

  /** Returns memory no longer needed: open-chunk slab pages left empty. Cheap; the storage runs it per checkpoint. */
  trimMemory(): number {
    return this.slab.trim();
  }

  /**
   * What the head holds, for memory accounting (bench/storage-memory.ts, /metrics): exact byte sizes of its
   * typed arrays, and counts of the JS objects whose size the engine decides (chunk descriptors, postings).
   */
  memoryStats(): HeadMemoryStats {
    const columns = [
      this.alive,
      this.labelOff,
      this.labelLen,
      this.hashes,
      this.cSlot,
      this.cBits,
      this.cCount,
      this.cMinT,
      this.cEnd,
      this.persistedBits,
      this.persistedCount,
      this.dirty,
      this.idxSlots,
    ].reduce((n, a) => n + a.byteLength, this.enc.byteLength);
    let sealedChunks = 0;
    let sealedInMemory = 0;
    let sealedLists = 0;
    let oooBuffers = 0;
    let oooBytes = 0;
    for (let ref = 0; ref < this.refEnd; ref++) {
      const list = this.sealed[ref];
      if (list) {
        sealedLists++;
        sealedChunks += list.length;
        for (const c of list) if (c.bytes) sealedInMemory += c.bytes.byteLength;
      }
      const b = this.ooo[ref];
      if (b) {
        oooBuffers++;
        oooBytes += b.t.byteLength + b.v.byteLength;
      }
    }
    let postingLists = 0;
    let postingBytes = this.allRefs.ids.byteLength;
    for (const byValue of this.postingsMap.values())
      for (const p of byValue.values()) {
        postingLists++;
        postingBytes += p.ids.byteLength;
      }
    let symbolChars = 0;
    for (const str of this.syms.strings) symbolChars += str.length;
    return {
      series: this.liveSeries,
      refs: this.refEnd,
      capacity: this.cap,
      columnBytes: columns,
      arenaBytes: this.arena.byteLength,
      slabBytes: this.slab.bytes,
      sealedLists,
      sealedChunks,
      sealedInMemoryBytes: sealedInMemory,
      oooBuffers,
      oooBytes,
      postingLists,
      postingBytes,
      symbols: this.syms.size,
      symbolChars,
      hashEntries: this.idxCount,
    };
  }

  oooOf(ref: number): OooBuffer | undefined {
    return this.ooo[ref];
  }

  sealedOf(ref: number): readonly HeadChunk[] {
    return this.sealed[ref] ?? [];
  }

  /** Forgets what changed since the last checkpoint (after it was written). */
  clearDirty(): void {
    for (const ref of this.dirtyList) this.dirty[ref] = 0;
    this.dirtyList = [];
    this.sealedSinceCheckpoint = [];
    this.oooDirty.clear();
    this.newRefs = [];
    this.symbolsPersisted = this.syms.size;
  }

  // ---- recovery: rebuilding state from the head log ----

  /** Recreates series `ref` with the given symbol pairs (recovery only; refs must come in creation order). */
  restoreSeries(ref: number, pairs: Uint32Array): void {
    while (this.refEnd < ref) {
      // A ref that died before the snapshot: keep numbering aligned.
      if (this.refEnd >= this.cap) this.grow(this.cap * 2);
      this.alive[this.refEnd] = 0;
      this.refEnd++;
    }
    const n = pairs.length / 2;
    let hash = 0;
    let tenant = '';
    for (let i = 0; i < n; i++) {
      hash = (hash + pairHash(pairs[i * 2]!, pairs[i * 2 + 1]!)) >>> 0;
      if (pairs[i * 2] === this.tenantName) tenant = this.syms.get(pairs[i * 2 + 1]!);
    }
    const got = this.create(tenant, pairs, n, hash);
    if (got !== ref) throw new Error(`head log: series ref ${ref} restored as ${got}`);
    this.indexInsert(ref, hash);
  }

  restoreSealed(ref: number, chunk: HeadChunk): void {
    this.unspilled.push(chunk);
    let list = this.sealed[ref];
    if (!list) {
      list = [];
      this.sealed[ref] = list;
    }
    list.push(chunk);
    if (chunk.maxT > this.enc.t[ref]!) this.enc.t[ref] = chunk.maxT;
    if (chunk.maxT > this.newest) this.newest = chunk.maxT;
  }

  /** Replaces the open chunk of `ref` with these bytes and re-derives the encoder state by decoding it. */
  restoreOpen(ref: number, bytes: Uint8Array, bits: number, count: number): void {
    const len = (bits + 7) >>> 3;
    if (this.cSlot[ref]! >= 0) this.slab.release(this.cSlot[ref]!);
    const handle = this.slab.alloc(len + SAMPLE_HEADROOM);
    const off = this.slab.offset(handle);
    const page = this.slab.page(handle);
    page.set(bytes.subarray(0, len), off);
    // Clear any bits past the end: appends OR into zeroed bytes.
    if (bits & 7) page[off + (bits >>> 3)] = page[off + (bits >>> 3)]! & (0xff << (8 - (bits & 7)));
    this.cSlot[ref] = handle;
    this.cBits[ref] = bits;
    this.cCount[ref] = count;
    this.persistedBits[ref] = bits;
    this.persistedCount[ref] = count;
    // The encoder state is what encoding these samples again leaves behind (the encoding is deterministic, so
    // the scratch copy equals the bytes restored).
    const newestBefore = this.enc.t[ref]!;
    const r = this.probe.reset(page.subarray(off, off + len), count);
    const scratch = new Uint8Array(len + SAMPLE_HEADROOM);
    let pos = 0;
    for (let i = 0; r.next(); i++) {
      if (i === 0) {
        this.cMinT[ref] = r.t;
        const range = this.opts.chunkRangeMs;
        this.cEnd[ref] = (Math.floor(r.t / range) + 1) * range;
      }
      pos = appendXorSample(scratch, pos, this.enc, ref, i === 0, r.t, r.v);
    }
    const newest = this.enc.t[ref]!;
    if (newestBefore > newest) this.enc.t[ref] = newestBefore;
    if (newest > this.newest) this.newest = newest;
  }

  restoreOoo(ref: number, t: Float64Array, v: Float64Array): void {
    if (t.length === 0) {
      this.ooo[ref] = undefined;
      return;
    }
    this.ooo[ref] = { t: t.slice(), v: v.slice(), n: t.length };
  }

  /** After recovery: series with no data (all of it was cut) are dropped. */
  finishRestore(): void {
    this.gc();
    this.clearDirty();
  }

  changes(): HeadChanges {
    return {
      renumbered: this.renumbered,
      dirty: this.dirtyList,
      newRefs: this.newRefs,
      sealed: this.sealedSinceCheckpoint,
      ooo: this.oooDirty,
      symbolsPersisted: this.symbolsPersisted,
    };
  }

  persistedBitsOf(ref: number): number {
    return this.persistedBits[ref]!;
  }

  markPersisted(ref: number, bits: number, count: number): void {
    this.persistedBits[ref] = bits;
    this.persistedCount[ref] = count;
  }

  checkpointWritten(snapshot: boolean): void {
    this.clearDirty();
    if (snapshot) this.renumbered = false;
  }
}
