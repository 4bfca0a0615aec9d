/**
 * The head log: how the head survives a restart without a second write-ahead log on the hot path.
 *
 * Files: this one holds the log's files (recovery of the newest, appends, rotation); head-log-record.ts the
 * record format (its writer beside its reader, so that a layout change is made in one place, under the box
 * below); head-log-recovery.ts the judging of decoded records against what the log established before them.
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
import type { Logger } from 'pino';
import { syncDirSync } from '../model/fs.js';
import type { HeadLogView } from './head.js';
import {
  type DecodedRecord,
  decodeRecord,
  KIND_SNAPSHOT,
  Layout,
  readRecord,
  recordKind,
  unwrap,
} from './head-log-record.js';
import { type RecoveryProblem, Replayer } from './head-log-recovery.js';

export {
  compressHeadRecord,
  compressHeadRecordSync,
  encodeHeadRecord,
  headChanged,
} from './head-log-record.js';
export type { RecoveryProblem } from './head-log-recovery.js';

const MAGIC = 'TWHL';
/**
 * Format version written. 2: sealed entries carry the byte they continue from. Version-1 files exist in two
 * layouts (with and without it: the field was added without a version change), told apart record by record.
 * 3: each record's payload is stored behind a codec byte, compressed (Brotli): per-series framing, label
 * symbols and chunk headers repeat from record to record and series to series.
 */
const VERSION = 3;
const FILE_HEADER = 8;
/** Deltas below this size never trigger a compaction (a tiny head would otherwise be rewritten every time). */
const MIN_COMPACTION_BYTES = 64 << 10;

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
