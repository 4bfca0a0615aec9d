/**
 * The bus: a partitioned, durable, replayable log between the collector and the processor.
 *
 * Partition = hash(tenant, job_id), so that everything about one job is processed in order by one processor.
 * The embedded implementation is an on-disk log in the same process ({@link DiskLogBus}); the scale-out
 * one is Apache Kafka. Because the log is durable and replayable it is also the storage's write-ahead log:
 * storage records which offsets its persisted state covers and replays the rest after a crash
 * (docs/durability.md).
 */
import { Errors, twError } from '../model/errors.js';

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

/**
 * The bus as producers and consumer groups see it, modelled on Kafka's producer and consumer-group protocol so
 * that the embedded log and Kafka are interchangeable (`bus.kind`).
 *
 * Producers `append`. Consumers `join` a group: the bus assigns each partition to exactly one member of the
 * group and moves partitions when members come and go, calling the member's {@link RebalanceListener}. A
 * member reads only partitions it owns, and commits offsets for them; a commit from a member that no longer
 * owns the partition is refused (it was fenced by a rebalance), so a stale member can never move a partition's
 * committed offset under its new owner.
 */
export interface Bus extends BusProducer {
  /**
   * Joins consumer group `group` as a new member. Its partitions arrive through `listener.onAssigned`, which
   * may be called before this resolves (Kafka assigns during the join): the listener is handed the member.
   * Members of one group share the partitions; members of different groups each see every record.
   */
  join(group: string, listener: RebalanceListener): Promise<GroupMember>;

  /** Stops producing and consuming; every member leaves its group first. */
  close(): Promise<void>;
}

/** The producing side alone: what a collector needs. */
export interface BusProducer {
  readonly partitionCount: number;

  /** The partition a key maps to; stable for a given partition count. */
  partitionOf(key: string): number;

  /**
   * Appends one record to the partition of `key`. Resolves with its offset once the record is durable
   * (the embedded log: per its fsync policy; Kafka: acknowledged by every in-sync replica, `acks=all`); only
   * then may the collector acknowledge the request that carried it. Rejects with a retryable `unavailable`
   * error when the bus cannot keep up or cannot be reached, so that the collector answers 503 with
   * Retry-After instead of buffering without bound. An aborted `signal` rejects without appending, unless the
   * record was already handed to the log.
   */
  append(key: string, record: Uint8Array, signal?: AbortSignal): Promise<AppendResult>;
}

/**
 * A member's part in a rebalance. The bus calls these one at a time per member, never concurrently, and waits
 * for each to settle before it hands the partitions on (a cooperative hand-over: Kafka's
 * `ConsumerRebalanceListener`).
 */
export interface RebalanceListener {
  /**
   * These partitions now belong to this member. Restore their state (e.g. detector state saved by the
   * previous owner), then read from {@link GroupMember.committed}. Called at least once after joining, with an
   * empty list when the member got nothing (more members than partitions), so that it knows where it stands.
   * A rejection is logged and the partitions stay assigned; the member must then stop reading them.
   */
  onAssigned(partitions: readonly number[], member: GroupMember): Promise<void>;
  /**
   * These partitions are about to leave this member: stop reading them, checkpoint and commit what was
   * processed, then resolve. The bus gives them to another member only after this settles (or after the
   * member's session timed out, when it died). `lost` is true when the partitions were already taken away
   * (the member was fenced after a missed heartbeat): commits would be refused, so only drop local state.
   */
  onRevoked(partitions: readonly number[], lost: boolean, member: GroupMember): Promise<void>;
}

/** One member of a consumer group: reads and commits the partitions the group assigned to it. */
export interface GroupMember {
  readonly group: string;
  /** The partitions this member owns right now (changes during rebalances). */
  readonly assignment: ReadonlySet<number>;

  /**
   * Records of an owned partition in offset order, starting at `fromOffset`, up to about `maxBytes`.
   * Resolves with an empty array when nothing is there yet. Offsets are dense except where records were
   * lost (a corrupt segment of the embedded log, Kafka's compaction or retention): the first entry may then
   * have an offset greater than `fromOffset`. Rejects when the partition is not owned by this member.
   */
  read(partition: number, fromOffset: number, maxBytes: number, signal?: AbortSignal): Promise<BusEntry[]>;

  /** Resolves once a record at or after `offset` exists, after `timeoutMs`, on abort, or when the bus closes. */
  waitFor(partition: number, offset: number, timeoutMs: number, signal?: AbortSignal): Promise<void>;

  /**
   * Records that the group has processed every record of `partition` before `offset`. Resolves once the commit
   * is durable. Rejects (`conflict`) when this member no longer owns the partition. The embedded log may then
   * delete whole segments every group has committed.
   */
  commit(partition: number, offset: number): Promise<void>;

  /** The group's committed offset for `partition`, or the partition's start when the group never committed. */
  committed(partition: number): Promise<number>;

  /** The offset the next record of the partition will have (for lag). */
  endOffset(partition: number): Promise<number>;

  /** The oldest offset still readable in the partition. */
  startOffset(partition: number): Promise<number>;

  /** Leaves the group: revokes every owned partition (through the listener), then stops. */
  leave(): Promise<void>;
}

/**
 * Refuses (`conflict`) to `what` (e.g. "cannot read") a partition that `member` does not own: every
 * {@link GroupMember} that checks ownership itself (the embedded group, Kafka) says it the same way.
 */
export function assertOwned(member: GroupMember, partition: number, what: string): void {
  if (!member.assignment.has(partition)) {
    throw twError(
      Errors.conflict,
      `${what} partition ${partition}: not assigned to this member of group ${member.group} (it was rebalanced away)`,
    );
  }
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

/**
 * The partition key of one series: its job's ({@link jobPartitionKey}) when it has a `job_id`; otherwise its
 * node, its scrape target (`instance`, as Prometheus sends it) or else the sender (`sourceId`), so that one busy
 * node does not pile every unlabelled series onto one partition. The collector keys records by it, and a
 * processor finds by it which partition a series' detector state belongs to (undefined: keyed by the sender
 * alone, which a processor cannot know).
 */
export function seriesPartitionKey(
  tenant: string,
  labels: Readonly<Record<string, string>>,
  sourceId?: string,
): string | undefined {
  const jobId = labels.job_id;
  if (jobId !== undefined) return jobPartitionKey(tenant, jobId);
  const place = labels.node_id ?? labels.instance ?? sourceId;
  return place === undefined ? undefined : `${tenant}\u0000\u0000${place}`;
}
