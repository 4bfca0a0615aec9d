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
 */
import type { SeriesBatch } from '../model/batch.js';
import { type LabelMatcher, type LabelSet, WellKnownLabel } from '../model/labels.js';
import { MAX_TIMESTAMP } from './codec/chunk.js';
import { appendXorSample, XOR_MAX_SAMPLE_BITS, XorEncoderColumns, XorReader } from './codec/xor.js';
import { EMPTY_POSTINGS, type Postings, type PostingsIndex, postingsForMatchers } from './postings.js';
import { ChunkSlab } from './slab.js';
import type { SpillFile } from './spill.js';
import type { KeyedLabelIds, KeyedSeriesBatch, SeriesRefCache } from './storage.js';
import { SymbolTable } from './symbols.js';

/**
 * A sealed, immutable head chunk (Gorilla-encoded). Its `size` bytes are in memory (`bytes`) until the storage
 * spills them to disk (`file` at `offset`, see spill.ts); read them with {@link chunkBytes}. One flat object:
 * a head holds several per series until the next cut.
 */
export interface HeadChunk {
  readonly minT: number;
  readonly maxT: number;
  readonly count: number;
  readonly size: number;
  bytes: Uint8Array | undefined;
  file: SpillFile | undefined;
  offset: number;
}

/** A head chunk held in memory. */
export function memoryChunk(minT: number, maxT: number, count: number, bytes: Uint8Array): HeadChunk {
  return { minT, maxT, count, size: bytes.length, bytes, file: undefined, offset: 0 };
}

/**
 * The bytes of a head chunk, from memory or from its spill file. With `scratch`, a spilled chunk is read into
 * a shared buffer valid until the next such read (for callers that decode it at once).
 */
export function chunkBytes(c: HeadChunk, scratch = false): Uint8Array {
  if (c.bytes) return c.bytes;
  return c.file!.read(c.offset, c.size, scratch);
}

/** See {@link Head.memoryStats}. */
export interface HeadMemoryStats {
  /** Live series, refs handed out (dead ones included) and the column capacity. */
  readonly series: number;
  readonly refs: number;
  readonly capacity: number;
  /** Per-series typed-array columns (series state, open-chunk encoder state, checkpoint bookkeeping, hash index). */
  readonly columnBytes: number;
  /** Label pairs of every series (symbol ids). */
  readonly arenaBytes: number;
  /** Open chunks: the slab's pages. */
  readonly slabBytes: number;
  /** Sealed chunks waiting for the next cut: their descriptors (JS objects), and bytes not spilled yet. */
  readonly sealedLists: number;
  readonly sealedChunks: number;
  readonly sealedInMemoryBytes: number;
  readonly oooBuffers: number;
  readonly oooBytes: number;
  /** Postings: lists (one JS object and typed array each) and their id bytes. */
  readonly postingLists: number;
  readonly postingBytes: number;
  readonly symbols: number;
  readonly symbolChars: number;
  readonly hashEntries: number;
}

/** Out-of-order / overwrite buffer of one series: sorted by timestamp, one entry per timestamp. */
export interface OooBuffer {
  t: Float64Array;
  v: Float64Array;
  n: number;
}

export interface HeadOptions {
  /** Samples older than the series' newest by more than this are refused (counted as too old). */
  readonly oooWindowMs: number;
  /** Chunks never span a multiple of this (the block duration), so that cuts never split a chunk. */
  readonly chunkRangeMs: number;
  /** A chunk is sealed at this many samples. */
  readonly maxChunkSamples?: number;
}

export interface HeadAppendStats {
  series: number;
  samples: number;
  duplicates: number;
  /** Samples refused because they were older than the out-of-order window allows. */
  tooOld: number;
  /** Samples refused because their timestamp is not an integer within ±2^49 ms. */
  invalid: number;
  /** Series created by this batch. */
  created: number;
}

/** What a cut moves out of the head for one series. */
export interface CutSeries {
  readonly ref: number;
  readonly labels: LabelSet;
  readonly chunks: HeadChunk[];
  readonly oooT?: Float64Array;
  readonly oooV?: Float64Array;
}

/** A consistent view of one series' head data, taken at select time; later appends do not disturb it. */
export interface HeadSeriesSnapshot {
  readonly sealed: readonly HeadChunk[];
  readonly open: HeadChunk | undefined;
  readonly oooT: Float64Array | undefined;
  readonly oooV: Float64Array | undefined;
}

const DEFAULT_MAX_CHUNK_SAMPLES = 120;
const MAX_CHUNK_BYTES = 4096;
/** Bytes one more sample may need (see XOR_MAX_SAMPLE_BITS). */
const SAMPLE_HEADROOM = (XOR_MAX_SAMPLE_BITS >>> 3) + 2;

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

/** Order-independent mix of one label pair's symbol ids (a series hash is the sum of its pairs'). */
function pairHash(name: number, value: number): number {
  let h = Math.imul(name ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(value + 0x7f4a7c15, 0xc2b2ae35);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 13;
  return h >>> 0;
}

/**
 * A caller's keys → head refs (see Appender.appendKeyed). `refs[key]` is the ref found for the key when the
 * head's {@link Head.generation} was `generation`, or -1. A ref is used only while its series is alive and the
 * generation unchanged: a cut drops series (alive = 0; refs are never reused until a renumbering) and a
 * renumbering (compact) bumps the generation, which empties the cache.
 */
export class HeadRefCache implements SeriesRefCache {
  refs = new Int32Array(1024).fill(-1);
  /**
   * The caller's string id → the head's symbol id + 1 (0: not looked up yet), for batches that carry
   * {@link KeyedLabelIds}. Emptied with `refs` (a renumbering changes symbol ids too).
   */
  symbols = new Int32Array(1024);
  generation = 0;
  /** The head whose refs these are (a cache handed to another head starts over). */
  owner: Head | undefined;

  forget(key: number): void {
    if (key >= 0 && key < this.refs.length) this.refs[key] = -1;
  }

  /** Room for keys below `n`. */
  ensure(n: number): void {
    if (n <= this.refs.length) return;
    let cap = this.refs.length * 2;
    while (cap < n) cap *= 2;
    const next = new Int32Array(cap).fill(-1);
    next.set(this.refs);
    this.refs = next;
  }
}

class GrowablePostings {
  ids = new Int32Array(4);
  n = 0;
  push(ref: number): void {
    if (this.n === this.ids.length) {
      const next = new Int32Array(this.ids.length * 2);
      next.set(this.ids);
      this.ids = next;
    }
    this.ids[this.n++] = ref;
  }
  view(): Int32Array {
    return this.ids.subarray(0, this.n);
  }
}

export class Head implements PostingsIndex {
  /** Interned label strings; replaced by a compacted table when the head is renumbered (see compact). */
  symbols = new SymbolTable();
  private readonly maxChunkSamples: number;

  // ---- series columns, indexed by ref ----
  private cap = 0;
  /**
   * Refs handed out so far. Refs of series dropped by a cut are skipped until the head is renumbered (see
   * compact), which also drops the symbols only they used: churn does not grow the head.
   */
  nextRef = 0;
  /** Set by compact: refs and symbol ids changed, so the head log's next record must be a snapshot. */
  renumbered = false;
  /** Bumped by every renumbering (compact): refs remembered outside the head (HeadRefCache) are then stale. */
  generation = 0;
  private alive = new Uint8Array(0);
  private labelOff = new Uint32Array(0);
  private labelLen = new Uint8Array(0);
  private hashes = new Uint32Array(0);
  private arena = new Uint32Array(1 << 12);
  private arenaLen = 0;
  // Open chunk encoder state.
  /** Open chunks live in slab slots; `cSlot` is the slot's handle, -1 when the series has no open chunk. */
  private readonly slab = new ChunkSlab();
  private cSlot = new Int32Array(0);
  private cBits = new Int32Array(0);
  private cCount = new Int32Array(0);
  private cMinT = new Float64Array(0);
  private cEnd = new Float64Array(0);
  /**
   * The Gorilla encoder state of each series' open chunk (previous timestamp and interval, previous value
   * bits, XOR window). `enc.t` is also the series' newest in-order timestamp, which outlives the chunk: the
   * out-of-order rules compare against it.
   */
  private enc = new XorEncoderColumns(0);
  private sealed: (HeadChunk[] | undefined)[] = [];
  private ooo: (OooBuffer | undefined)[] = [];

  // ---- checkpoint bookkeeping (head-log.ts) ----
  /** Bits of the open chunk already written to the head log. */
  persistedBits = new Int32Array(0);
  /** Samples of the open chunk already written to the head log. */
  persistedCount = new Int32Array(0);
  /** Series touched since the last checkpoint. */
  private dirty = new Uint8Array(0);
  dirtyList: number[] = [];
  /**
   * Sealed since the last checkpoint, in order, with how many of the chunk's bytes the head log already holds
   * (as open-chunk deltas): the log then records only the rest.
   */
  sealedSinceCheckpoint: { ref: number; chunk: HeadChunk; persistedBytes: number }[] = [];
  /** Series whose out-of-order buffer changed since the last checkpoint. */
  oooDirty = new Set<number>();
  /** Sealed chunks whose bytes are still in memory (see {@link spill}). */
  private unspilled: HeadChunk[] = [];
  /** Refs created / symbols interned since the last checkpoint. */
  newRefs: number[] = [];
  symbolsPersisted = 0;

  // ---- index ----
  /**
   * Live series by the hash of their label pairs: open addressing with linear probing, 2 ints per slot (ref + 1,
   * 0 = empty; the hash, so that a probe touches the slot alone until a hash matches). Series with equal hashes
   * simply occupy several slots and are told apart by their labels. Never more than half full. Dead series
   * leave it when the head drops them ({@link gc}, which rebuilds it). Typed arrays rather than a Map: a
   * uint32 key above 2^30 is a heap number in a Map, one allocation per series and a slower probe.
   */
  private idxSlots = new Int32Array(2 * 2048);
  private idxMask = 2047;
  private idxCount = 0;
  private postingsMap = new Map<number, Map<number, GrowablePostings>>();
  private allRefs = new GrowablePostings();
  private readonly perTenant = new Map<string, number>();
  liveSeries = 0;

  /** Newest sample timestamp appended to any series (in order), -Infinity when empty. */
  maxTime = Number.NEGATIVE_INFINITY;

  // Scratch for one series of a batch: (name id, value id) pairs sorted by name id.
  private scratch = new Uint32Array(256);
  private tenantName: number;

  constructor(private readonly opts: HeadOptions) {
    this.maxChunkSamples = opts.maxChunkSamples ?? DEFAULT_MAX_CHUNK_SAMPLES;
    this.tenantName = this.symbols.intern(WellKnownLabel.tenant);
    this.grow(1024);
  }

  // ------------------------------------------------------------------------------------------------------
  // Appending

  /**
   * Appends a batch for `tenant` (its `tenant` label is set to it, whatever the batch said). Empty label
   * values are dropped, as Prometheus drops them.
   */
  append(tenant: string, batch: SeriesBatch, stats: HeadAppendStats): void {
    const tenantValue = this.symbols.intern(tenant);
    const ts = batch.timestamps;
    const vs = batch.values;
    for (let i = 0; i < batch.series.length; i++) {
      const ref = this.getOrCreate(tenant, tenantValue, batch.series[i]!, stats);
      stats.series++;
      const end = batch.offsets[i + 1]!;
      for (let j = batch.offsets[i]!; j < end; j++) this.appendSample(ref, ts[j]!, vs[j]!, stats);
    }
  }

  /**
   * {@link append} for a batch named by a caller's keys: a key whose ref `cache` remembers (still alive, same
   * generation) costs one array read instead of a label lookup; the others are looked up by their labels and
   * remembered.
   */
  appendKeyed(tenant: string, batch: KeyedSeriesBatch, cache: HeadRefCache, stats: HeadAppendStats): void {
    if (cache.generation !== this.generation || cache.owner !== this) {
      cache.refs.fill(-1);
      cache.symbols.fill(0);
      cache.generation = this.generation;
      cache.owner = this;
    }
    let tenantValue = -1;
    const ts = batch.timestamps;
    const vs = batch.values;
    const keys = batch.keys;
    const offsets = batch.offsets;
    for (let i = 0; i < batch.seriesCount; i++) {
      const key = keys[i]!;
      if (key >= cache.refs.length) cache.ensure(key + 1);
      let ref = cache.refs[key]!;
      if (ref < 0 || this.alive[ref] !== 1) {
        if (tenantValue < 0) tenantValue = this.symbols.intern(tenant);
        const ids = batch.labelIds;
        if (ids) ref = this.getOrCreateByIds(tenant, tenantValue, ids, ids.pairsOf(key), cache, stats);
        else {
          const labels = batch.labels[key];
          if (labels === undefined) throw new Error(`appendKeyed: no labels for series key ${key}`);
          ref = this.getOrCreate(tenant, tenantValue, labels, stats);
        }
        cache.refs[key] = ref;
      }
      stats.series++;
      const end = offsets[i + 1]!;
      for (let j = offsets[i]!; j < end; j++) this.appendSample(ref, ts[j]!, vs[j]!, stats);
    }
  }

  /** The ref of the series with these labels (tenant label replaced), creating it when new. */
  getOrCreate(tenant: string, tenantValue: number, labels: LabelSet, stats?: HeadAppendStats): number {
    let n = 0;
    let scratch = this.scratch;
    let hash = pairHash(this.tenantName, tenantValue);
    for (const name in labels) {
      const value = labels[name]!;
      if (value === '' || name === WellKnownLabel.tenant) continue;
      if ((n + 2) * 2 > scratch.length) {
        const next = new Uint32Array(scratch.length * 2);
        next.set(scratch);
        this.scratch = scratch = next;
      }
      const ids = this.symbols.ids;
      const nameId = ids.get(name) ?? this.symbols.intern(name);
      const valueId = ids.get(value) ?? this.symbols.intern(value);
      insertPairSorted(scratch, n, nameId, valueId);
      n++;
      hash = (hash + pairHash(nameId, valueId)) >>> 0;
    }
    return this.findOrCreate(tenant, tenantValue, n, hash, stats);
  }

  /**
   * {@link getOrCreate} for labels given as (name id, value id) pairs of the caller's strings (`ids`): each
   * caller id is translated to a symbol id once per cache, then an array read.
   */
  private getOrCreateByIds(
    tenant: string,
    tenantValue: number,
    ids: KeyedLabelIds,
    pairs: Int32Array,
    cache: HeadRefCache,
    stats: HeadAppendStats,
  ): number {
    const strings = ids.strings;
    if (cache.symbols.length < strings.length) {
      const next = new Int32Array(Math.max(strings.length, cache.symbols.length * 2));
      next.set(cache.symbols);
      cache.symbols = next;
    }
    const sym = cache.symbols;
    let scratch = this.scratch;
    if (pairs.length + 2 > scratch.length) {
      scratch = new Uint32Array(Math.max(pairs.length + 2, scratch.length * 2));
      this.scratch = scratch;
    }
    let n = 0;
    let hash = pairHash(this.tenantName, tenantValue);
    for (let i = 0; i + 1 < pairs.length; i += 2) {
      const nameSid = pairs[i]!;
      const valueSid = pairs[i + 1]!;
      const value = strings[valueSid]!;
      if (value === '') continue;
      let nameId = sym[nameSid]! - 1;
      if (nameId < 0) {
        nameId = this.symbols.intern(strings[nameSid]!);
        sym[nameSid] = nameId + 1;
      }
      if (nameId === this.tenantName) continue;
      let valueId = sym[valueSid]! - 1;
      if (valueId < 0) {
        valueId = this.symbols.intern(value);
        sym[valueSid] = valueId + 1;
      }
      insertPairSorted(scratch, n, nameId, valueId);
      n++;
      hash = (hash + pairHash(nameId, valueId)) >>> 0;
    }
    return this.findOrCreate(tenant, tenantValue, n, hash, stats);
  }

  /**
   * The series whose pairs, without the tenant's, are `scratch[0..2n)` sorted by name id and whose hash over
   * all pairs (the tenant's included) is `hash`: found, or created.
   */
  private findOrCreate(
    tenant: string,
    tenantValue: number,
    n: number,
    hash: number,
    stats: HeadAppendStats | undefined,
  ): number {
    const scratch = this.scratch;
    // The tenant pair, at its place in name-id order.
    let k = n;
    while (k > 0 && scratch[(k - 1) * 2]! > this.tenantName) {
      scratch[k * 2] = scratch[(k - 1) * 2]!;
      scratch[k * 2 + 1] = scratch[(k - 1) * 2 + 1]!;
      k--;
    }
    scratch[k * 2] = this.tenantName;
    scratch[k * 2 + 1] = tenantValue;
    n++;

    const h = hash | 0;
    const slots = this.idxSlots;
    const mask = this.idxMask;
    let slot = h & mask;
    for (;;) {
      const s = slots[2 * slot]!;
      if (s === 0) break;
      if (slots[2 * slot + 1] === h && this.sameLabels(s - 1, scratch, n)) return s - 1;
      slot = (slot + 1) & mask;
    }
    const ref = this.create(tenant, scratch, n, hash);
    this.indexInsert(ref, hash);
    if (stats) stats.created++;
    return ref;
  }

  /** Adds live series `ref` with label hash `hash` to the hash index (growing it to stay half empty). */
  private indexInsert(ref: number, hash: number): void {
    if ((this.idxCount + 1) * 2 > this.idxMask + 1) this.indexRebuild((this.idxMask + 1) * 2);
    const h = hash | 0;
    const slots = this.idxSlots;
    const mask = this.idxMask;
    let slot = h & mask;
    while (slots[2 * slot] !== 0) slot = (slot + 1) & mask;
    slots[2 * slot] = ref + 1;
    slots[2 * slot + 1] = h;
    this.idxCount++;
  }

  /** Rebuilds the hash index with `size` slots (a power of two; at least twice the live series) from the live series. */
  private indexRebuild(size: number): void {
    while (size < 2 * (this.liveSeries + 1)) size *= 2;
    const slots = new Int32Array(2 * size);
    const mask = size - 1;
    let count = 0;
    for (let ref = 0; ref < this.nextRef; ref++) {
      if (this.alive[ref] !== 1) continue;
      const h = this.hashes[ref]! | 0;
      let slot = h & mask;
      while (slots[2 * slot] !== 0) slot = (slot + 1) & mask;
      slots[2 * slot] = ref + 1;
      slots[2 * slot + 1] = h;
      count++;
    }
    this.idxSlots = slots;
    this.idxMask = mask;
    this.idxCount = count;
  }

  private sameLabels(ref: number, pairs: Uint32Array, n: number): boolean {
    if (this.labelLen[ref] !== n) return false;
    const off = this.labelOff[ref]!;
    const arena = this.arena;
    for (let i = 0; i < n * 2; i++) if (arena[off + i] !== pairs[i]) return false;
    return true;
  }

  private create(tenant: string, pairs: Uint32Array, n: number, hash: number): number {
    const ref = this.nextRef++;
    if (ref >= this.cap) this.grow(this.cap * 2);
    if (this.arenaLen + n * 2 > this.arena.length) {
      let cap = this.arena.length * 2;
      while (cap < this.arenaLen + n * 2) cap *= 2;
      const next = new Uint32Array(cap);
      next.set(this.arena.subarray(0, this.arenaLen));
      this.arena = next;
    }
    this.arena.set(pairs.subarray(0, n * 2), this.arenaLen);
    this.labelOff[ref] = this.arenaLen;
    this.labelLen[ref] = n;
    this.arenaLen += n * 2;
    this.hashes[ref] = hash;
    this.alive[ref] = 1;
    this.enc.t[ref] = Number.NEGATIVE_INFINITY;
    this.cCount[ref] = 0;
    this.cBits[ref] = 0;
    this.persistedBits[ref] = 0;
    this.persistedCount[ref] = 0;
    for (let i = 0; i < n; i++) {
      const name = pairs[i * 2]!;
      let byValue = this.postingsMap.get(name);
      if (!byValue) {
        byValue = new Map();
        this.postingsMap.set(name, byValue);
      }
      const value = pairs[i * 2 + 1]!;
      let p = byValue.get(value);
      if (!p) {
        p = new GrowablePostings();
        byValue.set(value, p);
      }
      p.push(ref);
    }
    this.allRefs.push(ref);
    this.perTenant.set(tenant, (this.perTenant.get(tenant) ?? 0) + 1);
    this.liveSeries++;
    this.newRefs.push(ref);
    return ref;
  }

  private grow(cap: number): void {
    const g = <T extends Float64Array | Int32Array | Uint32Array | Uint8Array>(a: T): T => {
      const next = new (a.constructor as new (n: number) => T)(cap);
      next.set(a);
      return next;
    };
    this.alive = g(this.alive);
    this.labelOff = g(this.labelOff);
    this.labelLen = g(this.labelLen);
    this.hashes = g(this.hashes);
    const oldCap = this.cSlot.length;
    this.cSlot = g(this.cSlot);
    this.cSlot.fill(-1, oldCap);
    this.cBits = g(this.cBits);
    this.cCount = g(this.cCount);
    this.cMinT = g(this.cMinT);
    this.cEnd = g(this.cEnd);
    this.enc.grow(cap);
    this.persistedBits = g(this.persistedBits);
    this.persistedCount = g(this.persistedCount);
    this.dirty = g(this.dirty);
    this.sealed.length = cap;
    this.ooo.length = cap;
    this.cap = cap;
  }

  private markDirty(ref: number): void {
    if (this.dirty[ref] === 0) {
      this.dirty[ref] = 1;
      this.dirtyList.push(ref);
    }
  }

  /** Appends one sample to series `ref`. */
  appendSample(ref: number, t: number, v: number, stats: HeadAppendStats): void {
    if (!(t >= -MAX_TIMESTAMP && t <= MAX_TIMESTAMP) || Math.floor(t) !== t) {
      stats.invalid++;
      return;
    }
    const last = this.enc.t[ref]!;
    if (t > last) {
      this.appendInOrder(ref, t, v);
      stats.samples++;
      return;
    }
    if (t < last - this.opts.oooWindowMs) {
      stats.tooOld++;
      return;
    }
    f64[0] = v;
    if (t === last && u32[1] === this.enc.hi[ref] && u32[0] === this.enc.lo[ref] && !this.oooHas(ref, t)) {
      stats.duplicates++;
      return;
    }
    if (this.insertOoo(ref, t, v)) stats.samples++;
    else stats.duplicates++;
  }

  private appendInOrder(ref: number, t: number, v: number): void {
    let count = this.cCount[ref]!;
    if (count > 0) {
      const full =
        count >= this.maxChunkSamples ||
        t >= this.cEnd[ref]! ||
        (this.cBits[ref]! >>> 3) + SAMPLE_HEADROOM > MAX_CHUNK_BYTES;
      if (full) {
        this.seal(ref);
        count = 0;
      }
    }
    const slab = this.slab;
    let handle: number;
    if (count === 0) {
      handle = slab.alloc(SAMPLE_HEADROOM + 16);
      this.cSlot[ref] = handle;
      this.cMinT[ref] = t;
      const range = this.opts.chunkRangeMs;
      this.cEnd[ref] = (Math.floor(t / range) + 1) * range;
    } else {
      handle = this.cSlot[ref]!;
      const used = (this.cBits[ref]! + 7) >>> 3;
      if (used + SAMPLE_HEADROOM > slab.size(handle)) {
        handle = slab.grow(handle, used);
        this.cSlot[ref] = handle;
      }
    }
    const base = slab.offset(handle) * 8;
    const pos = appendXorSample(slab.page(handle), base + this.cBits[ref]!, this.enc, ref, count === 0, t, v);
    this.cBits[ref] = pos - base;
    this.cCount[ref] = count + 1;
    if (t > this.maxTime) this.maxTime = t;
    this.markDirty(ref);
  }

  /** Seals the open chunk of `ref` (if any) into the series' sealed list. */
  private seal(ref: number): void {
    const count = this.cCount[ref]!;
    if (count === 0) return;
    const handle = this.cSlot[ref]!;
    const from = this.slab.offset(handle);
    const chunk = memoryChunk(
      this.cMinT[ref]!,
      this.enc.t[ref]!,
      count,
      this.slab.page(handle).slice(from, from + ((this.cBits[ref]! + 7) >>> 3)),
    );
    this.unspilled.push(chunk);
    this.slab.release(handle);
    this.cSlot[ref] = -1;
    let list = this.sealed[ref];
    if (!list) {
      list = [];
      this.sealed[ref] = list;
    }
    list.push(chunk);
    this.sealedSinceCheckpoint.push({ ref, chunk, persistedBytes: this.persistedBits[ref]! >>> 3 });
    this.cCount[ref] = 0;
    this.cBits[ref] = 0;
    this.persistedBits[ref] = 0;
    this.persistedCount[ref] = 0;
    this.markDirty(ref);
  }

  private oooHas(ref: number, t: number): boolean {
    const b = this.ooo[ref];
    if (!b) return false;
    const i = lowerBound(b.t, b.n, t);
    return i < b.n && b.t[i] === t;
  }

  /** Inserts into the out-of-order buffer; false when the same timestamp and bits are already stored. */
  private insertOoo(ref: number, t: number, v: number): boolean {
    let b = this.ooo[ref];
    if (!b) {
      b = { t: new Float64Array(8), v: new Float64Array(8), n: 0 };
      this.ooo[ref] = b;
    }
    const i = lowerBound(b.t, b.n, t);
    if (i < b.n && b.t[i] === t) {
      if (sameBits(b.v[i]!, v)) return false;
      b.v[i] = v;
    } else {
      if (this.chunkHas(ref, t, v)) return false;
      if (b.n === b.t.length) {
        const nt = new Float64Array(b.n * 2);
        nt.set(b.t);
        const nv = new Float64Array(b.n * 2);
        nv.set(b.v);
        b.t = nt;
        b.v = nv;
      }
      b.t.copyWithin(i + 1, i, b.n);
      b.v.copyWithin(i + 1, i, b.n);
      b.t[i] = t;
      b.v[i] = v;
      b.n++;
    }
    this.oooDirty.add(ref);
    this.markDirty(ref);
    return true;
  }

  private readonly probe = new XorReader();

  /** Whether an in-order chunk of `ref` already holds exactly (t, v): replays then change nothing. */
  private chunkHas(ref: number, t: number, v: number): boolean {
    const check = (bytes: Uint8Array, count: number): boolean => {
      const r = this.probe.reset(bytes, count);
      while (r.next()) {
        if (r.t === t) return sameBits(r.v, v);
        if (r.t > t) return false;
      }
      return false;
    };
    const count = this.cCount[ref]!;
    if (count > 0 && t >= this.cMinT[ref]!)
      return check(this.openBytes(ref, 0, (this.cBits[ref]! + 7) >>> 3), count);
    const list = this.sealed[ref];
    if (list) {
      for (let i = list.length - 1; i >= 0; i--) {
        const c = list[i]!;
        if (t > c.maxT) return false;
        if (t >= c.minT) return check(chunkBytes(c), c.count);
      }
    }
    return false;
  }

  // ------------------------------------------------------------------------------------------------------
  // Reading

  isAlive(ref: number): boolean {
    return ref < this.nextRef && this.alive[ref] === 1;
  }

  /** Labels of a series as (names, values) sorted by name. */
  labelsOf(ref: number): { names: string[]; values: string[] } {
    const off = this.labelOff[ref]!;
    const n = this.labelLen[ref]!;
    const names = new Array<string>(n);
    const values = new Array<string>(n);
    // Insertion sort by name: a series has a handful of labels.
    for (let i = 0; i < n; i++) {
      const name = this.symbols.strings[this.arena[off + i * 2]!]!;
      const value = this.symbols.strings[this.arena[off + i * 2 + 1]!]!;
      let k = i;
      while (k > 0 && names[k - 1]! > name) {
        names[k] = names[k - 1]!;
        values[k] = values[k - 1]!;
        k--;
      }
      names[k] = name;
      values[k] = value;
    }
    return { names, values };
  }

  /** Raw symbol pairs of a series (for the head log). */
  labelPairs(ref: number): Uint32Array {
    const off = this.labelOff[ref]!;
    return this.arena.subarray(off, off + this.labelLen[ref]! * 2);
  }

  labelSet(ref: number): LabelSet {
    const { names, values } = this.labelsOf(ref);
    const out: Record<string, string> = {};
    for (let i = 0; i < names.length; i++) out[names[i]!] = values[i]!;
    return out;
  }

  /** Oldest and newest timestamps of a series' head data (or +Inf/-Inf when it has none). */
  timeRange(ref: number): [number, number] {
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    const list = this.sealed[ref];
    if (list && list.length > 0) {
      min = list[0]!.minT;
      max = list[list.length - 1]!.maxT;
    }
    if (this.cCount[ref]! > 0) {
      min = Math.min(min, this.cMinT[ref]!);
      max = Math.max(max, this.enc.t[ref]!);
    }
    const b = this.ooo[ref];
    if (b && b.n > 0) {
      min = Math.min(min, b.t[0]!);
      max = Math.max(max, b.t[b.n - 1]!);
    }
    return [min, max];
  }

  snapshot(ref: number): HeadSeriesSnapshot {
    const count = this.cCount[ref]!;
    const b = this.ooo[ref];
    return {
      sealed: this.sealed[ref] ? [...this.sealed[ref]!] : [],
      open:
        count > 0
          ? // A copy: the slot is reused once the chunk is sealed.
            memoryChunk(
              this.cMinT[ref]!,
              this.enc.t[ref]!,
              count,
              this.openBytes(ref, 0, (this.cBits[ref]! + 7) >>> 3).slice(),
            )
          : undefined,
      oooT: b && b.n > 0 ? b.t.slice(0, b.n) : undefined,
      oooV: b && b.n > 0 ? b.v.slice(0, b.n) : undefined,
    };
  }

  activeSeries(tenant?: string): number {
    return tenant === undefined ? this.liveSeries : (this.perTenant.get(tenant) ?? 0);
  }

  // PostingsIndex
  allPostings(): Postings {
    return this.allRefs.view();
  }

  labelValues(name: string): readonly string[] {
    const id = this.symbols.lookup(name);
    const byValue = id < 0 ? undefined : this.postingsMap.get(id);
    if (!byValue) return [];
    const out: string[] = [];
    for (const [v, p] of byValue) if (p.n > 0) out.push(this.symbols.get(v));
    return out;
  }

  labelNames(): string[] {
    const out: string[] = [];
    for (const [n, byValue] of this.postingsMap) {
      for (const p of byValue.values()) {
        if (p.n > 0) {
          out.push(this.symbols.get(n));
          break;
        }
      }
    }
    return out;
  }

  postings(name: string, value: string): Postings {
    const n = this.symbols.lookup(name);
    const v = this.symbols.lookup(value);
    if (n < 0 || v < 0) return EMPTY_POSTINGS;
    return this.postingsMap.get(n)?.get(v)?.view() ?? EMPTY_POSTINGS;
  }

  select(matchers: readonly LabelMatcher[]): Postings {
    return postingsForMatchers(this, matchers);
  }

  // ------------------------------------------------------------------------------------------------------
  // Cutting into blocks, garbage collection

  /**
   * First half of a cut: collects (without removing) every sample older than `boundary` — sealed chunks ending
   * before it, open chunks that lie entirely before it (sealed now: chunks never span a multiple of the chunk
   * range, so such boundaries never split one), and copies of the out-of-order samples before it. The head
   * keeps serving them until {@link finishCut} removes them, once the block holding them is on disk; appends
   * may go on in between.
   */
  prepareCut(boundary: number): CutSeries[] {
    const out: CutSeries[] = [];
    for (let ref = 0; ref < this.nextRef; ref++) {
      if (this.alive[ref] !== 1) continue;
      if (this.cCount[ref]! > 0 && this.enc.t[ref]! < boundary && this.cEnd[ref]! <= boundary) this.seal(ref);
      const chunks: HeadChunk[] = [];
      const list = this.sealed[ref];
      if (list) for (let k = 0; k < list.length && list[k]!.maxT < boundary; k++) chunks.push(list[k]!);
      let oooT: Float64Array | undefined;
      let oooV: Float64Array | undefined;
      const b = this.ooo[ref];
      if (b && b.n > 0 && b.t[0]! < boundary) {
        const k = lowerBound(b.t, b.n, boundary);
        oooT = b.t.slice(0, k);
        oooV = b.v.slice(0, k);
      }
      if (chunks.length > 0 || oooT) out.push({ ref, labels: this.labelSet(ref), chunks, oooT, oooV });
    }
    return out;
  }

  /**
   * Second half of a cut: removes what {@link prepareCut} collected. Out-of-order samples rewritten since
   * (another value for the same timestamp) stay: they are newer than the block. Series left with no data are
   * dropped from the head.
   */
  finishCut(cut: readonly CutSeries[]): void {
    const moved = new Set<HeadChunk>();
    for (const c of cut) {
      const list = this.sealed[c.ref];
      if (list && c.chunks.length > 0) {
        let k = 0;
        while (k < list.length && k < c.chunks.length && list[k] === c.chunks[k]) moved.add(list[k++]!);
        list.splice(0, k);
      }
      const b = this.ooo[c.ref];
      if (b && c.oooT) {
        let w = 0;
        let j = 0;
        for (let i = 0; i < b.n; i++) {
          const t = b.t[i]!;
          while (j < c.oooT.length && c.oooT[j]! < t) j++;
          const same = j < c.oooT.length && c.oooT[j] === t && sameBits(c.oooV![j]!, b.v[i]!);
          if (same) continue;
          b.t[w] = t;
          b.v[w] = b.v[i]!;
          w++;
        }
        b.n = w;
        if (w === 0) this.ooo[c.ref] = undefined;
      }
    }
    // Chunks now in the block need not be recorded by the head log, nor spilled.
    this.sealedSinceCheckpoint = this.sealedSinceCheckpoint.filter((s) => !moved.has(s.chunk));
    this.unspilled = this.unspilled.filter((c) => !moved.has(c));
    this.gc();
    // Series that stopped (churn) leave dead refs and symbols behind: renumber once they are a fair share.
    const dead = this.nextRef - this.liveSeries;
    if (dead > 0 && (dead >= this.liveSeries / 4 || this.nextRef - dead < this.cap / 4)) this.compact();
  }

  /**
   * Renumbers the head: live series get refs 0..n-1 in their current order, symbols only they use get ids
   * from 0 ('tenant' first), and the columns, label arena, postings and hash index are rebuilt at the size
   * they need. Series and samples are unchanged; queries see the same data. Refs and symbol ids are internal
   * (nothing outside the head keeps them across a cut), but the head log records them: the next record must
   * be a snapshot (a cut always rotates the log; {@link renumbered} says so).
   */
  compact(): void {
    const n = this.liveSeries;
    const map = new Int32Array(this.nextRef).fill(-1);
    let k = 0;
    for (let ref = 0; ref < this.nextRef; ref++) if (this.alive[ref] === 1) map[ref] = k++;
    // Symbols: 'tenant' keeps id 0, then the ones live series use, in first-use order.
    const oldSyms = this.symbols;
    const syms = new SymbolTable();
    const tenantName = syms.intern(WellKnownLabel.tenant);
    const symMap = new Int32Array(oldSyms.size).fill(-1);
    symMap[this.tenantName] = tenantName;
    let arenaNeed = 0;
    for (let ref = 0; ref < this.nextRef; ref++) {
      if (map[ref]! < 0) continue;
      const off = this.labelOff[ref]!;
      const len = this.labelLen[ref]! * 2;
      arenaNeed += len;
      for (let i = 0; i < len; i++) {
        const id = this.arena[off + i]!;
        if (symMap[id]! < 0) symMap[id] = syms.intern(oldSyms.get(id));
      }
    }
    const cap = Math.max(1024, 2 ** Math.ceil(Math.log2(Math.max(1, n) * 1.25)));
    const moveCol = <T extends Float64Array | Int32Array | Uint32Array | Uint8Array>(
      a: T,
      fill?: number,
    ): T => {
      const next = new (a.constructor as new (len: number) => T)(cap);
      if (fill !== undefined) next.fill(fill);
      for (let ref = 0; ref < this.nextRef; ref++) {
        const to = map[ref]!;
        if (to >= 0) next[to] = a[ref]!;
      }
      return next;
    };
    this.alive = moveCol(this.alive);
    this.cSlot = moveCol(this.cSlot, -1);
    this.cBits = moveCol(this.cBits);
    this.cCount = moveCol(this.cCount);
    this.cMinT = moveCol(this.cMinT);
    this.cEnd = moveCol(this.cEnd);
    this.enc.renumber(map, cap);
    this.persistedBits = moveCol(this.persistedBits);
    this.persistedCount = moveCol(this.persistedCount);
    this.dirty = moveCol(this.dirty);
    const moveList = <T>(a: (T | undefined)[]): (T | undefined)[] => {
      const next = new Array<T | undefined>(cap);
      for (let ref = 0; ref < this.nextRef; ref++) if (map[ref]! >= 0) next[map[ref]!] = a[ref];
      return next;
    };
    this.sealed = moveList(this.sealed);
    this.ooo = moveList(this.ooo);
    // Labels: a compact arena of remapped pairs (still sorted by name id? re-sorted: ids changed).
    const arena = new Uint32Array(Math.max(1 << 12, arenaNeed * 2));
    const labelOff = new Uint32Array(cap);
    const labelLen = new Uint8Array(cap);
    const hashes = new Uint32Array(cap);
    let arenaLen = 0;
    this.postingsMap = new Map();
    this.allRefs = new GrowablePostings();
    for (let ref = 0; ref < this.nextRef; ref++) {
      const to = map[ref]!;
      if (to < 0) continue;
      const off = this.labelOff[ref]!;
      const pairs = this.labelLen[ref]!;
      // Insertion sort of the remapped pairs by name id (a series has a handful).
      for (let i = 0; i < pairs; i++) {
        const name = symMap[this.arena[off + i * 2]!]!;
        const value = symMap[this.arena[off + i * 2 + 1]!]!;
        let j = i;
        while (j > 0 && arena[arenaLen + (j - 1) * 2]! > name) {
          arena[arenaLen + j * 2] = arena[arenaLen + (j - 1) * 2]!;
          arena[arenaLen + j * 2 + 1] = arena[arenaLen + (j - 1) * 2 + 1]!;
          j--;
        }
        arena[arenaLen + j * 2] = name;
        arena[arenaLen + j * 2 + 1] = value;
      }
      labelOff[to] = arenaLen;
      labelLen[to] = pairs;
      let hash = 0;
      for (let i = 0; i < pairs; i++) {
        const name = arena[arenaLen + i * 2]!;
        const value = arena[arenaLen + i * 2 + 1]!;
        hash = (hash + pairHash(name, value)) >>> 0;
        let byValue = this.postingsMap.get(name);
        if (!byValue) {
          byValue = new Map();
          this.postingsMap.set(name, byValue);
        }
        let p = byValue.get(value);
        if (!p) {
          p = new GrowablePostings();
          byValue.set(value, p);
        }
        p.push(to);
      }
      hashes[to] = hash;
      this.allRefs.push(to);
      arenaLen += pairs * 2;
    }
    this.arena = arena;
    this.arenaLen = arenaLen;
    this.labelOff = labelOff;
    this.labelLen = labelLen;
    this.hashes = hashes;
    // Checkpoint bookkeeping follows the refs (the next record is a snapshot anyway).
    const remap = (refs: number[]) => refs.filter((r) => map[r]! >= 0).map((r) => map[r]!);
    this.dirtyList = remap(this.dirtyList);
    this.newRefs = remap(this.newRefs);
    this.sealedSinceCheckpoint = this.sealedSinceCheckpoint
      .filter((e) => map[e.ref]! >= 0)
      .map((e) => ({ ...e, ref: map[e.ref]! }));
    this.oooDirty = new Set(remap([...this.oooDirty]));
    this.symbols = syms;
    this.tenantName = tenantName;
    this.symbolsPersisted = 0;
    this.nextRef = n;
    this.cap = cap;
    this.indexRebuild(2048);
    this.renumbered = true;
    this.generation++;
  }

  /** Drops series that hold no data any more; rebuilds the index without them. */
  private gc(): void {
    let removed = 0;
    for (let ref = 0; ref < this.nextRef; ref++) {
      if (this.alive[ref] !== 1) continue;
      if (this.cCount[ref]! > 0 || (this.sealed[ref]?.length ?? 0) > 0 || (this.ooo[ref]?.n ?? 0) > 0)
        continue;
      this.alive[ref] = 0;
      this.sealed[ref] = undefined;
      this.ooo[ref] = undefined;
      const tenant = this.symbols.get(this.tenantValueOf(ref));
      this.perTenant.set(tenant, (this.perTenant.get(tenant) ?? 1) - 1);
      removed++;
    }
    if (removed === 0) return;
    this.liveSeries -= removed;
    this.indexRebuild(2048);
    for (const byValue of this.postingsMap.values()) {
      for (const [v, p] of byValue) {
        let k = 0;
        for (let i = 0; i < p.n; i++) if (this.alive[p.ids[i]!] === 1) p.ids[k++] = p.ids[i]!;
        p.n = k;
        if (k === 0) byValue.delete(v);
      }
    }
    let k = 0;
    const all = this.allRefs;
    for (let i = 0; i < all.n; i++) if (this.alive[all.ids[i]!] === 1) all.ids[k++] = all.ids[i]!;
    all.n = k;
  }

  private tenantValueOf(ref: number): number {
    const off = this.labelOff[ref]!;
    for (let i = 0; i < this.labelLen[ref]!; i++)
      if (this.arena[off + i * 2] === this.tenantName) return this.arena[off + i * 2 + 1]!;
    return -1;
  }

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

  /** Bytes [from, to) of the open chunk, as a view valid until the next append to this series. */
  openBytes(ref: number, from: number, to: number): Uint8Array {
    const handle = this.cSlot[ref]!;
    const off = this.slab.offset(handle);
    return this.slab.page(handle).subarray(off + from, off + to);
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
    for (let ref = 0; ref < this.nextRef; ref++) {
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
    for (let ref = 0; ref < this.nextRef; ref++) {
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
    for (const str of this.symbols.strings) symbolChars += str.length;
    return {
      series: this.liveSeries,
      refs: this.nextRef,
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
      symbols: this.symbols.size,
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
    this.symbolsPersisted = this.symbols.size;
  }

  // ---- recovery: rebuilding state from the head log ----

  /** Recreates series `ref` with the given symbol pairs (recovery only; refs must come in creation order). */
  restoreSeries(ref: number, pairs: Uint32Array): void {
    while (this.nextRef < ref) {
      // A ref that died before the snapshot: keep numbering aligned.
      if (this.nextRef >= this.cap) this.grow(this.cap * 2);
      this.alive[this.nextRef] = 0;
      this.nextRef++;
    }
    const n = pairs.length / 2;
    let hash = 0;
    let tenant = '';
    for (let i = 0; i < n; i++) {
      hash = (hash + pairHash(pairs[i * 2]!, pairs[i * 2 + 1]!)) >>> 0;
      if (pairs[i * 2] === this.tenantName) tenant = this.symbols.get(pairs[i * 2 + 1]!);
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
    if (chunk.maxT > this.maxTime) this.maxTime = chunk.maxT;
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
    if (newest > this.maxTime) this.maxTime = newest;
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
}

export function lowerBound(ts: Float64Array, n: number, t: number, lo = 0): number {
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ts[mid]! < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const cmp = new Float64Array(2);
const cmpBits = new Uint32Array(cmp.buffer);

export function sameBits(a: number, b: number): boolean {
  cmp[0] = a;
  cmp[1] = b;
  return cmpBits[0] === cmpBits[2] && cmpBits[1] === cmpBits[3];
}

/**
 * Inserts the pair (nameId, valueId) among the first `n` pairs of `scratch`, which stay sorted by name id.
 * Insertion sort: label lists are short and usually arrive in the same order. `scratch` has room for n + 1
 * pairs.
 */
function insertPairSorted(scratch: Uint32Array, n: number, nameId: number, valueId: number): void {
  let k = n;
  while (k > 0 && scratch[(k - 1) * 2]! > nameId) {
    scratch[k * 2] = scratch[(k - 1) * 2]!;
    scratch[k * 2 + 1] = scratch[(k - 1) * 2 + 1]!;
    k--;
  }
  scratch[k * 2] = nameId;
  scratch[k * 2 + 1] = valueId;
}
