/**
 * Appending to the head (see head.ts): samples in order go to the series' open Gorilla chunk through the one
 * encoder (codec/xor.ts appendXorSample), encoder state in typed-array columns; full chunks are sealed; samples
 * older than the series' newest (within the out-of-order window) or re-written with another value go to the
 * series' sorted out-of-order buffer. Appends never allocate per sample.
 */
import type { SeriesBatch } from '../model/batch.js';
import { MAX_TIMESTAMP } from './codec/chunk.js';
import { appendXorSample, XorReader } from './codec/xor.js';
import { type HeadRefCache, HeadSeries } from './head-series.js';
import {
  chunkBytes,
  type HeadAppendStats,
  lowerBound,
  MAX_CHUNK_BYTES,
  memoryChunk,
  SAMPLE_HEADROOM,
  sameBits,
} from './head-types.js';
import type { KeyedSeriesBatch } from './storage.js';

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

export abstract class HeadAppender extends HeadSeries {
  // ------------------------------------------------------------------------------------------------------
  // Appending

  /**
   * Appends a batch for `tenant` (its `tenant` label is set to it, whatever the batch said). Empty label
   * values are dropped, as Prometheus drops them.
   */
  append(tenant: string, batch: SeriesBatch, stats: HeadAppendStats): void {
    const tenantValue = this.syms.intern(tenant);
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
    if (cache.generation !== this.gen || cache.owner !== this) {
      cache.refs.fill(-1);
      cache.symbols.fill(0);
      cache.generation = this.gen;
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
        if (tenantValue < 0) tenantValue = this.syms.intern(tenant);
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

  protected appendInOrder(ref: number, t: number, v: number): void {
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
    if (t > this.newest) this.newest = t;
    this.markDirty(ref);
  }

  /** Seals the open chunk of `ref` (if any) into the series' sealed list. */
  protected seal(ref: number): void {
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

  protected oooHas(ref: number, t: number): boolean {
    const b = this.ooo[ref];
    if (!b) return false;
    const i = lowerBound(b.t, b.n, t);
    return i < b.n && b.t[i] === t;
  }

  /** Inserts into the out-of-order buffer; false when the same timestamp and bits are already stored. */
  protected insertOoo(ref: number, t: number, v: number): boolean {
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

  protected readonly probe = new XorReader();

  /** Whether an in-order chunk of `ref` already holds exactly (t, v): replays then change nothing. */
  protected chunkHas(ref: number, t: number, v: number): boolean {
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

  /** Bytes [from, to) of the open chunk, as a view valid until the next append to this series. */
  openBytes(ref: number, from: number, to: number): Uint8Array {
    const handle = this.cSlot[ref]!;
    const off = this.slab.offset(handle);
    return this.slab.page(handle).subarray(off + from, off + to);
  }
}
