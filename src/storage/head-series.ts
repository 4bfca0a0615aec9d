/**
 * The head's series registry (the base of {@link Head}; see head.ts for the whole picture): labels are interned
 * ({@link SymbolTable}) and kept as (name id, value id) pairs sorted by name id in one shared arena; per-series
 * state lives in typed-array columns indexed by the series ref. A series is found by a hash of its symbol ids
 * (order-independent of how the batch listed its labels), and confirmed by comparing ids. Postings (label pair
 * → sorted refs) answer label matchers.
 *
 * The head is one class split over files as Prometheus splits its head (head_append.go, head_read.go): this
 * file holds the columns and the registry, head-types.ts the head's data types, head-append.ts appending,
 * head-read.ts reading, head-cut.ts cutting and renumbering, head.ts checkpoints and recovery (the head log's
 * narrow view, {@link HeadLogView}).
 */
import { type LabelSet, WellKnownLabel } from '../model/labels.js';
import { XorEncoderColumns } from './codec/xor.js';
import {
  DEFAULT_MAX_CHUNK_SAMPLES,
  type HeadAppendStats,
  type HeadChunk,
  type HeadOptions,
  type OooBuffer,
  type SealedSinceCheckpoint,
} from './head-types.js';
import { ChunkSlab } from './slab.js';
import type { KeyedLabelIds, SeriesRefCache } from './storage.js';
import { SymbolTable } from './symbols.js';

/** Order-independent mix of one label pair's symbol ids (a series hash is the sum of its pairs'). */
export function pairHash(name: number, value: number): number {
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
  owner: HeadSeries | undefined;

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

export class GrowablePostings {
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

export abstract class HeadSeries {
  /** Interned label strings; replaced by a compacted table when the head is renumbered (see compact). */
  protected syms = new SymbolTable();
  protected readonly maxChunkSamples: number;

  // ---- series columns, indexed by ref ----
  protected cap = 0;
  /**
   * Refs handed out so far. Refs of series dropped by a cut are skipped until the head is renumbered (see
   * compact), which also drops the symbols only they used: churn does not grow the head.
   */
  protected refEnd = 0;
  /** Set by compact: refs and symbol ids changed, so the head log's next record must be a snapshot. */
  protected renumbered = false;
  /** Bumped by every renumbering (compact): refs remembered outside the head (HeadRefCache) are then stale. */
  protected gen = 0;
  protected alive = new Uint8Array(0);
  protected labelOff = new Uint32Array(0);
  protected labelLen = new Uint8Array(0);
  protected hashes = new Uint32Array(0);
  protected arena = new Uint32Array(1 << 12);
  protected arenaLen = 0;
  // Open chunk encoder state.
  /** Open chunks live in slab slots; `cSlot` is the slot's handle, -1 when the series has no open chunk. */
  protected readonly slab = new ChunkSlab();
  protected cSlot = new Int32Array(0);
  protected cBits = new Int32Array(0);
  protected cCount = new Int32Array(0);
  protected cMinT = new Float64Array(0);
  protected cEnd = new Float64Array(0);
  /**
   * The Gorilla encoder state of each series' open chunk (previous timestamp and interval, previous value
   * bits, XOR window). `enc.t` is also the series' newest in-order timestamp, which outlives the chunk: the
   * out-of-order rules compare against it.
   */
  protected enc = new XorEncoderColumns(0);
  protected sealed: (HeadChunk[] | undefined)[] = [];
  protected ooo: (OooBuffer | undefined)[] = [];

  // ---- checkpoint bookkeeping (head-log.ts) ----
  /** Bits of the open chunk already written to the head log. */
  protected persistedBits = new Int32Array(0);
  /** Samples of the open chunk already written to the head log. */
  protected persistedCount = new Int32Array(0);
  /** Series touched since the last checkpoint. */
  protected dirty = new Uint8Array(0);
  protected dirtyList: number[] = [];
  /**
   * Sealed since the last checkpoint, in order, with how many of the chunk's bytes the head log already holds
   * (as open-chunk deltas): the log then records only the rest.
   */
  protected sealedSinceCheckpoint: SealedSinceCheckpoint[] = [];
  /** Series whose out-of-order buffer changed since the last checkpoint. */
  protected oooDirty = new Set<number>();
  /** Sealed chunks whose bytes are still in memory (see {@link spill}). */
  protected unspilled: HeadChunk[] = [];
  /** Refs created / symbols interned since the last checkpoint. */
  protected newRefs: number[] = [];
  protected symbolsPersisted = 0;

  // ---- index ----
  /**
   * Live series by the hash of their label pairs: open addressing with linear probing, 2 ints per slot (ref + 1,
   * 0 = empty; the hash, so that a probe touches the slot alone until a hash matches). Series with equal hashes
   * simply occupy several slots and are told apart by their labels. Never more than half full. Dead series
   * leave it when the head drops them ({@link gc}, which rebuilds it). Typed arrays rather than a Map: a
   * uint32 key above 2^30 is a heap number in a Map, one allocation per series and a slower probe.
   */
  protected idxSlots = new Int32Array(2 * 2048);
  protected idxMask = 2047;
  protected idxCount = 0;
  protected postingsMap = new Map<number, Map<number, GrowablePostings>>();
  protected allRefs = new GrowablePostings();
  protected readonly perTenant = new Map<string, number>();
  protected liveSeries = 0;

  /** Newest sample timestamp appended to any series (in order), -Infinity when empty. */
  protected newest = Number.NEGATIVE_INFINITY;

  // Scratch for one series of a batch: (name id, value id) pairs sorted by name id.
  protected scratch = new Uint32Array(256);
  protected tenantName: number;

  constructor(protected readonly opts: HeadOptions) {
    this.maxChunkSamples = opts.maxChunkSamples ?? DEFAULT_MAX_CHUNK_SAMPLES;
    this.tenantName = this.syms.intern(WellKnownLabel.tenant);
    this.grow(1024);
  }

  /** Interned label strings (the table is replaced when the head is renumbered: do not keep it). */
  get symbols(): SymbolTable {
    return this.syms;
  }

  /** Refs handed out so far (dead ones included): every ref is below it. */
  get nextRef(): number {
    return this.refEnd;
  }

  /** Bumped by every renumbering (compact): refs remembered outside the head (HeadRefCache) are then stale. */
  get generation(): number {
    return this.gen;
  }

  /** Newest sample timestamp appended to any series (in order), -Infinity when empty. */
  get maxTime(): number {
    return this.newest;
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
      const ids = this.syms.ids;
      const nameId = ids.get(name) ?? this.syms.intern(name);
      const valueId = ids.get(value) ?? this.syms.intern(value);
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
  protected getOrCreateByIds(
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
        nameId = this.syms.intern(strings[nameSid]!);
        sym[nameSid] = nameId + 1;
      }
      if (nameId === this.tenantName) continue;
      let valueId = sym[valueSid]! - 1;
      if (valueId < 0) {
        valueId = this.syms.intern(value);
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
  protected findOrCreate(
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
  protected indexInsert(ref: number, hash: number): void {
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
  protected indexRebuild(size: number): void {
    while (size < 2 * (this.liveSeries + 1)) size *= 2;
    const slots = new Int32Array(2 * size);
    const mask = size - 1;
    let count = 0;
    for (let ref = 0; ref < this.refEnd; ref++) {
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

  protected sameLabels(ref: number, pairs: Uint32Array, n: number): boolean {
    if (this.labelLen[ref] !== n) return false;
    const off = this.labelOff[ref]!;
    const arena = this.arena;
    for (let i = 0; i < n * 2; i++) if (arena[off + i] !== pairs[i]) return false;
    return true;
  }

  protected create(tenant: string, pairs: Uint32Array, n: number, hash: number): number {
    const ref = this.refEnd++;
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

  protected grow(cap: number): void {
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

  protected markDirty(ref: number): void {
    if (this.dirty[ref] === 0) {
      this.dirty[ref] = 1;
      this.dirtyList.push(ref);
    }
  }

  // ------------------------------------------------------------------------------------------------------
  // Series labels

  isAlive(ref: number): boolean {
    return ref < this.refEnd && this.alive[ref] === 1;
  }

  /** Labels of a series as (names, values) sorted by name. */
  labelsOf(ref: number): { names: string[]; values: string[] } {
    const off = this.labelOff[ref]!;
    const n = this.labelLen[ref]!;
    const names = new Array<string>(n);
    const values = new Array<string>(n);
    // Insertion sort by name: a series has a handful of labels.
    for (let i = 0; i < n; i++) {
      const name = this.syms.strings[this.arena[off + i * 2]!]!;
      const value = this.syms.strings[this.arena[off + i * 2 + 1]!]!;
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

  protected tenantValueOf(ref: number): number {
    const off = this.labelOff[ref]!;
    for (let i = 0; i < this.labelLen[ref]!; i++)
      if (this.arena[off + i * 2] === this.tenantName) return this.arena[off + i * 2 + 1]!;
    return -1;
  }
}

/**
 * Inserts the pair (nameId, valueId) among the first `n` pairs of `scratch`, which stay sorted by name id.
 * Insertion sort: label lists are short and usually arrive in the same order. `scratch` has room for n + 1
 * pairs.
 */
export function insertPairSorted(scratch: Uint32Array, n: number, nameId: number, valueId: number): void {
  let k = n;
  while (k > 0 && scratch[(k - 1) * 2]! > nameId) {
    scratch[k * 2] = scratch[(k - 1) * 2]!;
    scratch[k * 2 + 1] = scratch[(k - 1) * 2 + 1]!;
    k--;
  }
  scratch[k * 2] = nameId;
  scratch[k * 2 + 1] = valueId;
}
