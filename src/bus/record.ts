/**
 * The envelope of one bus record (docs/protocol.md, "Bus record"):
 *
 * ```
 * ┌────────────┬──────────────┬────────────────┬──────────────┬──────────────────┬──────────────────────────┐
 * │ version u8 │ tenant (str) │ source id (str)│ seq (uvarint)│ receivedAt f64le │ native payload (to end)  │
 * └────────────┴──────────────┴────────────────┴──────────────┴──────────────────┴──────────────────────────┘
 * ```
 * str = uvarint byte length + UTF-8. The payload is an uncompressed native-protocol payload: whatever protocol
 * a batch arrived in, the collector stores it in this one form, so the processor decodes only one format.
 * The tenant comes from the sender's credentials, never from the payload.
 */
import { ByteReader, ByteWriter, DecodeError } from '../protocol/bytes.js';

export const BUS_RECORD_VERSION = 1;

export interface BusRecordHeader {
  readonly tenant: string;
  /** Idempotency key of the request that carried the data; empty when the protocol has none. */
  readonly sourceId: string;
  readonly sequence: number;
  readonly receivedAtMs: number;
  /** Where the payload starts within the record. */
  readonly payloadStart: number;
}

export function encodeBusRecord(
  w: ByteWriter,
  tenant: string,
  sourceId: string,
  sequence: number,
  receivedAtMs: number,
  payload: Uint8Array,
): Uint8Array {
  w.reset();
  w.u8(BUS_RECORD_VERSION);
  w.string(tenant);
  w.string(sourceId);
  w.uvarint(sequence);
  w.f64le(receivedAtMs);
  w.bytes(payload);
  return w.toBytes();
}

export function decodeBusRecordHeader(record: Uint8Array): BusRecordHeader {
  const r = new ByteReader(record);
  const version = r.u8('bus record version');
  if (version !== BUS_RECORD_VERSION) throw new DecodeError(`unsupported bus record version ${version}`, 0);
  const tenant = r.string('tenant', 256);
  const sourceId = r.string('source id', 256);
  const sequence = r.uvarint('sequence');
  const receivedAtMs = r.f64le('receivedAt');
  return { tenant, sourceId, sequence, receivedAtMs, payloadStart: r.pos };
}

export function newRecordWriter(): ByteWriter {
  return new ByteWriter(1 << 16);
}
