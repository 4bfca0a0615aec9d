/**
 * Cutting the head into blocks (see head.ts): a cut in two halves (collect, then remove once the block is on
 * disk), dropping series left without data, and renumbering refs and symbols once dead ones are a fair share.
 */
import { WellKnownLabel } from '../model/labels.js';
import { HeadReader } from './head-read.js';
import { GrowablePostings, pairHash } from './head-series.js';
import { type CutSeries, type HeadChunk, lowerBound, sameBits } from './head-types.js';
import { SymbolTable } from './symbols.js';

export abstract class HeadCutter extends HeadReader {
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
    for (let ref = 0; ref < this.refEnd; ref++) {
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
    const dead = this.refEnd - this.liveSeries;
    if (dead > 0 && (dead >= this.liveSeries / 4 || this.refEnd - dead < this.cap / 4)) this.compact();
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
    const map = new Int32Array(this.refEnd).fill(-1);
    let k = 0;
    for (let ref = 0; ref < this.refEnd; ref++) if (this.alive[ref] === 1) map[ref] = k++;
    // Symbols: 'tenant' keeps id 0, then the ones live series use, in first-use order.
    const oldSyms = this.syms;
    const syms = new SymbolTable();
    const tenantName = syms.intern(WellKnownLabel.tenant);
    const symMap = new Int32Array(oldSyms.size).fill(-1);
    symMap[this.tenantName] = tenantName;
    let arenaNeed = 0;
    for (let ref = 0; ref < this.refEnd; ref++) {
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
      for (let ref = 0; ref < this.refEnd; ref++) {
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
      for (let ref = 0; ref < this.refEnd; ref++) if (map[ref]! >= 0) next[map[ref]!] = a[ref];
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
    for (let ref = 0; ref < this.refEnd; ref++) {
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
    this.syms = syms;
    this.tenantName = tenantName;
    this.symbolsPersisted = 0;
    this.refEnd = n;
    this.cap = cap;
    this.indexRebuild(2048);
    this.renumbered = true;
    this.gen++;
  }

  /** Drops series that hold no data any more; rebuilds the index without them. */
  protected gc(): void {
    let removed = 0;
    for (let ref = 0; ref < this.refEnd; ref++) {
      if (this.alive[ref] !== 1) continue;
      if (this.cCount[ref]! > 0 || (this.sealed[ref]?.length ?? 0) > 0 || (this.ooo[ref]?.n ?? 0) > 0)
        continue;
      this.alive[ref] = 0;
      this.sealed[ref] = undefined;
      this.ooo[ref] = undefined;
      const tenant = this.syms.get(this.tenantValueOf(ref));
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
}
