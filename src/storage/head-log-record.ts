/**
 * Head-log records: the payload layout in the box of head-log.ts ("record", "stored", "payload"), its
 * writer ({@link encodeHeadRecord}, compression) beside its reader ({@link decodeRecord}, {@link readRecord}),
 * so that a layout change is made in this one file. Separate from head-log.ts, which handles the files, and
 * from head-log-recovery.ts, which judges what a decoded record may restore: decoding touches no state.
 */
import { promisify } from 'node:util';
import {
  brotliCompress,
  brotliCompressSync,
  brotliDecompressSync,
  crc32,
  constants as zlibConstants,
} from 'node:zlib';
import { ByteReader, ByteWriter, putUvarint32 } from '../protocol/bytes.js';
import { chunkBytes, type HeadChunk, type HeadLogView } from './head.js';
import type { BusPositions } from './storage.js';

/** Codec byte of a version-3 record: the payload stored as is, or Brotli-compressed. */
const CODEC_NONE = 0;
const CODEC_BROTLI = 1;
/**
 * Brotli quality 2: its fast range (about three times deflate level 1's speed here, as small a result);
 * higher qualities gain a percent or two for several times the CPU.
 */
const BROTLI_QUALITY = 2;
export const KIND_SNAPSHOT = 1;
export const KIND_DELTA = 2;
/** Cut boundary written while the head was never cut (beyond every valid timestamp). */
const NO_CUT = -(2 ** 52);

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
  return smaller(rec, await brotliAsync(body, brotliOptionsFor(body.length)));
}

/** {@link compressHeadRecord} on the calling thread (the closing snapshot). */
export function compressHeadRecordSync(rec: Uint8Array): Uint8Array {
  const body = rec.subarray(9);
  return smaller(rec, brotliCompressSync(body, brotliOptionsFor(body.length)));
}

/** The record `rec` (stored as is) framed with its Brotli-compressed body `packed`, if that is smaller. */
function smaller(rec: Uint8Array, packed: Uint8Array): Uint8Array {
  return packed.length < rec.length - 9 ? frame(CODEC_BROTLI, packed) : rec;
}

/** The payload of a stored record of a file of `version` (throws when its codec is unknown or it is damaged). */
export function unwrap(stored: Uint8Array, version: number): Uint8Array {
  if (version < 3) return stored;
  if (stored.length < 1) throw new Error('empty record');
  const codec = stored[0]!;
  const body = stored.subarray(1);
  if (codec === CODEC_NONE) return body;
  if (codec === CODEC_BROTLI) return new Uint8Array(brotliDecompressSync(body));
  throw new Error(`unknown record codec ${codec}`);
}

/** Kind of a stored record (snapshot or delta), undefined when it cannot be read. */
export function recordKind(stored: Uint8Array, version: number): number | undefined {
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
export const Layout = {
  /** Sealed entries carry the byte they continue from (version 2; version-1 files from b3129c7 on). */
  current: 0,
  /** Sealed entries without it, and 0 meaning "never cut" (version-1 files written before b3129c7). */
  legacy: 1,
} as const;

export interface DecodedRecord {
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
export function decodeRecord(payload: Uint8Array, layout: number): DecodedRecord {
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

/** A stored record at `pos` whose length and CRC check out (its payload still behind the codec byte). */
export function readRecord(data: Uint8Array, pos: number): { payload: Uint8Array; end: number } | undefined {
  if (pos + 8 > data.length) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const len = view.getUint32(pos, true);
  const crc = view.getUint32(pos + 4, true);
  if (pos + 8 + len > data.length) return undefined;
  const payload = data.subarray(pos + 8, pos + 8 + len);
  if (crc32(payload) !== crc) return undefined;
  return { payload, end: pos + 8 + len };
}
