/**
 * Sample iterators over the head, blocks and merges of them. None allocates per sample: chunk decoders write
 * into buffers owned by the iterator, fields are read after `next`/`seek`.
 *
 * Precedence for equal timestamps (last write wins, docs/storage.md): a head's out-of-order buffer over its
 * chunks, the head over every block, a newer block (higher seq) over an older one.
 */

import type { LabelSet } from '../model/labels.js';
import type { BlockReader } from './block.js';
import { decodeChunk, SampleBuffer } from './codec/chunk.js';
import { XorReader } from './codec/xor.js';
import { chunkBytes, type HeadChunk, type HeadSeriesSnapshot, lowerBound } from './head.js';
import type { SampleArrays, SampleIterator, SelectedSeries } from './storage.js';

export const EMPTY_ITERATOR: SampleIterator = { next: () => false, seek: () => false, t: 0, v: 0 };

/** The head's samples of one series within [minT, maxT]: in-order chunks merged with the out-of-order buffer. */
export class HeadIterator implements SampleIterator {
  t = 0;
  v = 0;
  private readonly chunks: HeadChunk[];
  private ci = -1;
  private readonly reader = new XorReader();
  private inValid = false;
  private oi = 0;
  private started = false;

  constructor(
    private readonly snap: HeadSeriesSnapshot,
    private readonly minT: number,
    private readonly maxT: number,
  ) {
    this.chunks = snap.open ? [...snap.sealed, snap.open] : [...snap.sealed];
  }

  /** Advances the in-order stream to its next sample with t >= minT (or past the last chunk). */
  private advanceIn(target: number): void {
    for (;;) {
      if (this.ci >= 0 && this.reader.next()) {
        if (this.reader.t >= target) {
          this.inValid = true;
          return;
        }
        continue;
      }
      // Next chunk that can hold a sample >= target.
      do this.ci++;
      while (this.ci < this.chunks.length && this.chunks[this.ci]!.maxT < target);
      if (this.ci >= this.chunks.length) {
        this.inValid = false;
        return;
      }
      const c = this.chunks[this.ci]!;
      this.reader.reset(chunkBytes(c), c.count);
    }
  }

  private pick(): boolean {
    const ot = this.snap.oooT;
    const hasO = ot !== undefined && this.oi < ot.length;
    const it = this.inValid ? this.reader.t : Number.POSITIVE_INFINITY;
    const o = hasO ? ot![this.oi]! : Number.POSITIVE_INFINITY;
    if (!this.inValid && !hasO) return false;
    if (o <= it) {
      this.t = o;
      this.v = this.snap.oooV![this.oi]!;
    } else {
      this.t = it;
      this.v = this.reader.v;
    }
    if (this.t > this.maxT) return false;
    return true;
  }

  next(): boolean {
    if (!this.started) {
      this.started = true;
      this.advanceIn(this.minT);
      const ot = this.snap.oooT;
      if (ot) while (this.oi < ot.length && ot[this.oi]! < this.minT) this.oi++;
      return this.pick();
    }
    const cur = this.t;
    if (this.inValid && this.reader.t === cur) this.advanceIn(cur + 1);
    const ot = this.snap.oooT;
    if (ot && this.oi < ot.length && ot[this.oi] === cur) this.oi++;
    return this.pick();
  }

  seek(t: number): boolean {
    if (!this.started) {
      this.started = true;
      this.advanceIn(Math.max(t, this.minT));
      const ot = this.snap.oooT;
      if (ot) while (this.oi < ot.length && ot[this.oi]! < Math.max(t, this.minT)) this.oi++;
      return this.pick();
    }
    if (this.t >= t) return this.pick();
    if (this.inValid && this.reader.t < t) this.advanceIn(t);
    const ot = this.snap.oooT;
    if (ot) while (this.oi < ot.length && ot[this.oi]! < t) this.oi++;
    return this.pick();
  }
}

/** One column of one series in a block, within [minT, maxT]. */
export class BlockIterator implements SampleIterator {
  t = 0;
  v = 0;
  private readonly buf = new SampleBuffer(128);
  private ci: number;
  private i = 0;
  private data: Uint8Array | undefined;
  private dataOffset = 0;

  constructor(
    private readonly block: BlockReader,
    private readonly series: number,
    private readonly column: number,
    private readonly minT: number,
    private readonly maxT: number,
  ) {
    const idx = block.index();
    this.ci = idx.chunkStart[series]! - 1;
    this.buf.n = 0;
  }

  private loadNext(target: number): boolean {
    const idx = this.block.index();
    const end = idx.chunkStart[this.series]! + idx.chunkCount[this.series]!;
    for (;;) {
      this.ci++;
      if (this.ci >= end) return false;
      if (idx.chunkColumn[this.ci] !== this.column || idx.chunkMaxT[this.ci]! < target) continue;
      if (idx.chunkMinT[this.ci]! > this.maxT) return false;
      if (!this.data) {
        // One read for all the series' chunks: they are contiguous.
        const first = idx.chunkStart[this.series]!;
        const last = end - 1;
        this.dataOffset = idx.chunkOffset[first]!;
        this.data = this.block.read(
          this.dataOffset,
          idx.chunkOffset[last]! + idx.chunkLength[last]! - this.dataOffset,
        );
      }
      const off = idx.chunkOffset[this.ci]! - this.dataOffset;
      decodeChunk(
        this.data.subarray(off, off + idx.chunkLength[this.ci]!),
        this.buf,
        this.block.version >= 2 ? idx.chunkMinT[this.ci]! : undefined,
      );
      this.i = 0;
      while (this.i < this.buf.n && this.buf.t[this.i]! < target) this.i++;
      if (this.i < this.buf.n) return true;
    }
  }

  private at(): boolean {
    this.t = this.buf.t[this.i]!;
    this.v = this.buf.v[this.i]!;
    return this.t <= this.maxT;
  }

  private started = false;

  next(): boolean {
    if (!this.started) {
      this.started = true;
      return this.loadNext(this.minT) && this.at();
    }
    this.i++;
    if (this.i < this.buf.n) return this.at();
    return this.loadNext(this.minT) && this.at();
  }

  seek(t: number): boolean {
    if (!this.started) {
      this.started = true;
      return this.loadNext(Math.max(t, this.minT)) && this.at();
    }
    if (this.i < this.buf.n && this.t >= t) return this.t <= this.maxT;
    while (this.i < this.buf.n && this.buf.t[this.i]! < t) this.i++;
    if (this.i < this.buf.n) return this.at();
    return this.loadNext(t) && this.at();
  }
}

/**
 * Merges iterators ordered from lowest to highest precedence: each timestamp appears once, with the value
 * of the highest-precedence child that has it.
 */
export class MergeIterator implements SampleIterator {
  t = 0;
  v = 0;
  private readonly valid: Uint8Array;
  private started = false;

  constructor(private readonly children: SampleIterator[]) {
    this.valid = new Uint8Array(children.length);
  }

  private pick(): boolean {
    let best = Number.POSITIVE_INFINITY;
    let bi = -1;
    for (let i = 0; i < this.children.length; i++) {
      if (this.valid[i] === 0) continue;
      const t = this.children[i]!.t;
      if (t <= best) {
        // Later children win ties: they have higher precedence.
        best = t;
        bi = i;
      }
    }
    if (bi < 0) return false;
    this.t = best;
    this.v = this.children[bi]!.v;
    return true;
  }

  next(): boolean {
    if (!this.started) {
      this.started = true;
      for (let i = 0; i < this.children.length; i++) this.valid[i] = this.children[i]!.next() ? 1 : 0;
      return this.pick();
    }
    const cur = this.t;
    for (let i = 0; i < this.children.length; i++) {
      if (this.valid[i] === 1 && this.children[i]!.t === cur)
        this.valid[i] = this.children[i]!.next() ? 1 : 0;
    }
    return this.pick();
  }

  seek(t: number): boolean {
    if (!this.started) {
      this.started = true;
      for (let i = 0; i < this.children.length; i++) this.valid[i] = this.children[i]!.seek(t) ? 1 : 0;
      return this.pick();
    }
    if (this.t >= t) return this.pick();
    for (let i = 0; i < this.children.length; i++) {
      if (this.valid[i] === 1 && this.children[i]!.t < t) this.valid[i] = this.children[i]!.seek(t) ? 1 : 0;
    }
    return this.pick();
  }
}

/** Iterates arrays (materialized results such as rollups). */
export class ArrayIterator implements SampleIterator {
  t = 0;
  v = 0;
  private i = -1;

  constructor(
    private readonly ts: Float64Array,
    private readonly vs: Float64Array,
    private readonly n = ts.length,
  ) {}

  next(): boolean {
    if (this.i + 1 >= this.n) {
      this.i = this.n;
      return false;
    }
    this.i++;
    this.t = this.ts[this.i]!;
    this.v = this.vs[this.i]!;
    return true;
  }

  seek(t: number): boolean {
    if (this.i >= 0 && this.i < this.n && this.t >= t) return true;
    const lo = lowerBound(this.ts, this.n, t, Math.max(this.i, 0));
    this.i = lo;
    if (lo >= this.n) return false;
    this.t = this.ts[lo]!;
    this.v = this.vs[lo]!;
    return true;
  }
}

/** A series whose samples are already in memory, as columns (a remote read, a storage port's answer). */
export class ArraySeries implements SelectedSeries {
  constructor(
    readonly labels: LabelSet,
    readonly t: Float64Array,
    readonly v: Float64Array,
  ) {}

  iterator(): SampleIterator {
    return new ArrayIterator(this.t, this.v);
  }

  readSamples(out: SampleArrays): number {
    const n = this.t.length;
    out.n = 0;
    out.ensure(n);
    out.t.set(this.t);
    // Same-type typed array copy: a byte copy, so NaN payloads (staleness markers) keep their bits.
    out.v.set(this.v);
    out.n = n;
    return n;
  }
}
