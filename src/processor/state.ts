/**
 * The processor's own checkpoint: the detector engine's state (per-series and per-job state, open alerts,
 * derived-series buckets) and the bus positions it covers, in `<data-dir>/processor/state.bin`.
 *
 * Written atomically (temporary file, fsync, rename, fsync of the directory), so a crash leaves either the
 * previous checkpoint or the new one. After a restart the processor restores it and re-applies to the
 * detectors only the records at or after these positions; records before them (which storage may still need
 * replayed) go to storage only. So detector state sees every record exactly once, and the alert changes that
 * follow the checkpoint are re-derived with their original timestamps, which the alert hub recognises.
 *
 * Format version 2 (binary; the engine's part is described at `DetectorEngine.encodeState`):
 * `"TWPS" u8(2) f64(savedAtMs) uvarint(n) n×[uvarint(partition) uvarint(nextOffset)]` then the engine's
 * state. Written in slices (the caller gives the event loop a turn between them) with asynchronous writes:
 * a million series cost no long pause. Version 1 (`state.json`, the engine's snapshot as JSON) is still
 * read: a data directory of an earlier build keeps its detector state.
 */
import { mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { syncDirSync } from '../model/fs.js';
import { growBuffer } from '../protocol/bytes.js';
import type { DetectorEngine, EngineSnapshot } from './detectors/engine.js';

export const STATE_FILE = 'state.bin';
/** Version 1's file: read when there is no version-2 file, removed once one is written. */
export const STATE_FILE_V1 = 'state.json';
const MAGIC = [0x54, 0x57, 0x50, 0x53]; // "TWPS"
const VERSION = 2;

export class StateFormatError extends Error {}

/** Binary writer for state files: grows one buffer; `take` hands out what was written and starts over. */
export class StateWriter {
  private buf = new Uint8Array(1 << 16);
  private pos = 0;
  private readonly f64 = new Float64Array(1);
  private readonly f64Bytes = new Uint8Array(this.f64.buffer);
  private static readonly encoder = new TextEncoder();

  get length(): number {
    return this.pos;
  }

  private ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.buf = growBuffer(this.buf, this.pos, n);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  /** 0 ≤ v < 2^53. */
  uvarint(v: number): void {
    this.ensure(8);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  /** Any float64, NaN payloads bit for bit. */
  float(v: number): void {
    this.ensure(8);
    this.f64[0] = v;
    this.buf.set(this.f64Bytes, this.pos);
    this.pos += 8;
  }

  string(s: string): void {
    this.ensure(s.length * 3 + 8);
    const lenAt = this.pos;
    // Reserve 4 bytes of length, then move the text if the length took fewer.
    const { written } = StateWriter.encoder.encodeInto(s, this.buf.subarray(lenAt + 4));
    const lenBytes = written < 0x80 ? 1 : written < 0x4000 ? 2 : written < 0x200000 ? 3 : 4;
    if (lenBytes !== 4) this.buf.copyWithin(lenAt + lenBytes, lenAt + 4, lenAt + 4 + written);
    this.uvarint(written);
    this.pos = lenAt + lenBytes + written;
  }

  /** A length-prefixed section whose content `fill` writes (the reader can skip it whole). */
  section(fill: () => void): void {
    const before = this.pos;
    this.ensure(4);
    this.pos += 4;
    fill();
    const len = this.pos - before - 4;
    if (len >= 2 ** 32) throw new Error('state section too large');
    new DataView(this.buf.buffer).setUint32(before, len, true);
  }

  /** The bytes written since the last `take` (a copy), and forget them. */
  take(): Uint8Array {
    const out = this.buf.slice(0, this.pos);
    this.pos = 0;
    return out;
  }
}

export class StateReader {
  pos = 0;
  private readonly f64 = new Float64Array(1);
  private readonly f64Bytes = new Uint8Array(this.f64.buffer);
  private static readonly decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(
    readonly buf: Uint8Array,
    private end = buf.length,
  ) {}

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.end) throw new StateFormatError(`state file truncated in ${what}`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }

  uvarint(what: string): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      this.need(1, what);
      const b = this.buf[this.pos++]!;
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 0x80;
    }
    throw new StateFormatError(`varint too long in ${what}`);
  }

  float(what: string): number {
    this.need(8, what);
    this.f64Bytes.set(this.buf.subarray(this.pos, this.pos + 8));
    this.pos += 8;
    return this.f64[0]!;
  }

  string(what: string): string {
    const len = this.uvarint(what);
    this.need(len, what);
    const s = StateReader.decoder.decode(this.buf.subarray(this.pos, this.pos + len));
    this.pos += len;
    return s;
  }

  /** Reads a section written by {@link StateWriter.section}: `read` gets a reader over its bytes only. */
  section<T>(what: string, read: (r: StateReader) => T): T {
    this.need(4, what);
    const len = new DataView(this.buf.buffer, this.buf.byteOffset).getUint32(this.pos, true);
    this.pos += 4;
    this.need(len, what);
    const r = new StateReader(this.buf.subarray(0, this.pos + len), this.pos + len);
    r.pos = this.pos;
    const out = read(r);
    this.pos += len;
    return out;
  }
}

/** A state file read from disk, not yet applied to an engine. */
export interface SavedState {
  readonly version: 1 | 2;
  readonly savedAtMs: number;
  readonly positions: [number, number][];
  /** Restores the engine's part; returns what it restored, for the log. */
  restoreInto(engine: DetectorEngine): { series: number; alerts: number };
}

/** The saved state, or undefined when there is none; a damaged file is reported, never silently ignored. */
export function readState(dir: string): SavedState | undefined {
  let bytes: Uint8Array | undefined;
  try {
    bytes = readFileSync(path.join(dir, STATE_FILE));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (bytes) return readV2(bytes, path.join(dir, STATE_FILE));
  let text: string;
  try {
    text = readFileSync(path.join(dir, STATE_FILE_V1), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const state = JSON.parse(text) as {
    version: number;
    savedAtMs: number;
    positions: [number, number][];
    engine: EngineSnapshot;
  };
  if (state.version !== 1 || !Array.isArray(state.positions) || typeof state.engine !== 'object')
    throw new Error(`${path.join(dir, STATE_FILE_V1)} is not a processor state file of version 1`);
  return {
    version: 1,
    savedAtMs: state.savedAtMs,
    positions: state.positions,
    restoreInto(engine) {
      engine.restore(state.engine);
      return { series: state.engine.series.length, alerts: state.engine.alerts.length };
    },
  };
}

function readV2(bytes: Uint8Array, file: string): SavedState {
  const r = new StateReader(bytes);
  for (const m of MAGIC)
    if (r.u8('magic') !== m) throw new StateFormatError(`${file} is not a processor state file`);
  const version = r.u8('version');
  if (version !== VERSION)
    throw new StateFormatError(`${file} has state format version ${version}; this build reads 1 and 2`);
  const savedAtMs = r.float('savedAtMs');
  const positions: [number, number][] = [];
  const n = r.uvarint('positions');
  for (let i = 0; i < n; i++) positions.push([r.uvarint('partition'), r.uvarint('offset')]);
  return {
    version: 2,
    savedAtMs,
    positions,
    restoreInto: (engine) => engine.decodeState(r),
  };
}

/**
 * The header of a per-partition state file (partition-state.ts): the version-2 header with one position, so
 * that such a file is also a whole state file of that one partition. The engine's bytes follow it.
 */
export function writePartitionFileHeader(savedAtMs: number, partition: number, offset: number): Uint8Array {
  const w = new StateWriter();
  for (const m of MAGIC) w.u8(m);
  w.u8(VERSION);
  w.float(savedAtMs);
  w.uvarint(1);
  w.uvarint(partition);
  w.uvarint(offset);
  return w.take();
}

export function readPartitionFileHeader(
  bytes: Uint8Array,
  file: string,
): { savedAtMs: number; partition: number; offset: number; headerBytes: number } {
  const r = new StateReader(bytes);
  for (const m of MAGIC)
    if (r.u8('magic') !== m) throw new StateFormatError(`${file} is not a processor state file`);
  const version = r.u8('version');
  if (version !== VERSION)
    throw new StateFormatError(`${file} has state format version ${version}; this build reads 2`);
  const savedAtMs = r.float('savedAtMs');
  if (r.uvarint('positions') !== 1) throw new StateFormatError(`${file} is not the state of one partition`);
  const partition = r.uvarint('partition');
  const offset = r.uvarint('offset');
  return { savedAtMs, partition, offset, headerBytes: r.pos };
}

/** Removes the single-file state of earlier builds (once its content lives in per-partition files). */
export function removeState(dir: string): void {
  rmSync(path.join(dir, STATE_FILE), { force: true });
  rmSync(path.join(dir, STATE_FILE_V1), { force: true });
  // Durably gone: a file coming back after a crash would be migrated again (harmless, as stores refuse an
  // older offset, but wasted work).
  syncDirSync(dir);
}

/**
 * Writes the engine's state and the positions it covers, atomically. The engine is encoded in slices; between
 * them `pause` is awaited (the caller gives the event loop a turn, and makes sure nothing changes the engine
 * meanwhile). Resolves with the file's size once it is durable.
 */
export async function writeState(
  dir: string,
  savedAtMs: number,
  positions: readonly [number, number][],
  engine: DetectorEngine,
  pause: () => Promise<void>,
  /** Series encoded between two pauses. */
  slice = 2048,
): Promise<number> {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, STATE_FILE);
  const tmp = `${file}.tmp`;
  const handle = await open(tmp, 'w');
  let size = 0;
  try {
    const w = new StateWriter();
    for (const m of MAGIC) w.u8(m);
    w.u8(VERSION);
    w.float(savedAtMs);
    w.uvarint(positions.length);
    for (const [p, o] of positions) {
      w.uvarint(p);
      w.uvarint(o);
    }
    for (const _ of engine.encodeState(w, slice)) {
      if (w.length >= 1 << 20) {
        const chunk = w.take();
        await handle.write(chunk);
        size += chunk.length;
      }
      await pause();
    }
    const rest = w.take();
    await handle.write(rest);
    size += rest.length;
    await handle.sync();
  } finally {
    await handle.close();
  }
  renameSync(tmp, file);
  syncDirSync(dir);
  // A version-1 file of an earlier build would be read if this one were lost: it is superseded now.
  rmSync(path.join(dir, STATE_FILE_V1), { force: true });
  return size;
}
