/**
 * Prometheus remote-write 1.0 encoding for the load generator: a `WriteRequest` protobuf
 * (/work/shared/protos/prometheus/remote.proto, types.proto), snappy-compressed (block format, not framed),
 * sent with the headers the specification requires.
 *
 * The protobuf is written by hand: the messages used are tiny (WriteRequest.timeseries = 1;
 * TimeSeries.labels = 1, samples = 2; Label.name = 1, value = 2; Sample.value = 1 (double), timestamp = 2
 * (int64)), and a series' label bytes are identical in every request, so they are encoded once per series
 * ({@link encodeLabels}) and copied into each request. The benchmark's test decodes these bytes with
 * protobufjs, an independent implementation.
 */
import { createRequire } from 'node:module';
import { ByteWriter } from '../../src/protocol/bytes.js';

/** snappyjs has no type declarations; this is the part of its API the harness uses. */
interface SnappyJs {
  compress(input: Uint8Array): Uint8Array;
  uncompress(input: Uint8Array, maxLength?: number): Uint8Array;
}
export const snappy = createRequire(import.meta.url)('snappyjs') as SnappyJs;

export const REMOTE_WRITE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'application/x-protobuf',
  'content-encoding': 'snappy',
  'x-prometheus-remote-write-version': '0.1.0',
};

const WIRE_LEN = 2; // length-delimited
const WIRE_I64 = 1; // fixed 64-bit
const WIRE_VARINT = 0;
const tag = (field: number, wire: number) => (field << 3) | wire;

const encoder = new TextEncoder();

export function varintLength(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

/**
 * The `labels` fields of a TimeSeries (repeated Label = 1), sorted by name as the specification requires.
 * `labels` must include `__name__`.
 */
export function encodeLabels(labels: Readonly<Record<string, string>>): Uint8Array {
  const w = new ByteWriter(256);
  for (const name of Object.keys(labels).sort()) {
    const n = encoder.encode(name);
    const v = encoder.encode(labels[name]!);
    const inner = 1 + varintLength(n.length) + n.length + 1 + varintLength(v.length) + v.length;
    w.u8(tag(1, WIRE_LEN));
    w.uvarint(inner);
    w.u8(tag(1, WIRE_LEN));
    w.uvarint(n.length);
    w.bytes(n);
    w.u8(tag(2, WIRE_LEN));
    w.uvarint(v.length);
    w.bytes(v);
  }
  return w.toBytes();
}

function sampleLength(timestampMs: number): number {
  // value: tag + 8 bytes; timestamp: tag + varint (int64, non-negative here).
  return 1 + 8 + 1 + varintLength(timestampMs);
}

/**
 * Appends one `TimeSeries` (as WriteRequest field 1) with the given pre-encoded labels and the samples
 * `timestamps[from..to)`, `values[from..to)`.
 */
export function writeTimeSeries(
  out: ByteWriter,
  labels: Uint8Array,
  timestamps: Float64Array,
  values: Float64Array,
  from: number,
  to: number,
): void {
  let len = labels.length;
  for (let i = from; i < to; i++) {
    const s = sampleLength(timestamps[i]!);
    len += 1 + varintLength(s) + s;
  }
  out.u8(tag(1, WIRE_LEN));
  out.uvarint(len);
  out.bytes(labels);
  for (let i = from; i < to; i++) {
    const t = timestamps[i]!;
    if (!(t >= 0 && Number.isInteger(t)))
      throw new RangeError(`remote-write timestamp must be ms >= 0: ${t}`);
    out.u8(tag(2, WIRE_LEN));
    out.uvarint(sampleLength(t));
    out.u8(tag(1, WIRE_I64));
    out.f64le(values[i]!);
    out.u8(tag(2, WIRE_VARINT));
    out.uvarint(t);
  }
}
