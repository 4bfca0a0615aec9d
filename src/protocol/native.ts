/**
 * trainwatch's native batch protocol, spoken by the agent, the Python SDK and the simulator at
 * `POST /api/v1/ingest`. The format is specified in docs/protocol.md; the shared test vectors in
 * testdata/native/ are checked by both this codec and the Python SDK's.
 *
 * A frame is a small uncompressed header (magic, version, compression, idempotency key, CRC) followed by a
 * payload: a string table, then series that refer to it, each with its timestamps (zigzag deltas) and
 * float64 values, then job events as JSON.
 */
import { crc32, deflateSync, inflateSync } from 'node:zlib';
import { type SeriesBatch, SeriesBatchBuilder } from '../model/batch.js';
import type { JobEvent } from '../model/job.js';
import { ByteReader, ByteWriter, DecodeError } from './bytes.js';

export const NATIVE_MAGIC = [0x54, 0x57, 0x42] as const; // "TWB"
export const NATIVE_VERSION = 1;
export const NATIVE_CONTENT_TYPE = 'application/x-trainwatch-batch';

export const Compression = { none: 0, zlib: 1 } as const;
export type CompressionName = keyof typeof Compression;

/** A decoded native frame: who sent it (idempotency key) and what it carries. */
export interface NativeFrame {
  readonly sourceId: string;
  readonly sequence: number;
  readonly batch: SeriesBatch;
  readonly events: readonly JobEvent[];
}

export interface DecodeLimits {
  /** Largest payload after decompression; guards against compression bombs. */
  readonly maxPayloadBytes: number;
  readonly maxLabelValueBytes: number;
  readonly maxLabelsPerSeries: number;
}

export const defaultDecodeLimits: DecodeLimits = {
  maxPayloadBytes: 64 << 20,
  maxLabelValueBytes: 4096,
  maxLabelsPerSeries: 64,
};

const MAX_SOURCE_ID_BYTES = 256;
const MAX_EVENT_BYTES = 1 << 20;

// ---------------------------------------------------------------------------------------------------------
// Encoding

/**
 * Encodes frames; one encoder is reused for many frames (its buffers grow once and stay).
 * The string table is built per frame, so every frame decodes on its own.
 */
export class NativeEncoder {
  private readonly payload = new ByteWriter(1 << 16);
  private readonly body = new ByteWriter(1 << 16);
  private readonly stringIndex = new Map<string, number>();
  private readonly strings: string[] = [];

  /** The uncompressed payload of a batch and its events, as carried on the bus. */
  encodePayload(batch: SeriesBatch, events: readonly JobEvent[] = []): Uint8Array {
    this.writePayload(batch, events);
    return this.payload.toBytes();
  }

  encodeFrame(frame: NativeFrame, compression: CompressionName = 'zlib'): Uint8Array {
    this.writePayload(frame.batch, frame.events);
    const raw = this.payload.view_();
    const body = this.body;
    body.reset();
    body.bytes(Uint8Array.from(NATIVE_MAGIC));
    body.u8(NATIVE_VERSION);
    body.u8(Compression[compression]);
    body.string(frame.sourceId);
    body.uvarint(frame.sequence);
    body.u32le(crc32(raw));
    body.bytes(compression === 'zlib' ? deflateSync(raw) : raw);
    return body.toBytes();
  }

  private writePayload(batch: SeriesBatch, events: readonly JobEvent[]): void {
    const out = this.payload;
    out.reset();
    this.stringIndex.clear();
    this.strings.length = 0;
    for (const labels of batch.series) {
      for (const name in labels) {
        this.intern(name);
        this.intern(labels[name]!);
      }
    }
    out.uvarint(this.strings.length);
    for (const s of this.strings) out.string(s);

    out.uvarint(batch.series.length);
    for (let i = 0; i < batch.series.length; i++) {
      const labels = batch.series[i]!;
      const names = Object.keys(labels);
      out.uvarint(names.length);
      for (const name of names) {
        out.uvarint(this.stringIndex.get(name)!);
        out.uvarint(this.stringIndex.get(labels[name]!)!);
      }
      const from = batch.offsets[i]!;
      const to = batch.offsets[i + 1]!;
      out.uvarint(to - from);
      let prev = 0;
      for (let j = from; j < to; j++) {
        const t = batch.timestamps[j]!;
        out.svarint(t - prev);
        prev = t;
      }
      out.f64leArray(batch.values, from, to);
    }

    out.uvarint(events.length);
    for (const ev of events) out.string(JSON.stringify(ev));
  }

  private intern(s: string): void {
    if (this.stringIndex.has(s)) return;
    this.stringIndex.set(s, this.strings.length);
    this.strings.push(s);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Decoding

export interface FrameHeader {
  readonly sourceId: string;
  readonly sequence: number;
  readonly compression: number;
  readonly crc: number;
  /** Where the (possibly compressed) payload starts in the frame. */
  readonly payloadStart: number;
}

export function decodeFrameHeader(frame: Uint8Array): FrameHeader {
  const r = new ByteReader(frame);
  r.need(5, 'frame header');
  if (frame[0] !== NATIVE_MAGIC[0] || frame[1] !== NATIVE_MAGIC[1] || frame[2] !== NATIVE_MAGIC[2]) {
    throw new DecodeError('not a trainwatch batch: the body does not start with the magic bytes "TWB"', 0);
  }
  r.pos = 3;
  const version = r.u8('version');
  if (version !== NATIVE_VERSION) {
    throw new DecodeError(
      `unsupported native protocol version ${version} (this server speaks ${NATIVE_VERSION})`,
      3,
    );
  }
  const compression = r.u8('compression');
  if (compression !== Compression.none && compression !== Compression.zlib) {
    throw new DecodeError(`unknown compression ${compression} (0 = none, 1 = zlib)`, 4);
  }
  const sourceId = r.string('source id', MAX_SOURCE_ID_BYTES);
  if (sourceId === '') throw new DecodeError('source id is empty', r.pos);
  const sequence = r.uvarint('sequence');
  const crc = r.u32le('payload CRC');
  return { sourceId, sequence, compression, crc, payloadStart: r.pos };
}

/** Decompresses and checks the payload of a frame whose header is already decoded. */
export function framePayload(
  frame: Uint8Array,
  header: FrameHeader,
  limits: DecodeLimits = defaultDecodeLimits,
): Uint8Array {
  const compressed = frame.subarray(header.payloadStart);
  let payload: Uint8Array;
  if (header.compression === Compression.zlib) {
    try {
      payload = inflateSync(compressed, { maxOutputLength: limits.maxPayloadBytes });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ERR_BUFFER_TOO_LARGE') {
        throw new DecodeError(
          `payload inflates to more than the limit of ${limits.maxPayloadBytes} bytes`,
          header.payloadStart,
        );
      }
      throw new DecodeError(`payload is not valid zlib data: ${e.message}`, header.payloadStart);
    }
  } else {
    if (compressed.length > limits.maxPayloadBytes) {
      throw new DecodeError(
        `payload is ${compressed.length} bytes, more than the limit of ${limits.maxPayloadBytes}`,
        header.payloadStart,
      );
    }
    payload = compressed;
  }
  const actual = crc32(payload);
  if (actual !== header.crc) {
    throw new DecodeError(
      `payload CRC mismatch: header says ${header.crc.toString(16)}, payload has ${actual.toString(16)}`,
      header.payloadStart,
    );
  }
  return payload;
}

export function decodeFrame(frame: Uint8Array, limits: DecodeLimits = defaultDecodeLimits): NativeFrame {
  const header = decodeFrameHeader(frame);
  const payload = framePayload(frame, header, limits);
  const { batch, events } = decodePayload(payload, limits);
  return { sourceId: header.sourceId, sequence: header.sequence, batch, events };
}

export interface DecodedPayload {
  readonly batch: SeriesBatch;
  readonly events: readonly JobEvent[];
}

/**
 * Decodes a payload into a columnar batch. Allocates one label object per series and one string per string
 * table entry, never an object per sample.
 */
export function decodePayload(
  payload: Uint8Array,
  limits: DecodeLimits = defaultDecodeLimits,
): DecodedPayload {
  const r = new ByteReader(payload);
  const stringCount = r.uvarint('string count');
  // Every string costs at least its length byte: a count beyond the payload size is a lie.
  if (stringCount > r.remaining)
    throw new DecodeError(`string count ${stringCount} exceeds payload size`, r.pos);
  const strings = new Array<string>(stringCount);
  for (let i = 0; i < stringCount; i++)
    strings[i] = r.string('string table entry', limits.maxLabelValueBytes);

  const seriesCount = r.uvarint('series count');
  if (seriesCount > r.remaining)
    throw new DecodeError(`series count ${seriesCount} exceeds payload size`, r.pos);
  // Samples cost at least 9 bytes each (1 timestamp varint + 8 value bytes): bounds the allocation up front.
  const builder = new SeriesBatchBuilder(Math.min(Math.floor(r.remaining / 9) + 1, 1 << 20));
  for (let s = 0; s < seriesCount; s++) {
    const labelCount = r.uvarint('label count');
    if (labelCount > limits.maxLabelsPerSeries) {
      throw new DecodeError(
        `series ${s} has ${labelCount} labels, more than the limit of ${limits.maxLabelsPerSeries}`,
        r.pos,
      );
    }
    const labels: Record<string, string> = {};
    for (let l = 0; l < labelCount; l++) {
      const ni = r.uvarint('label name index');
      const vi = r.uvarint('label value index');
      checkLabelRefs(s, ni, vi, stringCount, r.pos);
      const name = strings[ni]!;
      if (Object.hasOwn(labels, name))
        throw new DecodeError(`series ${s} has label ${JSON.stringify(name)} twice`, r.pos);
      labels[name] = strings[vi]!;
    }
    const sampleCount = readSampleCount(r, s);
    builder.addSeries(labels);
    // Timestamps first (varints), then the values block; decode values into place afterwards.
    // Twin: collector/native-decode.ts:NativeRefDecoder, the collector's hot path, writing into a RefBatch.
    let t = 0;
    const tsStart = builder.sampleCount;
    for (let j = 0; j < sampleCount; j++) {
      t += r.svarint('timestamp');
      if (!Number.isSafeInteger(t))
        throw new DecodeError(`series ${s} has timestamp ${t} out of range`, r.pos);
      builder.add(t, 0);
    }
    r.f64leInto(builder.valuesView(), tsStart, sampleCount, 'values');
  }

  const events = readJobEvents(r);
  return { batch: builder.build(), events };
}

/**
 * The payload's last section: its job events (JSON each, checked), which must end the payload. Shared with
 * the processor's allocation-free record decoder, so both accept and refuse the same bytes with the same message.
 */
export function readJobEvents(r: ByteReader): JobEvent[] {
  const eventCount = r.uvarint('event count');
  if (eventCount > r.remaining)
    throw new DecodeError(`event count ${eventCount} exceeds payload size`, r.pos);
  const events: JobEvent[] = [];
  for (let e = 0; e < eventCount; e++) {
    const json = r.string('job event', MAX_EVENT_BYTES);
    let ev: unknown;
    try {
      ev = JSON.parse(json);
    } catch (err) {
      throw new DecodeError(`job event ${e} is not valid JSON: ${(err as Error).message}`, r.pos);
    }
    events.push(checkJobEvent(ev, e, r.pos));
  }
  if (r.remaining !== 0)
    throw new DecodeError(`${r.remaining} unexpected bytes after the last job event`, r.pos);
  return events;
}

const EVENT_KINDS = new Set(['start', 'update', 'finish']);

/** Checks one decoded job event of a payload (shared with the processor's record decoder). */
function checkJobEvent(ev: unknown, index: number, pos: number): JobEvent {
  if (typeof ev !== 'object' || ev === null || Array.isArray(ev))
    throw new DecodeError(`job event ${index} is not an object`, pos);
  const o = ev as Record<string, unknown>;
  if (typeof o.kind !== 'string' || !EVENT_KINDS.has(o.kind)) {
    throw new DecodeError(
      `job event ${index} has kind ${JSON.stringify(o.kind)}; expected start, update or finish`,
      pos,
    );
  }
  if (typeof o.jobId !== 'string' || o.jobId === '')
    throw new DecodeError(`job event ${index} has no jobId`, pos);
  if (typeof o.timeMs !== 'number' || !Number.isFinite(o.timeMs))
    throw new DecodeError(`job event ${index} has no numeric timeMs`, pos);
  for (const field in o) {
    if (nestingDepth(o[field]) > MAX_EVENT_DEPTH) {
      throw new DecodeError(
        `job event ${index} field ${field} is nested deeper than ${MAX_EVENT_DEPTH} levels`,
        pos,
      );
    }
  }
  return o as unknown as JobEvent;
}

/**
 * Objects and arrays in a job event nest at most this deep. Deeper values are refused at the door: everything
 * after (JSON.stringify in the job store, the UI) recurses over them, and a 5000-deep `config` once stopped
 * every checkpoint (issue 16, item 3).
 */
export const MAX_EVENT_DEPTH = 32;

/** How deep objects and arrays nest in `v` (0 for a scalar), counted without recursion, up to one past the limit. */
function nestingDepth(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 0;
  let deepest = 0;
  const stack: [unknown, number][] = [[v, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (depth > deepest) deepest = depth;
    if (deepest > MAX_EVENT_DEPTH) return deepest;
    for (const child of Object.values(node as object))
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
  }
  return deepest;
}

/**
 * Reads series `s`'s sample count, refusing one that the rest of the payload cannot hold (a sample takes at
 * least 9 bytes: a one-byte timestamp delta and an 8-byte value), before anything is allocated for it.
 */
export function readSampleCount(r: ByteReader, s: number): number {
  const sampleCount = r.uvarint('sample count');
  if (sampleCount * 9 > r.remaining) {
    throw new DecodeError(
      `series ${s} claims ${sampleCount} samples but only ${r.remaining} bytes remain`,
      r.pos,
    );
  }
  return sampleCount;
}

/** Refuses a label of series `s` whose name or value index lies outside the payload's string table. */
export function checkLabelRefs(s: number, ni: number, vi: number, stringCount: number, pos: number): void {
  if (ni >= stringCount || vi >= stringCount)
    throw new DecodeError(
      `series ${s} refers to string ${Math.max(ni, vi)} but the table has ${stringCount}`,
      pos,
    );
}
