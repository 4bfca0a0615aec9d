/**
 * Head-log recovery: replays decoded records (head-log-record.ts) into a head, judging each entry against what
 * the log established before it, so that a damaged log loses only what is damaged and the positions reported
 * are those truly covered. Separate from the record format (which only parses) and from the file handling in
 * head-log.ts (which decides which file to read and what to do with its tail).
 */
import { readBits } from './codec/bits.js';
import { XOR_MAX_SAMPLE_BITS, XorReader } from './codec/xor.js';
import { type HeadLogView, memoryChunk } from './head.js';
import { type DecodedRecord, KIND_DELTA, KIND_SNAPSHOT } from './head-log-record.js';

/** First timestamp of a Gorilla chunk (its first 64 bits), or NaN when the bytes are too short. */
export function firstTimestamp(bytes: Uint8Array): number {
  if (bytes.length < 16) return Number.NaN;
  const hi = readBits(bytes, 0, 32) | 0;
  return hi * 4294967296 + readBits(bytes, 32, 32);
}

/** An open chunk being reassembled from the records (bytes logged while it was open). */
interface OpenChunk {
  buf: Uint8Array;
  bits: number;
  count: number;
}

/** Something the log holds that could not be recovered, for the warning. */
export interface RecoveryProblem {
  readonly record: number;
  readonly series?: string;
  readonly what: string;
  /** Samples lost with it, when known. */
  readonly samples?: number;
  readonly minT?: number;
  readonly maxT?: number;
}

/** Smallest and largest bit length a Gorilla chunk of `count` samples can have. */
function plausibleBits(bits: number, count: number): boolean {
  if (count < 1) return false;
  if (count === 1) return bits === 128;
  return bits >= 128 + 2 * (count - 1) && bits <= 128 + XOR_MAX_SAMPLE_BITS * (count - 1);
}

/**
 * Replays records into a head under recovery, checking each entry against what the log established before
 * it: an entry that does not fit (a chunk continuing bytes the log does not hold, a ref that does not exist,
 * timestamps out of order...) is dropped and reported, the rest is kept. Symbols and series are the frame
 * everything else refers to: when they do not fit, the record and everything after it is dropped.
 */
export class Replayer {
  readonly open = new Map<number, OpenChunk>();
  readonly problems: RecoveryProblem[] = [];
  positions = new Map<number, number>();
  cutBoundary = Number.NEGATIVE_INFINITY;
  /** Positions of the last record before the first problem: what the recovered state truly covers. */
  coveredBefore: Map<number, number> | undefined;
  /** Positions of the file's snapshot (the earliest this file can vouch for). */
  private snapshotPositions: Map<number, number> | undefined;
  /** Newest sealed maxT per series (chunks must follow each other). */
  private readonly lastSealed = new Map<number, number>();

  constructor(private readonly head: HeadLogView) {}

  private label(ref: number): string | undefined {
    return this.head.isAlive(ref) ? labelString(this.head, ref) : undefined;
  }

  problem(p: RecoveryProblem): void {
    if (this.coveredBefore === undefined) this.coveredBefore = new Map(this.positions);
    this.problems.push(p);
  }

  /** Whether the record's symbols and series fit the state; nothing is changed. */
  frameFits(rec: DecodedRecord, index: number): string | undefined {
    const syms = this.head.symbols;
    if (index === 0 && rec.kind !== KIND_SNAPSHOT) return 'the first record is not a snapshot';
    if (index > 0 && rec.kind !== KIND_DELTA) return 'a snapshot after the first record';
    const fresh = new Set<string>();
    for (let i = 0; i < rec.symbols.length; i++) {
      const id = rec.firstSymbol + i;
      const s = rec.symbols[i]!;
      if (id < syms.size) {
        if (syms.get(id) !== s)
          return `symbol ${id} is ${JSON.stringify(syms.get(id))}, the record says ${JSON.stringify(s)}`;
      } else if (id !== syms.size + fresh.size || syms.lookup(s) >= 0 || fresh.has(s))
        return `symbol ${JSON.stringify(s)} cannot take id ${id}`;
      else fresh.add(s);
    }
    const symbolCount = Math.max(syms.size, rec.firstSymbol + rec.symbols.length);
    if (rec.firstSymbol > syms.size) return `symbols start at ${rec.firstSymbol}, the log holds ${syms.size}`;
    let next = this.head.nextRef;
    for (const s of rec.series) {
      if (s.ref < next) return `series ref ${s.ref} is not new (next ref ${next})`;
      if (s.pairs.length === 0) return `series ref ${s.ref} has no labels`;
      for (let k = 0; k < s.pairs.length; k++)
        if (s.pairs[k]! >= symbolCount) return `series ref ${s.ref} refers to unknown symbol ${s.pairs[k]}`;
      next = s.ref + 1;
    }
    return undefined;
  }

  /** Whether the chunk entries of a version-1 record make sense in this layout (used to tell layouts apart). */
  plausible(rec: DecodedRecord): boolean {
    for (const s of rec.sealed) {
      if (s.from === 0) {
        if (firstTimestamp(s.bytes) !== s.minT) return false;
      } else {
        const o = this.open.get(s.ref);
        if (!o || (o.bits + 7) >>> 3 < s.from) return false;
      }
    }
    for (const o of rec.open)
      if (!plausibleBits(o.bits, o.count) || (o.bits + 7) >>> 3 !== o.from + o.bytes.length) return false;
    return true;
  }

  apply(rec: DecodedRecord, index: number): void {
    const head = this.head;
    for (const s of rec.symbols) head.symbols.intern(s);
    for (const s of rec.series) head.restoreSeries(s.ref, s.pairs);

    for (const s of rec.sealed) {
      const fail = (why: string) => {
        const kept = this.salvage(s.ref);
        this.problem({
          record: index,
          series: this.label(s.ref),
          what: `sealed chunk of series ${s.ref}: ${why}${kept > 0 ? ` (its first ${kept} samples, logged while it was open, are kept)` : ''}`,
          samples: s.count - kept,
          minT: s.minT,
          maxT: s.maxT,
        });
      };
      if (!head.isAlive(s.ref)) {
        fail('no such series');
        continue;
      }
      if (s.count < 1 || s.minT > s.maxT || (s.count === 1 && s.minT !== s.maxT)) {
        fail(`implausible count ${s.count} or range`);
        continue;
      }
      let bytes: Uint8Array;
      if (s.from > 0) {
        // The first bytes were logged while the chunk was open.
        const o = this.open.get(s.ref);
        if (!o || (o.bits + 7) >>> 3 < s.from) {
          fail(`continues ${s.from} bytes of an open chunk the log does not hold`);
          continue;
        }
        bytes = new Uint8Array(s.from + s.bytes.length);
        bytes.set(o.buf.subarray(0, s.from));
        bytes.set(s.bytes, s.from);
      } else bytes = s.bytes.slice();
      if (firstTimestamp(bytes) !== s.minT) {
        fail('its first timestamp is not its minT');
        continue;
      }
      const prev = this.lastSealed.get(s.ref) ?? Number.NEGATIVE_INFINITY;
      if (s.minT <= prev) {
        fail(`starts at ${s.minT}, not after the previous chunk's end ${prev}`);
        continue;
      }
      this.lastSealed.set(s.ref, s.maxT);
      head.restoreSealed(s.ref, memoryChunk(s.minT, s.maxT, s.count, bytes));
      this.open.delete(s.ref);
    }

    for (const e of rec.open) {
      const fail = (why: string) => {
        const kept = this.salvage(e.ref);
        this.problem({
          record: index,
          series: this.label(e.ref),
          what: `open chunk of series ${e.ref}: ${why}${kept > 0 ? ` (its first ${kept} samples, logged before, are kept)` : ''}`,
          samples: e.count - kept,
        });
      };
      if (!head.isAlive(e.ref)) {
        fail('no such series');
        continue;
      }
      const need = e.from + e.bytes.length;
      if (!plausibleBits(e.bits, e.count) || (e.bits + 7) >>> 3 !== need) {
        fail(`${e.bits} bits for ${e.count} samples in ${need} bytes`);
        continue;
      }
      let o = this.open.get(e.ref);
      if (e.from === 0) {
        o = { buf: new Uint8Array(Math.max(64, need * 2)), bits: 0, count: 0 };
        this.open.set(e.ref, o);
      } else if (!o || (o.bits + 7) >>> 3 < e.from || o.bits > e.bits || o.count > e.count) {
        fail(`continues ${e.from} bytes of an open chunk the log does not hold`);
        continue;
      } else if (o.buf.length < need) {
        const grown = new Uint8Array(need * 2);
        grown.set(o.buf);
        o.buf = grown;
      }
      o.buf.set(e.bytes, e.from);
      o.bits = e.bits;
      o.count = e.count;
    }

    for (const e of rec.ooo) {
      let ordered = true;
      for (let k = 0; k < e.t.length; k++)
        if (!Number.isInteger(e.t[k]!) || (k > 0 && e.t[k]! <= e.t[k - 1]!)) ordered = false;
      if (!head.isAlive(e.ref) || !ordered) {
        this.problem({
          record: index,
          series: this.label(e.ref),
          what: `out-of-order samples of series ${e.ref}: ${ordered ? 'no such series' : 'timestamps not ascending'}`,
          samples: e.t.length,
        });
        continue;
      }
      head.restoreOoo(e.ref, e.t, e.v);
    }
    this.positions = new Map(rec.positions);
    this.snapshotPositions ??= this.positions;
    this.cutBoundary = rec.cutBoundary;
  }

  /**
   * When the continuation of an open chunk is lost: what the log holds of it (a valid prefix, logged by
   * earlier records) is kept as a sealed chunk, so that only the samples of the missing bytes are lost — and
   * those were appended after the positions the recovered state reports, so the bus replays them. Returns
   * the samples kept.
   */
  private salvage(ref: number): number {
    const o = this.open.get(ref);
    this.open.delete(ref);
    if (!o || o.count === 0 || !this.head.isAlive(ref)) return 0;
    const range = decodedRange(o, this.lastSealed.get(ref) ?? Number.NEGATIVE_INFINITY);
    if (!range) return 0;
    const bytes = o.buf.slice(0, (o.bits + 7) >>> 3);
    this.head.restoreSealed(ref, memoryChunk(range[0], range[1], o.count, bytes));
    this.lastSealed.set(ref, range[1]);
    return o.count;
  }

  /**
   * After the last record: the open chunks go into the head, each checked by decoding it (count samples,
   * ascending timestamps after the series' sealed chunks, within the bits logged).
   */
  finish(lastRecord: number): void {
    for (const [ref, o] of this.open) {
      if (!decodedRange(o, this.lastSealed.get(ref) ?? Number.NEGATIVE_INFINITY)) {
        // Which record broke it is unknown: only what the snapshot covered is vouched for.
        this.coveredBefore = new Map(this.snapshotPositions);
        this.problem({
          record: lastRecord,
          series: this.label(ref),
          what: `open chunk of series ${ref}: its ${o.count} samples do not decode within its ${o.bits} bits, in order`,
          samples: o.count,
          minT: firstTimestamp(o.buf),
        });
        continue;
      }
      this.head.restoreOpen(ref, o.buf, o.bits, o.count);
    }
  }
}

const rangeReader = new XorReader();

/**
 * [first, last] timestamp of an open chunk's samples when they decode within its bits, as integers ascending
 * after `after`; undefined otherwise.
 */
function decodedRange(o: OpenChunk, after: number): [number, number] | undefined {
  // Every sample takes at least one bit: a larger count is corrupt (and would size the decode buffers).
  if (o.count > o.bits) return undefined;
  const r = rangeReader.reset(o.buf, o.count);
  if (r.endBitPos > o.bits) return undefined;
  let prev = after;
  let first = Number.NaN;
  while (r.next()) {
    if (!(r.t > prev) || !Number.isInteger(r.t)) return undefined;
    if (Number.isNaN(first)) first = r.t;
    prev = r.t;
  }
  return Number.isNaN(first) ? undefined : [first, prev];
}

function labelString(head: HeadLogView, ref: number): string {
  const { names, values } = head.labelsOf(ref);
  return `{${names.map((n, i) => `${n}=${JSON.stringify(values[i])}`).join(', ')}}`;
}
