/**
 * The bus: a partitioned, durable, replayable log between the collector and the processor.
 *
 * Partition = hash(tenant, job_id), so that everything about one job is processed in order by one processor.
 * The embedded implementation is an on-disk log in the same process ({@link DiskLogBus}); the scale-out
 * one is Apache Kafka. Because the log is durable and replayable it is also the storage's write-ahead log:
 * storage records which offsets its persisted state covers and replays the rest after a crash
 * (docs/durability.md).
 */

export interface BusEntry {
  readonly partition: number;
  readonly offset: number;
  /** A view into a read buffer; valid until the consumer's next `read` of this partition. Copy to keep. */
  readonly record: Uint8Array;
}

export interface AppendResult {
  readonly partition: number;
  readonly offset: number;
}

export interface Bus {
  readonly partitionCount: number;

  /** The partition a key maps to; stable for a given partition count. */
  partitionOf(key: string): number;

  /**
   * Appends one record to the partition of `key`. Resolves with its offset once the record is durable
   * (per the bus's fsync policy); only then may the collector acknowledge the request that carried it.
   * Rejects with a retryable `unavailable` error when the bus cannot keep up (its write queue is full),
   * so that the collector answers 503 with Retry-After instead of buffering without bound.
   */
  append(key: string, record: Uint8Array): Promise<AppendResult>;

  /**
   * Consumes records of one partition in offset order, starting at `fromOffset`, up to about `maxBytes`.
   * Returns an empty array when there is nothing durable at or after `fromOffset` yet.
   * Offsets are dense except after a corrupt segment was cut short: the first entry may then have an offset
   * greater than `fromOffset`.
   */
  read(partition: number, fromOffset: number, maxBytes: number): Promise<BusEntry[]>;

  /** Resolves once a durable record at or after `offset` exists, after `timeoutMs`, or when the bus closes. */
  waitFor(partition: number, offset: number, timeoutMs: number): Promise<void>;

  /** The offset the next durable record of the partition will have. */
  endOffset(partition: number): number;

  /** The oldest offset still readable in the partition. */
  startOffset(partition: number): number;

  /** Records that consumer `group` has processed every record of `partition` before `offset`. */
  commit(group: string, partition: number, offset: number): Promise<void>;

  /** The offset consumer `group` committed for `partition`, or 0 when it never committed. */
  committed(group: string, partition: number): number;

  /** Lets the bus delete whole segments that end at or before `offset`: nobody needs them any more. */
  truncateBefore(partition: number, offset: number): Promise<void>;

  close(): Promise<void>;
}

/** FNV-1a over the UTF-16 code units of the key: fast, stable across processes and versions. */
export function hashPartitionKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The partition key of a job's data: tenant and job id, as DESIGN.md specifies. */
export function jobPartitionKey(tenant: string, jobId: string): string {
  return `${tenant}\u0000${jobId}`;
}
