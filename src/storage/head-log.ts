/**
 * The head log: how the head survives a restart without a second write-ahead log on the hot path.
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
  unlinkSync,
  write,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import type { Logger } from 'pino';
import { ByteReader, ByteWriter } from '../protocol/bytes.js';
import { chunkBytes, type Head, type HeadChunk } from './head.js';
import type { BusPositions } from './storage.js';

const MAGIC = 'TWHL';
const VERSION = 1;
const FILE_HEADER = 8;
const KIND_SNAPSHOT = 1;
const KIND_DELTA = 2;
/** Cut boundary written while the head was never cut (beyond every valid timestamp). */
const NO_CUT = -(2 ** 52);

export interface RecoveredHead {
  readonly positions: Map<number, number>;
  readonly cutBoundary: number;
  /** The file to go on appending to, and its valid length. */
  readonly file: string | undefined;
  readonly length: number;
  readonly records: number;
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
  head: Head,
  positions: BusPositions,
  cutBoundary: number,
  snapshot: boolean,
): Uint8Array {
  const w = new ByteWriter(1 << 16);
  w.u8(snapshot ? KIND_SNAPSHOT : KIND_DELTA);
  w.uvarint(positions.size);
  for (const [p, o] of positions) {
    w.uvarint(p);
    w.uvarint(o);
  }
  w.svarint(Number.isFinite(cutBoundary) ? cutBoundary : NO_CUT);
  const firstSym = snapshot ? 0 : head.symbolsPersisted;
  w.uvarint(firstSym);
  w.uvarint(head.symbols.size - firstSym);
  for (let i = firstSym; i < head.symbols.size; i++) w.string(head.symbols.get(i));

  const refs: number[] = [];
  if (snapshot) {
    for (let ref = 0; ref < head.nextRef; ref++) if (head.isAlive(ref)) refs.push(ref);
  } else for (const ref of head.newRefs) if (head.isAlive(ref)) refs.push(ref);
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
    for (const s of head.sealedSinceCheckpoint)
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
  // been partial, so the delta restarts at that byte.
  const open: number[] = [];
  const candidates = snapshot ? refs : head.dirtyList;
  for (const ref of candidates) {
    if (!head.isAlive(ref)) continue;
    const bits = head.openBits(ref);
    if (bits === 0 || (!snapshot && bits === head.persistedBits[ref])) continue;
    open.push(ref);
  }
  w.uvarint(open.length);
  for (const ref of open) {
    const bits = head.openBits(ref);
    const from = snapshot ? 0 : head.persistedBits[ref]! >>> 3;
    const to = (bits + 7) >>> 3;
    w.uvarint(ref);
    w.uvarint(bits);
    w.uvarint(head.openCount(ref));
    w.uvarint(from);
    w.uvarint(to - from);
    w.bytes(head.openBytes(ref, from, to));
    head.persistedBits[ref] = bits;
    head.persistedCount[ref] = head.openCount(ref);
  }

  const ooo: number[] = [];
  if (snapshot) {
    for (const ref of refs) if ((head.oooOf(ref)?.n ?? 0) > 0) ooo.push(ref);
  } else for (const ref of head.oooDirty) if (head.isAlive(ref)) ooo.push(ref);
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
  head.clearDirty();
  const payload = w.view_();
  const rec = new Uint8Array(8 + payload.length);
  const view = new DataView(rec.buffer);
  view.setUint32(0, payload.length, true);
  view.setUint32(4, crc32(payload), true);
  rec.set(payload, 8);
  return rec;
}

/** Applies one record to a head under recovery. Open-chunk bytes accumulate in `open` until the end. */
function applyRecord(
  head: Head,
  payload: Uint8Array,
  open: Map<number, { buf: Uint8Array; bits: number; count: number }>,
  out: { positions: Map<number, number>; cutBoundary: number },
): void {
  const r = new ByteReader(payload);
  r.u8('kind');
  const np = r.uvarint('positions');
  out.positions.clear();
  for (let i = 0; i < np; i++) out.positions.set(r.uvarint('partition'), r.uvarint('offset'));
  const cut = r.svarint('cut boundary');
  out.cutBoundary = cut === NO_CUT ? Number.NEGATIVE_INFINITY : cut;
  const firstSym = r.uvarint('first symbol');
  const nsym = r.uvarint('symbols');
  for (let i = 0; i < nsym; i++) {
    const s = r.string('symbol', 1 << 20);
    const id = head.symbols.intern(s);
    if (id !== firstSym + i)
      throw new Error(`head log: symbol ${JSON.stringify(s)} got id ${id}, expected ${firstSym + i}`);
  }
  const nseries = r.uvarint('series');
  for (let i = 0; i < nseries; i++) {
    const ref = r.uvarint('ref');
    const n = r.uvarint('pairs');
    const pairs = new Uint32Array(n * 2);
    for (let k = 0; k < n * 2; k++) pairs[k] = r.uvarint('symbol');
    head.restoreSeries(ref, pairs);
  }
  const nsealed = r.uvarint('sealed');
  for (let i = 0; i < nsealed; i++) {
    const ref = r.uvarint('ref');
    const minT = r.svarint('minT');
    const maxT = r.svarint('maxT');
    const count = r.uvarint('count');
    const from = r.uvarint('from byte');
    const len = r.uvarint('length');
    const tail = r.bytes(len, 'chunk');
    const bytes = new Uint8Array(from + len);
    if (from > 0) {
      // The first bytes were logged while the chunk was open.
      const o = open.get(ref);
      if (!o || o.buf.length < from)
        throw new Error(
          `head log: sealed chunk of series ${ref} continues an open chunk the log does not hold`,
        );
      bytes.set(o.buf.subarray(0, from));
    }
    bytes.set(tail, from);
    head.restoreSealed(ref, { minT, maxT, count, bytes, spill: undefined });
    open.delete(ref);
  }
  const nopen = r.uvarint('open');
  for (let i = 0; i < nopen; i++) {
    const ref = r.uvarint('ref');
    const bits = r.uvarint('bits');
    const count = r.uvarint('count');
    const from = r.uvarint('from');
    const len = r.uvarint('length');
    const bytes = r.bytes(len, 'open chunk');
    let o = open.get(ref);
    const need = from + len;
    if (!o || from === 0) {
      o = { buf: new Uint8Array(Math.max(64, need * 2)), bits: 0, count: 0 };
      open.set(ref, o);
    } else if (o.buf.length < need) {
      const next = new Uint8Array(need * 2);
      next.set(o.buf);
      o.buf = next;
    }
    o.buf.set(bytes, from);
    o.bits = bits;
    o.count = count;
  }
  const nooo = r.uvarint('ooo');
  for (let i = 0; i < nooo; i++) {
    const ref = r.uvarint('ref');
    const n = r.uvarint('count');
    const t = new Float64Array(n);
    const v = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      t[k] = r.svarint('t');
      v[k] = r.f64le('v');
    }
    head.restoreOoo(ref, t, v);
  }
}

export class HeadLog {
  private fd = -1;
  private seq = 0;
  private length = 0;
  private snapshotEnd = 0;

  constructor(
    private readonly dir: string,
    private readonly fsync: boolean,
    private readonly logger: Logger,
  ) {}

  /** Rebuilds `head` from the newest snapshot and the records after it. */
  recover(head: Head): RecoveredHead {
    const seqs = listLogs(this.dir);
    const state = { positions: new Map<number, number>(), cutBoundary: Number.NEGATIVE_INFINITY };
    // Newest file whose first record is a valid snapshot.
    for (let k = seqs.length - 1; k >= 0; k--) {
      const file = fileName(this.dir, seqs[k]!);
      const data = readFileSync(file);
      const first = readRecord(data, FILE_HEADER);
      if (
        data.length < FILE_HEADER ||
        data.toString('latin1', 0, 4) !== MAGIC ||
        !first ||
        first.payload[0] !== KIND_SNAPSHOT
      ) {
        this.logger.warn(
          { file },
          'head log: file without a complete snapshot (a rotation was interrupted); ignoring it',
        );
        unlinkSync(file);
        continue;
      }
      const open = new Map<number, { buf: Uint8Array; bits: number; count: number }>();
      let pos = FILE_HEADER;
      let records = 0;
      for (;;) {
        const rec = readRecord(data, pos);
        if (!rec) break;
        applyRecord(head, rec.payload, open, state);
        pos = rec.end;
        records++;
      }
      for (const [ref, o] of open) if (o.count > 0) head.restoreOpen(ref, o.buf, o.bits, o.count);
      head.finishRestore();
      if (pos < data.length) {
        this.logger.warn(
          { file, validBytes: pos, droppedBytes: data.length - pos, records },
          'head log: torn or corrupt tail after the last complete checkpoint; truncating (the bus replays what it held)',
        );
        const fd = openSync(file, 'r+');
        ftruncateSync(fd, pos);
        fsyncSync(fd);
        closeSync(fd);
      }
      for (const older of seqs.slice(0, k)) unlinkSync(fileName(this.dir, older));
      this.seq = seqs[k]!;
      this.fd = openSync(file, 'a');
      this.length = pos;
      return { positions: state.positions, cutBoundary: state.cutBoundary, file, length: pos, records };
    }
    this.seq = seqs.length > 0 ? seqs[seqs.length - 1]! : 0;
    return {
      positions: state.positions,
      cutBoundary: state.cutBoundary,
      file: undefined,
      length: 0,
      records: 0,
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
    syncDir(this.dir);
    if (this.fd >= 0) closeSync(this.fd);
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

export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
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
