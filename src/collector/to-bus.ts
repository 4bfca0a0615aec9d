/**
 * The collector's last step for every protocol: split a validated batch by partition key (tenant, job_id),
 * append one bus record per partition, and resolve only when every record is durable. Only then may the
 * request be acknowledged.
 */
import {
  type BusProducer,
  encodeBusRecord,
  jobPartitionKey,
  newRecordWriter,
  seriesPartitionKey,
} from '../bus/index.js';
import { type SeriesBatch, SeriesBatchBuilder } from '../model/batch.js';
import type { JobEvent } from '../model/job.js';
import { NativeEncoder } from '../protocol/native.js';

export interface BatchOrigin {
  readonly tenant: string;
  /** Idempotency key of the request; empty for protocols without one. */
  readonly sourceId: string;
  readonly sequence: number;
  readonly receivedAtMs: number;
}

export class BusWriter {
  private readonly encoder = new PartEncoder();
  private readonly recordWriter = newRecordWriter();

  constructor(private readonly bus: BusProducer) {}

  /**
   * Appends the batch and events. `payload`, when given, is the batch's already-encoded native payload: if the
   * whole batch maps to one partition it is forwarded as is, without re-encoding.
   */
  async write(
    origin: BatchOrigin,
    batch: SeriesBatch,
    events: readonly JobEvent[],
    payload?: Uint8Array,
  ): Promise<void> {
    await this.writeParts(
      origin,
      this.encoder.encode(origin.tenant, origin.sourceId, batch, events, payload),
    );
  }

  /**
   * Appends payloads that a decoder already split by partition key and encoded (remote-write, OTLP), one
   * record each, and resolves once every one is durable. If one append fails the request is refused; the
   * records that did become durable are harmless when the sender retries, because storage appends are
   * idempotent (docs/durability.md).
   */
  async writeParts(origin: BatchOrigin, parts: readonly EncodedPart[]): Promise<void> {
    const appends: Promise<unknown>[] = [];
    for (const part of parts) {
      const record = encodeBusRecord(
        this.recordWriter,
        origin.tenant,
        origin.sourceId,
        origin.sequence,
        origin.receivedAtMs,
        part.payload,
      );
      appends.push(this.bus.append(part.key, record));
    }
    await Promise.all(appends);
  }
}

/** Splits a decoded native batch by partition key and encodes one payload per key. */
export class PartEncoder {
  private readonly encoder = new NativeEncoder();

  /**
   * `payload`, when given, is the batch's already-encoded native payload: if the whole batch maps to one
   * partition it is forwarded as is, without re-encoding.
   */
  encode(
    tenant: string,
    sourceId: string,
    batch: SeriesBatch,
    events: readonly JobEvent[],
    payload?: Uint8Array,
  ): EncodedPart[] {
    const groups = new Map<string, { series: number[]; events: JobEvent[] }>();
    const groupOf = (key: string) => {
      let g = groups.get(key);
      if (!g) {
        g = { series: [], events: [] };
        groups.set(key, g);
      }
      return g;
    };
    for (let i = 0; i < batch.series.length; i++) {
      groupOf(seriesPartitionKey(tenant, batch.series[i]!, sourceId)!).series.push(i);
    }
    for (const ev of events) groupOf(jobPartitionKey(tenant, ev.jobId)).events.push(ev);

    // Every payload is encoded before the first append starts: a record that cannot be encoded then refuses
    // the request with nothing stored, instead of failing it after another partition's record was stored
    // (issue 16, item 3). A failed append leaves the others harmless: the sender retries the same
    // (source, sequence), and storage appends are idempotent (docs/durability.md).
    const parts: EncodedPart[] = [];
    for (const [key, group] of groups) {
      let groupPayload: Uint8Array;
      if (groups.size === 1 && payload) {
        groupPayload = payload;
      } else if (groups.size === 1) {
        groupPayload = this.encoder.encodePayload(batch, events);
      } else {
        groupPayload = this.encoder.encodePayload(subBatch(batch, group.series), group.events);
      }
      parts.push({ key, payload: groupPayload });
    }
    return parts;
  }
}

export interface EncodedPart {
  /** Partition key: (tenant, job_id), or the fallback of {@link seriesPartitionKey}. */
  readonly key: string;
  /** A native payload (docs/protocol.md) holding only series of that key. */
  readonly payload: Uint8Array;
}

function subBatch(batch: SeriesBatch, indexes: readonly number[]): SeriesBatch {
  let samples = 0;
  for (const i of indexes) samples += batch.offsets[i + 1]! - batch.offsets[i]!;
  const b = new SeriesBatchBuilder(samples);
  for (const i of indexes) {
    b.addSeries(batch.series[i]!);
    for (let j = batch.offsets[i]!; j < batch.offsets[i + 1]!; j++)
      b.add(batch.timestamps[j]!, batch.values[j]!);
  }
  return b.build();
}
