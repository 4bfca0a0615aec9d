/**
 * The head log: how the head survives a restart without a second write-ahead log on the hot path.
 *
 * Size: one on-disk format, kept in one file on purpose: its record writer, its reader and the recovery that
 * judges damaged records must change together (a split would put one format's layout in three places).
 *
 * The bus is the WAL (docs/durability.md). At every checkpoint the storage appends ONE record to the head log
 * with what changed in the head since the previous checkpoint — new symbols and series, chunks sealed since,
 * the bytes appended to each open chunk since (Gorilla streams only grow at the end), changed out-of-order
 * buffers — and the bus positions this state covers. The record is written with one write and one fdatasync:
 * it costs the compressed size of the new samples, not the size of the head. After a block cut the log is
 * rotated: a new file starts with a full snapshot of the (now small) head and older files are deleted.
 *
 * Files `<data-dir>/tsdb/head/<seq, 10 digits>.log`. Format (docs/storage.md "Head log"):
 * ```
 * file    ┌────────┬───────────────┬──────────┬──────────┬─────┐
 *         │ "TWHL" │ version u32le │ record 0 │ record 1 │ ... │     record 0 is a snapshot
 *         └────────┴───────────────┴──────────┴──────────┴─────┘
 * record  ┌──────────────┬──────────────────────────┬─────────┐
 *         │ length u32le │ CRC-32 of payload u32le  │ payload │
 *         └──────────────┴──────────────────────────┴─────────┘
 * stored  codec u8 (0 as is, 1 Brotli) │ body: the payload below, compressed by the codec (version 3; in
 *         versions 1 and 2 the stored payload is the payload itself)
 * payload kind u8 (1 snapshot, 2 delta) │ positions: n, (partition, offset)* │ cut boundary svarint
 *         │ symbols: first id, n, strings │ series: n, (ref, npairs, (name, value)*)*
 *         │ sealed: n, (ref, minT svarint, maxT svarint, count, from byte, length, bytes from there)*
 *         │ open: n, (ref, bits, count, from byte, length, bytes)*
 *         │ ooo: n, (ref, count, (t svarint, v f64le)*)*
 * ```
 * Recovery reads the newest file that starts with a valid snapshot and applies its records in order; a torn
 * or corrupt record ends the file (it is truncated there with a warning): everything before it was covered
 * by earlier checkpoints, everything after it is replayed from the bus.
 */
import {
  closeSync,
  fdatasync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  write,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  brotliCompress,
  brotliCompressSync,
  brotliDecompressSync,
  crc32,
  constants as zlibConstants,
} from 'node:zlib';
import type { Logger } from 'pino';
import { syncDirSync } from '../model/fs.js';
import { ByteReader, ByteWriter } from '../protocol/bytes.js';
import { readBits } from './codec/bits.js';
import { XOR_MAX_SAMPLE_BITS, XorReader } from './codec/xor.js';
import { chunkBytes, type HeadChunk, type HeadLogView, memoryChunk } from './head.js';
import type { BusPositions } from './storage.js';

const MAGIC = 'TWHL';
/**
 * Format version written. 2: sealed entries carry the byte they continue from. Version-1 files exist in two
 * layouts (with and without it: the field was added without a version change), told apart record by record.
 * 3: each record's payload is stored behind a codec byte, compressed (Brotli): per-series framing, label
 * symbols and chunk headers repeat from record to record and series to series.
 */
const VERSION = 3;
/** Codec byte of a version-3 record: the payload stored as is, or Brotli-compressed. */
const CODEC_NONE = 0;
const CODEC_BROTLI = 1;
/**
 * Brotli quality 2: its fast range (about three times deflate level 1's speed here, as small a result);
 * higher qualities gain a percent or two for several times the CPU.
 */
const BROTLI_QUALITY = 2;
const FILE_HEADER = 8;
const KIND_SNAPSHOT = 1;
const KIND_DELTA = 2;
/** Deltas below this size never trigger a compaction (a tiny head would otherwise be rewritten every time). */
const MIN_COMPACTION_BYTES = 64 << 10;
/** Cut boundary written while the head was never cut (beyond every valid timestamp). */
const NO_CUT = -(2 ** 52);

export interface RecoveredHead {
  /**
   * The bus positions the recovered head truly covers: those of the last record when everything was
   * recovered; otherwise those of the last record before the first thing that could not be (the processor
   * replays the bus from there, harmlessly for what the head already holds).
   */
  readonly positions: Map<number, number>;
  /** What the newest record said it covers (equal to `positions` when nothing was lost). */
  readonly loggedPositions: Map<number, number>;
  readonly cutBoundary: number;
  /** The file recovered from (undefined when there was none). */
  readonly file: string | undefined;
  readonly length: number;
  readonly records: number;
  /** Format version of the file recovered from. */
  readonly version: number;
  /** What the log held that could not be recovered (empty when everything was). */
  readonly problems: readonly RecoveryProblem[];
  /**
   * The log must start a new file with a snapshot before anything is appended: the file was written in an
   * older format, or part of it could not be recovered (the file is then kept aside as `.damaged`).
   */
  readonly rewrite: boolean;
}

function fileName(dir: string, seq: number): string {
  return path.join(dir, `${String(seq).padStart(10, '0')}.log`);
}

function listLogs(dir: string): number[] {
  return readdirSync(dir)
    .filter((f) => /^\d{10}\.log$/.test(f))
    .map((f) => Number(f.slice(0, 10)))
    .sort((a, b) => a - b);
}

/** Serializes what changed in the head since the last checkpoint (or everything, for a snapshot). */
export function encodeHeadRecord(
  head: HeadLogView,
  positions: BusPositions,
  cutBoundary: number,
  snapshot: boolean,
): Uint8Array {
  // After the head was renumbered (head.ts compact) only a snapshot describes it: refs and symbols changed.
  const changes = head.changes();
  if (!snapshot && changes.renumbered)
    throw new Error('head log: a delta record after the head was renumbered');
  const w = new ByteWriter(1 << 16);
  w.u8(snapshot ? KIND_SNAPSHOT : KIND_DELTA);
  w.uvarint(positions.size);
  for (const [p, o] of positions) {
    w.uvarint(p);
    w.uvarint(o);
  }
  w.svarint(Number.isFinite(cutBoundary) ? cutBoundary : NO_CUT);
  const firstSym = snapshot ? 0 : changes.symbolsPersisted;
  w.uvarint(firstSym);
  w.uvarint(head.symbols.size - firstSym);
  for (let i = firstSym; i < head.symbols.size; i++) w.string(head.symbols.get(i));

  const refs: number[] = [];
  if (snapshot) {
    for (let ref = 0; ref < head.nextRef; ref++) if (head.isAlive(ref)) refs.push(ref);
  } else for (const ref of changes.newRefs) if (head.isAlive(ref)) refs.push(ref);
  w.uvarint(refs.length);
  for (const ref of refs) {
    const pairs = head.labelPairs(ref);
    w.uvarint(ref);
    w.uvarint(pairs.length / 2);
    for (let i = 0; i < pairs.length; i++) w.uvarint(pairs[i]!);
  }

  // Sealed chunks: all of them in a snapshot; in a delta the newly sealed, each from the byte where the log's
  // copy of it (written while it was open) ends.
  const sealed: {
    ref: number;
    chunk: HeadChunk;
    from: number;
  }[] = [];
  if (snapshot) {
    for (let ref = 0; ref < head.nextRef; ref++) {
      if (!head.isAlive(ref)) continue;
      for (const chunk of head.sealedOf(ref)) sealed.push({ ref, chunk, from: 0 });
    }
  } else
    for (const s of changes.sealed)
      if (head.isAlive(s.ref)) sealed.push({ ref: s.ref, chunk: s.chunk, from: s.persistedBytes });
  w.uvarint(sealed.length);
  for (const { ref, chunk, from } of sealed) {
    w.uvarint(ref);
    w.svarint(chunk.minT);
    w.svarint(chunk.maxT);
    w.uvarint(chunk.count);
    w.uvarint(from);
    const bytes = chunkBytes(chunk);
    w.uvarint(bytes.length - from);
    w.bytes(bytes.subarray(from));
  }

  // Open chunks: the bytes appended since the last checkpoint. The last byte of the previous write may have
  // been partial, so the delta restarts at that byte. One entry per series touched since the last checkpoint
  // (tens of thousands per record): written into one buffer sized for the worst case, with varints written
  // inline, rather than through a writer call per field and a view per chunk.
  const candidates = snapshot ? refs : changes.dirty;
  let open = 0;
  let openBytes = 0;
  for (const ref of candidates) {
    if (!head.isAlive(ref)) continue;
    const bits = head.openBits(ref);
    if (bits === 0 || (!snapshot && bits === head.persistedBitsOf(ref))) continue;
    open++;
    openBytes += ((bits + 7) >>> 3) - (snapshot ? 0 : head.persistedBitsOf(ref) >>> 3);
  }
  w.uvarint(open);
  if (open > 0) {
    // Per entry: ref, bits, count, from and length (each below 2^32: at most 5 bytes), then the bytes.
    const section = new Uint8Array(25 * open + openBytes);
    let at = 0;
    for (const ref of candidates) {
      if (!head.isAlive(ref)) continue;
      const bits = head.openBits(ref);
      if (bits === 0 || (!snapshot && bits === head.persistedBitsOf(ref))) continue;
      const from = snapshot ? 0 : head.persistedBitsOf(ref) >>> 3;
      const to = (bits + 7) >>> 3;
      const count = head.openCount(ref);
      at = putUvarint32(section, at, ref);
      at = putUvarint32(section, at, bits);
      at = putUvarint32(section, at, count);
      at = putUvarint32(section, at, from);
      at = putUvarint32(section, at, to - from);
      at = head.copyOpenBytes(ref, from, to, section, at);
      head.markPersisted(ref, bits, count);
    }
    w.bytes(section.subarray(0, at));
  }

  const ooo: number[] = [];
  if (snapshot) {
    for (const ref of refs) if ((head.oooOf(ref)?.n ?? 0) > 0) ooo.push(ref);
  } else for (const ref of changes.ooo) if (head.isAlive(ref)) ooo.push(ref);
  w.uvarint(ooo.length);
  for (const ref of ooo) {
    const b = head.oooOf(ref);
    const n = b?.n ?? 0;
    w.uvarint(ref);
    w.uvarint(n);
    for (let i = 0; i < n; i++) {
      w.svarint(b!.t[i]!);
      w.f64le(b!.v[i]!);
    }
  }
  head.checkpointWritten(snapshot);
  return frame(CODEC_NONE, w.view_());
}

/** Writes `v` (an integer in [0, 2^32)) as a uvarint at `b[at..]`; returns the position after it. */
function putUvarint32(b: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    b[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  b[at++] = v;
  return at;
}

/** A record as stored in a version-3 file: length, CRC, codec byte, body. */
function frame(codec: number, body: Uint8Array): Uint8Array {
  const rec = new Uint8Array(9 + body.length);
  const view = new DataView(rec.buffer);
  rec[8] = codec;
  rec.set(body, 9);
  view.setUint32(0, body.length + 1, true);
  view.setUint32(4, crc32(rec.subarray(8)), true);
  return rec;
}

const brotliOptions = {
  params: {
    [zlibConstants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
    [zlibConstants.BROTLI_PARAM_MODE]: zlibConstants.BROTLI_MODE_GENERIC,
  },
};

const brotliAsync = promisify(brotliCompress) as (data: Uint8Array, opts: object) => Promise<Buffer>;

/**
 * Brotli options for a body of `bytes`: a window just large enough for it (2^16 to 2^24). The default window
 * (4 MiB) costs more to set up and clear than compressing a typical delta of a few hundred kilobytes does;
 * a window as large as the input compresses it exactly as well. The decoder reads the window from the stream.
 */
function brotliOptionsFor(bytes: number): object {
  const lgwin = Math.max(16, Math.min(24, Math.ceil(Math.log2(bytes + 1))));
  return {
    params: {
      ...brotliOptions.params,
      [zlibConstants.BROTLI_PARAM_SIZE_HINT]: bytes,
      [zlibConstants.BROTLI_PARAM_LGWIN]: lgwin,
    },
  };
}

/**
 * A record from {@link encodeHeadRecord}, compressed for the log. Runs on libuv's thread pool: the event loop
 * goes on serving appends and queries meanwhile. The record keeps the stored form when compression gains
 * nothing.
 */
export async function compressHeadRecord(rec: Uint8Array): Promise<Uint8Array> {
  const body = rec.subarray(9);
  const packed = await brotliAsync(body, brotliOptionsFor(body.length));
  return packed.length < body.length ? frame(CODEC_BROTLI, packed) : rec;
}

/** {@link compressHeadRecord} on the calling thread (the closing snapshot). */
export function compressHeadRecordSync(rec: Uint8Array): Uint8Array {
  const body = rec.subarray(9);
  const packed = brotliCompressSync(body, brotliOptionsFor(body.length));
  return packed.length < body.length ? frame(CODEC_BROTLI, packed) : rec;
}

/** The payload of a stored record of a file of `version` (throws when its codec is unknown or it is damaged). */
function unwrap(stored: Uint8Array, version: number): Uint8Array {
  if (version < 3) return stored;
  if (stored.length < 1) throw new Error('empty record');
  const codec = stored[0]!;
  const body = stored.subarray(1);
  if (codec === CODEC_NONE) return body;
  if (codec === CODEC_BROTLI) return new Uint8Array(brotliDecompressSync(body));
  throw new Error(`unknown record codec ${codec}`);
}

/** Kind of a stored record (snapshot or delta), undefined when it cannot be read. */
function recordKind(stored: Uint8Array, version: number): number | undefined {
  try {
    return unwrap(stored, version)[0];
  } catch {
    return undefined;
  }
}

/** Whether the head changed since the last checkpoint's record (a delta would hold nothing but positions). */
export function headChanged(head: HeadLogView): boolean {
  const c = head.changes();
  return (
    c.renumbered ||
    c.dirty.length > 0 ||
    c.newRefs.length > 0 ||
    c.sealed.length > 0 ||
    c.ooo.size > 0 ||
    c.symbolsPersisted < head.symbols.size
  );
}

/** Layouts of record payloads. Version-1 files hold either (see {@link decodeRecord}). */
const Layout = {
  /** Sealed entries carry the byte they continue from (version 2; version-1 files from b3129c7 on). */
  current: 0,
  /** Sealed entries without it, and 0 meaning "never cut" (version-1 files written before b3129c7). */
  legacy: 1,
} as const;

interface DecodedRecord {
  kind: number;
  positions: [number, number][];
  cutBoundary: number;
  firstSymbol: number;
  symbols: string[];
  series: { ref: number; pairs: Uint32Array }[];
  sealed: {
    ref: number;
    minT: number;
    maxT: number;
    count: number;
    from: number;
    bytes: Uint8Array;
  }[];
  open: { ref: number; bits: number; count: number; from: number; bytes: Uint8Array }[];
  ooo: { ref: number; t: Float64Array; v: Float64Array }[];
}

/**
 * Decodes a record payload in one layout; throws when it does not parse as exactly that (chunk bytes are
 * views into `payload`). No state is touched.
 */
function decodeRecord(payload: Uint8Array, layout: number): DecodedRecord {
  const r = new ByteReader(payload);
  const kind = r.u8('kind');
  if (kind !== KIND_SNAPSHOT && kind !== KIND_DELTA) throw new Error(`unknown record kind ${kind}`);
  const positions: [number, number][] = [];
  const np = r.uvarint('positions');
  for (let i = 0; i < np; i++) positions.push([r.uvarint('partition'), r.uvarint('offset')]);
  const cut = r.svarint('cut boundary');
  const cutBoundary =
    cut === NO_CUT || (layout === Layout.legacy && cut === 0) ? Number.NEGATIVE_INFINITY : cut;
  const firstSymbol = r.uvarint('first symbol');
  const nsym = r.uvarint('symbols');
  const symbols: string[] = [];
  for (let i = 0; i < nsym; i++) symbols.push(r.string('symbol', 1 << 20));
  const series: DecodedRecord['series'] = [];
  const nseries = r.uvarint('series');
  for (let i = 0; i < nseries; i++) {
    const ref = r.uvarint('ref');
    const n = r.uvarint('pairs');
    if (n > 1 << 16) throw new Error(`series ${ref} has ${n} label pairs`);
    const pairs = new Uint32Array(n * 2);
    for (let k = 0; k < n * 2; k++) pairs[k] = r.uvarint('symbol');
    series.push({ ref, pairs });
  }
  const sealed: DecodedRecord['sealed'] = [];
  const nsealed = r.uvarint('sealed');
  for (let i = 0; i < nsealed; i++) {
    const ref = r.uvarint('ref');
    const minT = r.svarint('minT');
    const maxT = r.svarint('maxT');
    const count = r.uvarint('count');
    const from = layout === Layout.legacy ? 0 : r.uvarint('from byte');
    const len = r.uvarint('length');
    sealed.push({ ref, minT, maxT, count, from, bytes: r.bytes(len, 'chunk') });
  }
  const open: DecodedRecord['open'] = [];
  const nopen = r.uvarint('open');
  for (let i = 0; i < nopen; i++) {
    const ref = r.uvarint('ref');
    const bits = r.uvarint('bits');
    const count = r.uvarint('count');
    const from = r.uvarint('from');
    const len = r.uvarint('length');
    open.push({ ref, bits, count, from, bytes: r.bytes(len, 'open chunk') });
  }
  const ooo: DecodedRecord['ooo'] = [];
  const nooo = r.uvarint('ooo');
  for (let i = 0; i < nooo; i++) {
    const ref = r.uvarint('ref');
    const n = r.uvarint('count');
    r.need(n * 2, 'ooo samples');
    const t = new Float64Array(n);
    const v = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      t[k] = r.svarint('t');
      v[k] = r.f64le('v');
    }
    ooo.push({ ref, t, v });
  }
  if (r.remaining !== 0) throw new Error(`${r.remaining} bytes left over after the record`);
  return { kind, positions, cutBoundary, firstSymbol, symbols, series, sealed, open, ooo };
}

/** First timestamp of a Gorilla chunk (its first 64 bits), or NaN when the bytes are too short. */
function firstTimestamp(bytes: Uint8Array): number {
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
class Replayer {
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

export class HeadLog {
  private fd = -1;
  private seq = 0;
  private length = 0;
  private snapshotEnd = 0;
  /** A file that could not be recovered whole: kept as `.damaged` (not deleted) by the next rotation. */
  private keepAside: string | undefined;

  constructor(
    private readonly dir: string,
    private readonly fsync: boolean,
    private readonly logger: Logger,
  ) {}

  /**
   * Rebuilds `head` from the newest file that starts with a snapshot: the snapshot and the records after it.
   * A torn or corrupt tail (cut short, CRC mismatch) is truncated with a warning. Records that are intact but
   * do not fit what the log established before them are recovered entry by entry — everything that fits is
   * kept, the rest is named in a warning — and the positions returned are those truly covered. Never throws
   * for the log's content; a file from a newer trainwatch is moved aside.
   */
  recover(head: HeadLogView): RecoveredHead {
    const seqs = listLogs(this.dir);
    for (let k = seqs.length - 1; k >= 0; k--) {
      const file = fileName(this.dir, seqs[k]!);
      const data = readFileSync(file);
      const magic = data.length >= FILE_HEADER && data.toString('latin1', 0, 4) === MAGIC;
      const version = magic ? data.readUInt32LE(4) : 0;
      if (magic && version > VERSION) {
        const aside = `${file}.v${version}`;
        renameSync(file, aside);
        this.logger.error(
          { file, version, supported: VERSION, movedTo: aside },
          'head log: written by a newer trainwatch in a format this one cannot read; moved aside (the head starts from what older files and the bus hold)',
        );
        continue;
      }
      const first = magic ? readRecord(data, FILE_HEADER) : undefined;
      if (!first || version < 1 || recordKind(first.payload, version) !== KIND_SNAPSHOT) {
        this.logger.warn(
          { file },
          'head log: file without a complete snapshot (a rotation was interrupted); ignoring it',
        );
        unlinkSync(file);
        continue;
      }
      const rec = this.replayFile(head, file, data, version);
      for (const older of seqs.slice(0, k)) unlinkSync(fileName(this.dir, older));
      this.seq = seqs[k]!;
      if (rec.rewrite) {
        // Nothing is appended to this file: the storage starts a new one with a snapshot at once.
        if (rec.problems.length > 0) this.keepAside = file;
      } else {
        this.fd = openSync(file, 'a');
        this.length = rec.length;
        this.snapshotEnd = first.end;
      }
      return rec;
    }
    this.seq = seqs.length > 0 ? seqs[seqs.length - 1]! : 0;
    return {
      positions: new Map(),
      loggedPositions: new Map(),
      cutBoundary: Number.NEGATIVE_INFINITY,
      file: undefined,
      length: 0,
      records: 0,
      version: VERSION,
      problems: [],
      rewrite: false,
    };
  }

  private replayFile(head: HeadLogView, file: string, data: Uint8Array, version: number): RecoveredHead {
    const replayer = new Replayer(head);
    let pos = FILE_HEADER;
    let records = 0;
    let stopped = false;
    for (;;) {
      const raw = readRecord(data, pos);
      if (!raw) break;
      let rec: DecodedRecord | undefined;
      let why = '';
      let payload: Uint8Array | undefined;
      try {
        payload = unwrap(raw.payload, version);
      } catch (err) {
        why = (err as Error).message;
      }
      // Version 1 holds either layout; the current one is tried first and must also make sense.
      const layouts =
        payload === undefined ? [] : version === 1 ? [Layout.current, Layout.legacy] : [Layout.current];
      for (const layout of layouts) {
        try {
          const r = decodeRecord(payload!, layout);
          if (!rec || replayer.plausible(r)) rec = r;
          if (replayer.plausible(r)) break;
        } catch (err) {
          why ||= (err as Error).message;
        }
      }
      const misfit = rec ? replayer.frameFits(rec, records) : `it does not decode (${why})`;
      if (misfit !== undefined) {
        let after = 0;
        for (let p = raw.end, r = readRecord(data, p); r; p = r.end, r = readRecord(data, p)) after++;
        replayer.problem({
          record: records,
          what: `record ${records} at byte ${pos} and the ${after} after it: ${misfit}`,
        });
        stopped = true;
        break;
      }
      replayer.apply(rec!, records);
      pos = raw.end;
      records++;
    }
    replayer.finish(records - 1);
    head.finishRestore();
    const problems = replayer.problems;
    const positions = replayer.coveredBefore ?? replayer.positions;
    if (problems.length > 0) {
      let samples = 0;
      for (const p of problems) samples += p.samples ?? 0;
      this.logger.warn(
        {
          file,
          records,
          problems: problems.length,
          samplesNotRecovered: samples,
          first: problems.slice(0, 20),
          coveredPositions: Object.fromEntries(positions),
          loggedPositions: Object.fromEntries(replayer.positions),
          keptAs: `${file}.damaged`,
        },
        `head log: ${problems.length} entries of the log could not be recovered (${samples} samples): everything else was; the bus replays from the positions before the first of them (what it no longer holds is lost), and the file is kept aside`,
      );
    } else if (!stopped && pos < data.length) {
      this.logger.warn(
        { file, validBytes: pos, droppedBytes: data.length - pos, records },
        'head log: torn or corrupt tail after the last complete checkpoint; truncating (the bus replays what it held)',
      );
      const fd = openSync(file, 'r+');
      ftruncateSync(fd, pos);
      fsyncSync(fd);
      closeSync(fd);
    }
    if (version < VERSION && problems.length === 0)
      this.logger.info(
        { file, version },
        'head log: older format; rewriting it as a snapshot in the current one',
      );
    return {
      positions,
      loggedPositions: replayer.positions,
      cutBoundary: replayer.cutBoundary,
      file,
      length: pos,
      records,
      version,
      problems,
      rewrite: problems.length > 0 || version < VERSION,
    };
  }

  /** Whether the log has a current file (a snapshot was written). */
  get started(): boolean {
    return this.fd >= 0;
  }

  get bytes(): number {
    return this.length;
  }

  /**
   * Appends a delta record; durable when the promise resolves (per the fsync policy). The write and the sync
   * run off the event loop, so appends and queries go on meanwhile (the record was built before).
   */
  async appendDelta(record: Uint8Array): Promise<void> {
    if (this.fd < 0) throw new Error('head log: delta before any snapshot');
    const fd = this.fd;
    let done = 0;
    while (done < record.length) {
      const { bytesWritten } = await writeAsync(fd, record, done, record.length - done);
      done += bytesWritten;
    }
    if (this.fsync) await fdatasyncAsync(fd);
    this.length += record.length;
  }

  /** Whether the current file holds more than its snapshot. */
  get hasDeltas(): boolean {
    return this.length > this.snapshotEnd;
  }

  /**
   * Whether the next checkpoint should start a new file with a snapshot instead of appending `nextDelta`
   * bytes: the log is compacted so that it never holds much more than the head's compressed samples once.
   * Deltas repeat what a snapshot holds once (per-series framing at every checkpoint, the partial last byte
   * of each open chunk again), so they are let grow only up to the snapshot's own size; the snapshot then
   * rewritten costs about what the deltas cost since the last one, so the work stays proportional to the
   * data. A checkpoint of an idle head (`idle`: nothing new for a while, ingest paused) compacts as soon as
   * the deltas are a quarter of the snapshot, leaving the log at the size of the head.
   */
  compactionDue(nextDelta: number, idle: boolean): boolean {
    if (this.fd < 0) return false;
    const deltas = this.length - this.snapshotEnd + nextDelta;
    if (deltas >= Math.max(this.snapshotEnd, MIN_COMPACTION_BYTES)) return true;
    return idle && this.hasDeltas && deltas >= this.snapshotEnd / 4;
  }

  /** Starts a new file with a snapshot record, makes it durable, then deletes the older files. */
  rotate(snapshot: Uint8Array): void {
    const next = this.seq + 1;
    const file = fileName(this.dir, next);
    const fd = openSync(file, 'w');
    const header = new Uint8Array(FILE_HEADER);
    header.set(Buffer.from(MAGIC), 0);
    new DataView(header.buffer).setUint32(4, VERSION, true);
    writeAll(fd, header);
    writeAll(fd, snapshot);
    fsyncSync(fd);
    syncDirSync(this.dir);
    if (this.fd >= 0) closeSync(this.fd);
    if (this.keepAside) {
      renameSync(this.keepAside, `${this.keepAside}.damaged`);
      this.keepAside = undefined;
    }
    for (const s of listLogs(this.dir)) if (s < next) unlinkSync(fileName(this.dir, s));
    this.fd = fd;
    this.seq = next;
    this.length = FILE_HEADER + snapshot.length;
    this.snapshotEnd = this.length;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

const writeAsync = promisify(write) as (
  fd: number,
  buffer: Uint8Array,
  offset: number,
  length: number,
) => Promise<{ bytesWritten: number }>;
const fdatasyncAsync = promisify(fdatasync);

function writeAll(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) done += writeSync(fd, data, done, data.length - done);
}

function readRecord(data: Uint8Array, pos: number): { payload: Uint8Array; end: number } | undefined {
  if (pos + 8 > data.length) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const len = view.getUint32(pos, true);
  const crc = view.getUint32(pos + 4, true);
  if (pos + 8 + len > data.length) return undefined;
  const payload = data.subarray(pos + 8, pos + 8 + len);
  if (crc32(payload) !== crc) return undefined;
  return { payload, end: pos + 8 + len };
}
