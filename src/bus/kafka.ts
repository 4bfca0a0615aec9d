/**
 * The scale-out bus: Apache Kafka (or a Kafka-compatible service: Azure Event Hubs, Amazon MSK, Confluent
 * Cloud) through `@platformatic/kafka`. docs/kafka.md explains the choices; the invariants are here.
 *
 * Layout: one topic, `partitions` partitions; a record goes to partition `hashPartitionKey(key) % partitions`,
 * exactly as in the embedded {@link DiskLogBus}, so that one job's data is in one partition whichever bus runs.
 *
 * Producer: idempotent, `acks=all`, one produce request in flight per bus. Appends queued while a request is
 * in flight go together in the next one (group commit), which is what makes one-record-per-HTTP-request
 * ingestion fast. One request at a time is also what the client's idempotence needs: it reads a partition's
 * sequence number when it builds a request and advances it when the response arrives, so two overlapping
 * requests to one partition would carry the same sequence numbers and the broker would drop the second as a
 * duplicate.
 *
 * Consumers: one Kafka consumer per group member, classic group protocol (what every managed service speaks),
 * eager rebalancing: when the group rebalances, the member revokes everything it owns through its
 * {@link RebalanceListener} before it sends its JoinGroup request, and the coordinator hands partitions to new
 * owners only once every member has rejoined (or was dropped after the rebalance timeout). The client has no
 * rebalance hooks, so the member intercepts the client's JoinGroup (and OffsetCommit) requests: see
 * {@link KafkaMember.interceptApis}. Reads are pull-based Fetch requests on a connection pool of their own, so
 * that a long-poll never queues the member's commits behind it on the broker connection.
 */

import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import {
  Admin,
  type ClusterMetadata,
  ConnectionPool,
  Consumer,
  type ConsumerGroupJoinPayload,
  FetchIsolationLevels,
  IS_CONTROL,
  kGetApi,
  ProduceAcks,
  Producer,
  type SASLOptions,
  UserError,
} from '@platformatic/kafka';
import type { Logger } from 'pino';
import { Errors, TrainwatchError, twError } from '../model/errors.js';
import {
  type AppendResult,
  type Bus,
  type BusEntry,
  type GroupMember,
  hashPartitionKey,
  type RebalanceListener,
} from './bus.js';

export interface KafkaBusOptions {
  /** Bootstrap brokers, `host:port`. */
  readonly brokers: readonly string[];
  readonly topic: string;
  /** The topic's partition count: created with it, and an existing topic must have it (keys map by it). */
  readonly partitions: number;
  readonly clientId: string;
  /** For a topic created by `open`; the cluster's default (`default.replication.factor`) when absent. */
  readonly replicationFactor?: number;
  /** Passed to the client as is: managed services (Event Hubs, MSK IAM/SCRAM, Confluent Cloud) need them. */
  readonly sasl?: SASLOptions;
  readonly tls?: TlsConnectionOptions;
  /** A request (produce, fetch, commit, …) not answered by then fails. Default 30 s. */
  readonly requestTimeoutMs?: number;
  /** Retries of a failed request before `append` rejects (with 503 for the collector). Default 3. */
  readonly retries?: number;
  readonly retryDelayMs?: number;
  /** Consumer group session: a member silent this long is dropped and its partitions move. Default 30 s. */
  readonly sessionTimeoutMs?: number;
  readonly heartbeatIntervalMs?: number;
  /** How long the coordinator waits for every member to rejoin (and revoke) in a rebalance. Default 60 s. */
  readonly rebalanceTimeoutMs?: number;
  /** Appends are refused with a retryable error while more than this many bytes wait to be produced. */
  readonly maxQueuedBytes?: number;
  readonly logger: Logger;
}

const DEFAULTS = {
  requestTimeoutMs: 30_000,
  retries: 3,
  retryDelayMs: 500,
  sessionTimeoutMs: 30_000,
  heartbeatIntervalMs: 3_000,
  rebalanceTimeoutMs: 60_000,
  maxQueuedBytes: 256 << 20,
};

/**
 * Bytes of record values per produce request. Kafka limits a partition's record batch to `message.max.bytes`
 * (1 MiB by default, Event Hubs the same); a request of at most this much keeps every batch under it.
 */
const MAX_REQUEST_VALUE_BYTES = 900 << 10;
/** Seconds the collector's 503 asks clients to wait when Kafka cannot be reached. */
const RETRY_AFTER_SECONDS = 2;
/**
 * A read fetches at least this much ahead into the partition's buffer: the processor asks for small slices,
 * and one Fetch round trip per slice would bound it by latency.
 */
const READ_AHEAD_BYTES = 1 << 20;
const GROUP_RE = /^[a-z0-9_-]+$/;
const EMPTY = new Uint8Array(0);

interface PendingAppend {
  readonly partition: number;
  readonly value: Buffer;
  readonly resolve: (r: AppendResult) => void;
  readonly reject: (e: Error) => void;
  /** Set once the record is in a produce request: an abort can no longer take it back. */
  sent: boolean;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: (() => void) | undefined;
}

/** Connection settings every client of one bus shares. */
function clientBase(opts: KafkaBusOptions, clientId: string) {
  return {
    clientId,
    bootstrapBrokers: [...opts.brokers],
    requestTimeout: opts.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
    retries: opts.retries ?? DEFAULTS.retries,
    retryDelay: opts.retryDelayMs ?? DEFAULTS.retryDelayMs,
    ...(opts.sasl ? { sasl: opts.sasl } : {}),
    ...(opts.tls ? { tls: opts.tls } : {}),
  };
}

/** The client's error, as a retryable 503 naming what failed. */
function unavailable(what: string, err: unknown, brokers: readonly string[]): TrainwatchError {
  if (err instanceof TrainwatchError) return err;
  return twError(
    Errors.unavailable,
    `${what} (Kafka brokers ${brokers.join(',')}): ${describe(err)}`,
    RETRY_AFTER_SECONDS,
  );
}

/** The client wraps retried failures in an AggregateError whose message says only "failed N times". */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const inner = (err as Partial<AggregateError>).errors;
  const last = Array.isArray(inner) && inner.length > 0 ? inner[inner.length - 1] : undefined;
  return last instanceof Error && last.message !== err.message
    ? `${err.message} (${describe(last)})`
    : err.message;
}

export class KafkaBus implements Bus {
  readonly partitionCount: number;
  private queue: PendingAppend[] = [];
  private queuedBytes = 0;
  private flushing: Promise<void> | undefined;
  private closed = false;
  /**
   * Set when a produce request failed: the broker may have written it. The next request must not reuse its
   * sequence numbers (the broker would take different records with the same numbers for a retry of the
   * written ones, acknowledge them, and drop them), so a new producer id is fetched first.
   */
  private needsNewProducerId = false;
  private readonly members = new Set<KafkaMember>();
  private nextMemberId = 0;
  /** Per-partition counters of one produce request, reused (no allocation per request). */
  private readonly counts: Int32Array;
  private readonly bases: Float64Array;

  private constructor(
    readonly opts: KafkaBusOptions,
    private readonly producer: Producer<Buffer, Buffer, Buffer, Buffer>,
  ) {
    this.partitionCount = opts.partitions;
    this.counts = new Int32Array(opts.partitions);
    this.bases = new Float64Array(opts.partitions);
  }

  /**
   * Connects, creates the topic with `partitions` partitions when it does not exist, and refuses an existing
   * topic with another partition count (keys would map to other partitions than the data already there).
   */
  static async open(opts: KafkaBusOptions): Promise<KafkaBus> {
    if (!Number.isInteger(opts.partitions) || opts.partitions < 1) {
      throw new Error(`bus.partitions must be a positive integer, got ${opts.partitions}`);
    }
    const session = opts.sessionTimeoutMs ?? DEFAULTS.sessionTimeoutMs;
    const rebalance = opts.rebalanceTimeoutMs ?? DEFAULTS.rebalanceTimeoutMs;
    if (rebalance < session) {
      throw new Error(
        `bus.kafka.rebalance_timeout_ms (${rebalance}) must be at least bus.kafka.session_timeout_ms (${session})`,
      );
    }
    if (opts.brokers.length === 0) throw new Error('bus.kafka.brokers is empty: name at least one host:port');
    const admin = new Admin(clientBase(opts, `${opts.clientId}-admin`));
    try {
      await ensureTopic(admin, opts);
    } finally {
      await admin.close().catch(() => undefined);
    }
    const base = clientBase(opts, `${opts.clientId}-producer`);
    const producer = new Producer<Buffer, Buffer, Buffer, Buffer>({
      ...base,
      // The client retries an idempotent producer's requests forever when told fewer than 2 retries; the
      // collector needs a bounded wait (then 503), so at least 2.
      retries: Math.max(2, base.retries),
      idempotent: true,
      acks: ProduceAcks.ALL,
      // Explicit partitions only (partitionOf); the client never picks one.
      autocreateTopics: false,
    });
    const bus = new KafkaBus(opts, producer);
    try {
      // Fail at start rather than on the first request: brokers, credentials and the producer id.
      await producer.initIdempotentProducer({});
    } catch (err) {
      await producer.close().catch(() => undefined);
      throw unavailable(`cannot start the Kafka producer for topic ${opts.topic}`, err, opts.brokers);
    }
    return bus;
  }

  partitionOf(key: string): number {
    return hashPartitionKey(key) % this.partitionCount;
  }

  append(key: string, record: Uint8Array, signal?: AbortSignal): Promise<AppendResult> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.closed) return Promise.reject(twError(Errors.unavailable, 'the bus is shutting down', 1));
    if (this.queuedBytes + record.length > (this.opts.maxQueuedBytes ?? DEFAULTS.maxQueuedBytes)) {
      return Promise.reject(
        twError(
          Errors.unavailable,
          `the Kafka bus's produce queue is full (${this.queuedBytes} bytes waiting for acknowledgement); retry later`,
          1,
        ),
      );
    }
    // A view, not a copy: the caller leaves the bytes alone until the append settles (the client may send
    // them again on a retry until then), as it must for the embedded bus, which writes them later too.
    const value = Buffer.isBuffer(record)
      ? record
      : Buffer.from(record.buffer, record.byteOffset, record.byteLength);
    const partition = this.partitionOf(key);
    return new Promise<AppendResult>((resolve, reject) => {
      let pending: PendingAppend;
      const onAbort = signal
        ? () => {
            if (pending.sent) return;
            const i = this.queue.indexOf(pending);
            if (i >= 0) this.queue.splice(i, 1);
            this.queuedBytes -= value.length;
            reject(signal.reason);
          }
        : undefined;
      pending = { partition, value, resolve, reject, sent: false, signal, onAbort };
      signal?.addEventListener('abort', onAbort!, { once: true });
      this.queue.push(pending);
      this.queuedBytes += value.length;
      this.scheduleFlush();
    });
  }

  async join(group: string, listener: RebalanceListener): Promise<GroupMember> {
    if (this.closed) throw twError(Errors.unavailable, 'the bus is shutting down', 1);
    if (!GROUP_RE.test(group)) {
      throw twError(
        Errors.badRequest,
        `invalid consumer group name ${JSON.stringify(group)}: use [a-z0-9_-]`,
      );
    }
    const member = new KafkaMember(this.opts, group, listener, this.nextMemberId++, (m) =>
      this.members.delete(m),
    );
    this.members.add(member);
    try {
      await member.start();
    } catch (err) {
      await member.leave().catch(() => undefined);
      throw unavailable(
        `cannot join consumer group ${group} on topic ${this.opts.topic}`,
        err,
        this.opts.brokers,
      );
    }
    return member;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const m of [...this.members])
      await m.leave().catch((err) => this.opts.logger.warn({ err }, 'leave failed'));
    while (this.flushing) await this.flushing;
    await this.producer.close();
  }

  /** Bytes waiting to be produced; exported as a self-metric. */
  get pendingBytes(): number {
    return this.queuedBytes;
  }

  // -------------------------------------------------------------------------------------------------------

  private scheduleFlush(): void {
    if (this.flushing) return;
    // setImmediate: every append of this turn of the event loop (many concurrent HTTP requests) joins one request.
    this.flushing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flushLoop());
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0) await this.produceOnce();
    } finally {
      this.flushing = undefined;
    }
  }

  /** Produces what is queued (up to one request's worth) and settles those appends. */
  private async produceOnce(): Promise<void> {
    let n = 0;
    let bytes = 0;
    while (
      n < this.queue.length &&
      (n === 0 || bytes + this.queue[n]!.value.length <= MAX_REQUEST_VALUE_BYTES)
    ) {
      bytes += this.queue[n]!.value.length;
      n++;
    }
    const batch = this.queue.splice(0, n);
    const topic = this.opts.topic;
    const messages = new Array<{ topic: string; partition: number; value: Buffer }>(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const a = batch[i]!;
      a.sent = true;
      if (a.onAbort) a.signal!.removeEventListener('abort', a.onAbort);
      messages[i] = { topic, partition: a.partition, value: a.value };
    }
    try {
      if (this.needsNewProducerId) {
        await this.producer.initIdempotentProducer({});
        this.needsNewProducerId = false;
      }
      const result = await this.producer.send({ messages });
      // The broker answers with each partition's base offset; the client keeps the order of a partition's
      // messages, so a record's offset is its partition's base plus its rank among that partition's records.
      const { counts, bases } = this;
      counts.fill(0);
      bases.fill(-1);
      for (const o of result.offsets ?? []) if (o.topic === topic) bases[o.partition] = Number(o.offset);
      for (const a of batch) {
        const base = bases[a.partition]!;
        if (base < 0) {
          a.reject(
            twError(Errors.unavailable, `Kafka did not acknowledge partition ${a.partition} of ${topic}`, 1),
          );
          continue;
        }
        a.resolve({ partition: a.partition, offset: base + counts[a.partition]!++ });
      }
    } catch (err) {
      this.needsNewProducerId = true;
      const findBy = (err as { findBy?: (k: string, v: unknown) => unknown }).findBy?.bind(err);
      const tooLarge = findBy?.('apiId', 'MESSAGE_TOO_LARGE') || findBy?.('apiId', 'RECORD_LIST_TOO_LARGE');
      const e = tooLarge
        ? twError(Errors.payloadTooLarge, `a bus record is larger than the Kafka topic ${topic} accepts`)
        : unavailable(`cannot append to Kafka topic ${topic}`, err, this.opts.brokers);
      if (!tooLarge) this.opts.logger.warn({ err: e.message, records: batch.length }, 'Kafka produce failed');
      for (const a of batch) a.reject(e);
    } finally {
      this.queuedBytes -= bytes;
    }
  }
}

async function ensureTopic(admin: Admin, opts: KafkaBusOptions): Promise<void> {
  const { topic, partitions } = opts;
  const check = (md: ClusterMetadata): boolean => {
    const t = md.topics.get(topic);
    if (!t) return false;
    if (t.partitionsCount !== partitions) {
      throw new Error(
        `Kafka topic ${topic} has ${t.partitionsCount} partitions but bus.partitions is ${partitions}; ` +
          `set bus.partitions: ${t.partitionsCount}, or use another topic (partition counts cannot change: keys would move)`,
      );
    }
    return true;
  };
  // listTopics first: a metadata request for a missing topic is retried by the client before it fails.
  let names: string[];
  try {
    names = await admin.listTopics();
  } catch (err) {
    throw unavailable('cannot list Kafka topics', err, opts.brokers);
  }
  if (names.includes(topic) && check(await metadataOf(admin, topic, opts.brokers))) return;
  try {
    await admin.createTopics({
      topics: [topic],
      partitions,
      replicas: opts.replicationFactor ?? -1,
    });
  } catch (err) {
    // Another process created it meanwhile: then it must still have the right partition count.
    if (!(err as { findBy?: (k: string, v: unknown) => unknown }).findBy?.('apiId', 'TOPIC_ALREADY_EXISTS')) {
      throw unavailable(`cannot create Kafka topic ${topic}`, err, opts.brokers);
    }
  }
  // Metadata reaches every broker a moment after the creation: wait for it (the client retries).
  if (!check(await metadataOf(admin, topic, opts.brokers)))
    throw new Error(`Kafka topic ${topic} was created but is not in the metadata`);
}

/** The cluster's metadata for `topic` (the client retries while the topic is not known yet). */
async function metadataOf(admin: Admin, topic: string, brokers: readonly string[]): Promise<ClusterMetadata> {
  try {
    return await admin.metadata({ topics: [topic], forceUpdate: true });
  } catch (err) {
    throw unavailable(`cannot read the metadata of Kafka topic ${topic}`, err, brokers);
  }
}

/** Records of one partition fetched ahead of the reader, in offset order. */
interface PartitionBuffer {
  entries: BusEntry[];
  /** Index of the next entry a sequential reader wants. */
  next: number;
}

type AnyApi = ((...args: unknown[]) => void) & Record<string, unknown>;

/**
 * One member of a consumer group. Invariants:
 * - `owned` changes only inside `serial` (the listener's calls are one at a time, never concurrent);
 * - a partition leaves `owned` only after `onRevoked` settled, and that happens before the member's JoinGroup
 *   request reaches the coordinator, so the next owner is assigned it only after the revoke settled;
 * - a commit for a partition not in `owned`, or one the coordinator refuses as from a stale generation, is a
 *   `conflict`, never retried under a newer generation.
 */
class KafkaMember implements GroupMember {
  private readonly consumer: Consumer<Buffer, Buffer, Buffer, Buffer>;
  private readonly fetchPool: ConnectionPool;
  private readonly owned = new Set<number>();
  private readonly buffers = new Map<number, PartitionBuffer>();
  /** The listener's calls, chained. */
  private serial: Promise<void> = Promise.resolve();
  private leaving = false;
  /** The coordinator told this member (by its current id) to rejoin: it still owns its partitions. */
  private rebalanceAnnounced = false;
  private rejoinTimer: NodeJS.Timeout | undefined;
  private left: Promise<void> | undefined;
  private readonly topic: string;

  constructor(
    private readonly opts: KafkaBusOptions,
    readonly group: string,
    private readonly listener: RebalanceListener,
    id: number,
    private readonly onLeft: (m: KafkaMember) => void,
  ) {
    this.topic = opts.topic;
    const base = clientBase(opts, `${opts.clientId}-${group}-${id}`);
    const rebalanceTimeout = opts.rebalanceTimeoutMs ?? DEFAULTS.rebalanceTimeoutMs;
    this.consumer = new Consumer<Buffer, Buffer, Buffer, Buffer>({
      ...base,
      // The coordinator holds a JoinGroup request until every member rejoined (up to the rebalance timeout):
      // a shorter request timeout would abandon it and make the client give up rejoining.
      requestTimeout: Math.max(base.requestTimeout, rebalanceTimeout + 5_000),
      groupId: group,
      autocommit: false,
      sessionTimeout: opts.sessionTimeoutMs ?? DEFAULTS.sessionTimeoutMs,
      heartbeatInterval: opts.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs,
      rebalanceTimeout,
      // No transactions are written to the topic; uncommitted reads avoid waiting for the last stable offset.
      isolationLevel: FetchIsolationLevels.READ_UNCOMMITTED,
    });
    this.fetchPool = new ConnectionPool(`${base.clientId}-fetch`, {
      requestTimeout: base.requestTimeout,
      ...(opts.sasl ? { sasl: opts.sasl } : {}),
      ...(opts.tls ? { tls: opts.tls } : {}),
    });
    this.interceptApis();
    this.consumer.on('consumer:group:join', (p: ConsumerGroupJoinPayload) => this.onJoined(p));
    this.consumer.on('consumer:group:rebalance', () => {
      this.rebalanceAnnounced = true;
    });
    this.consumer.on('error', (err: Error) => {
      // A rejoin cut short by leave() fails with "connection pool is closed": expected then.
      if (this.leaving) return;
      opts.logger.warn({ err: describe(err), group }, 'Kafka consumer group error; rejoining');
      this.scheduleRejoin();
    });
  }

  get assignment(): ReadonlySet<number> {
    return this.owned;
  }

  async start(): Promise<void> {
    this.consumer.topics.track(this.topic);
    await this.consumer.joinGroup({});
  }

  async read(
    partition: number,
    fromOffset: number,
    maxBytes: number,
    signal?: AbortSignal,
  ): Promise<BusEntry[]> {
    signal?.throwIfAborted();
    this.own(partition, 'cannot read');
    let buf = this.buffers.get(partition);
    if (!buf || !this.seek(buf, fromOffset)) {
      buf = await this.fetchInto(partition, fromOffset, Math.max(maxBytes, READ_AHEAD_BYTES), 0);
      signal?.throwIfAborted();
      this.own(partition, 'cannot read');
      if (!this.seek(buf, fromOffset)) return [];
    }
    const out: BusEntry[] = [];
    let budget = maxBytes;
    while (buf.next < buf.entries.length && (out.length === 0 || budget > 0)) {
      const e = buf.entries[buf.next++]!;
      out.push(e);
      budget -= e.record.length;
    }
    return out;
  }

  async waitFor(partition: number, offset: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted || !this.owned.has(partition) || this.leaving) return;
    const buf = this.buffers.get(partition);
    if (buf && buf.entries.length > 0 && buf.entries[buf.entries.length - 1]!.offset >= offset) return;
    // A long-poll Fetch: the broker answers as soon as a record at `offset` exists, or after timeoutMs.
    // What it brings is kept for the read that follows.
    const polled = this.fetchInto(partition, offset, READ_AHEAD_BYTES, timeoutMs).then(
      () => undefined,
      (err) => {
        this.opts.logger.debug({ err: describe(err), partition }, 'Kafka long-poll fetch failed');
      },
    );
    if (!signal) return polled;
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<void>((resolve) => {
      onAbort = resolve;
      signal.addEventListener('abort', onAbort, { once: true });
    });
    await Promise.race([polled, aborted]);
    signal.removeEventListener('abort', onAbort!);
  }

  async commit(partition: number, offset: number): Promise<void> {
    this.own(partition, 'cannot commit');
    try {
      await this.consumer.commit({
        offsets: [{ topic: this.topic, partition, offset: BigInt(offset), leaderEpoch: -1 }],
      });
    } catch (err) {
      if ((err as { trainwatchFenced?: boolean }).trainwatchFenced || fencedIn(err)) {
        throw twError(
          Errors.conflict,
          `cannot commit partition ${partition}: this member of group ${this.group} was fenced by a rebalance (${describe(err)})`,
        );
      }
      throw unavailable(`cannot commit offset ${offset} of partition ${partition}`, err, this.opts.brokers);
    }
  }

  async committed(partition: number): Promise<number> {
    try {
      const [committed, start] = await Promise.all([
        this.consumer.listCommittedOffsets({ topics: [{ topic: this.topic, partitions: [partition] }] }),
        this.startOffset(partition),
      ]);
      const c = committed.get(this.topic)?.[partition];
      return c === undefined || c < 0n ? start : Math.max(Number(c), start);
    } catch (err) {
      throw unavailable(
        `cannot read group ${this.group}'s committed offset of partition ${partition}`,
        err,
        this.opts.brokers,
      );
    }
  }

  endOffset(partition: number): Promise<number> {
    return this.listOffset(partition, -1n);
  }

  startOffset(partition: number): Promise<number> {
    return this.listOffset(partition, -2n);
  }

  leave(): Promise<void> {
    this.left ??= this.doLeave();
    return this.left;
  }

  // -------------------------------------------------------------------------------------------------------

  /**
   * The client reports a rejoin that failed all its retries (the coordinator was unreachable) as an 'error'
   * and then stops heartbeating: the member would sit outside the group for good. Try again, one timer at a
   * time, until it is back or leaves. Its partitions were revoked before the failed JoinGroup.
   */
  private scheduleRejoin(): void {
    if (this.leaving || this.rejoinTimer) return;
    const delay = Math.min(30_000, 4 * (this.opts.retryDelayMs ?? DEFAULTS.retryDelayMs));
    this.rejoinTimer = setTimeout(() => {
      this.rejoinTimer = undefined;
      if (this.leaving || this.consumer.isActive()) return;
      this.consumer.joinGroup({}).catch((err: unknown) => {
        this.opts.logger.warn(
          { err: describe(err), group: this.group },
          'Kafka consumer group rejoin failed',
        );
        this.scheduleRejoin();
      });
    }, delay);
    this.rejoinTimer.unref();
  }

  private async doLeave(): Promise<void> {
    this.leaving = true;
    clearTimeout(this.rejoinTimer);
    await this.runSerial(() => this.revokeAll(false));
    try {
      // close() sends LeaveGroup: the coordinator rebalances the others at once instead of after our session.
      await this.consumer.close(true);
    } finally {
      await this.fetchPool.close().catch(() => undefined);
      this.onLeft(this);
    }
  }

  private own(partition: number, what: string): void {
    if (!this.owned.has(partition)) {
      throw twError(
        Errors.conflict,
        `${what} partition ${partition}: not assigned to this member of group ${this.group} (it was rebalanced away)`,
      );
    }
  }

  /** Positions `buf` at `offset`; false when the buffer does not hold it. */
  private seek(buf: PartitionBuffer, offset: number): boolean {
    const { entries } = buf;
    if (entries.length === 0 || offset < entries[0]!.offset || offset > entries[entries.length - 1]!.offset) {
      return false;
    }
    // The usual case is the sequential one: the next entry.
    let i = buf.next < entries.length && entries[buf.next]!.offset <= offset ? buf.next : 0;
    while (entries[i]!.offset < offset) i++;
    buf.next = i;
    return true;
  }

  /**
   * Fetches `partition` from `offset` into its buffer. Starts at the log start when `offset` was deleted by
   * retention (the read then returns a gap, as the interface allows); an empty buffer past the end.
   */
  private async fetchInto(
    partition: number,
    offset: number,
    maxBytes: number,
    maxWaitMs: number,
  ): Promise<PartitionBuffer> {
    let from = offset;
    for (let attempt = 0; ; attempt++) {
      try {
        const entries = await this.fetch(partition, from, maxBytes, maxWaitMs);
        const buf: PartitionBuffer = { entries, next: 0 };
        if (this.owned.has(partition)) this.buffers.set(partition, buf);
        return buf;
      } catch (err) {
        const outOfRange = (err as { findBy?: (k: string, v: unknown) => unknown }).findBy?.(
          'apiId',
          'OFFSET_OUT_OF_RANGE',
        );
        if (!outOfRange || attempt > 0)
          throw unavailable(`cannot read partition ${partition}`, err, this.opts.brokers);
        const start = await this.startOffset(partition);
        if (from >= start) return { entries: [], next: 0 }; // past the end: nothing yet
        from = start;
      }
    }
  }

  private async fetch(
    partition: number,
    from: number,
    maxBytes: number,
    maxWaitMs: number,
  ): Promise<BusEntry[]> {
    const md = await this.consumer.metadata({ topics: [this.topic] });
    const t = md.topics.get(this.topic);
    const p = t?.partitions[partition];
    if (!t || !p)
      throw new Error(`partition ${partition} of topic ${this.topic} is not in the cluster metadata`);
    const res = await this.consumer.fetch({
      node: p.leader,
      connectionPool: this.fetchPool,
      maxWaitTime: maxWaitMs,
      minBytes: 1,
      maxBytes,
      topics: [
        {
          topicId: t.id,
          partitions: [
            {
              partition,
              currentLeaderEpoch: -1,
              fetchOffset: BigInt(from),
              lastFetchedEpoch: -1,
              partitionMaxBytes: maxBytes,
            },
          ],
        },
      ],
    });
    const out: BusEntry[] = [];
    for (const topic of res.responses) {
      for (const part of topic.partitions) {
        if (part.partitionIndex !== partition) continue;
        for (const batch of part.records ?? []) {
          // Control batches (transaction markers) take offsets but carry no record.
          if (batch.attributes & IS_CONTROL) continue;
          const first = Number(batch.firstOffset);
          for (const r of batch.records) {
            const offset = first + r.offsetDelta;
            // A fetch returns whole batches: the first may start before `from`.
            if (offset < from) continue;
            out.push({ partition, offset, record: r.value ?? EMPTY });
          }
        }
      }
    }
    return out;
  }

  private async listOffset(partition: number, timestamp: bigint): Promise<number> {
    try {
      const offsets = await this.consumer.listOffsets({
        topics: [this.topic],
        partitions: { [this.topic]: [partition] },
        timestamp,
      });
      const o = offsets.get(this.topic)?.[partition];
      if (o === undefined) throw new Error(`no offset returned for partition ${partition}`);
      return Number(o);
    } catch (err) {
      throw unavailable(`cannot list the offsets of partition ${partition}`, err, this.opts.brokers);
    }
  }

  private runSerial(task: () => Promise<void>): Promise<void> {
    const run = this.serial.then(task, task);
    this.serial = run.catch(() => undefined);
    return run;
  }

  /** Eager protocol: everything owned is given up before rejoining. */
  private async revokeAll(lost: boolean): Promise<void> {
    if (this.owned.size === 0) return;
    const partitions = [...this.owned].sort((a, b) => a - b);
    try {
      await this.listener.onRevoked(partitions, lost, this);
    } catch (err) {
      this.opts.logger.error({ err, group: this.group, partitions }, 'onRevoked failed');
    }
    this.owned.clear();
    this.buffers.clear();
  }

  private onJoined(p: ConsumerGroupJoinPayload): void {
    const mine: number[] = [];
    for (const a of p.assignments ?? []) if (a.topic === this.topic) mine.push(...a.partitions);
    mine.sort((a, b) => a - b);
    void this.runSerial(async () => {
      if (this.leaving) return;
      // The JoinGroup interceptor revoked everything before this generation; a join without a revoke
      // (the first one) finds `owned` empty.
      const assigned = mine.filter((q) => !this.owned.has(q));
      for (const q of assigned) this.owned.add(q);
      if (assigned.length === 0) return;
      try {
        await this.listener.onAssigned(assigned, this);
      } catch (err) {
        this.opts.logger.error({ err, group: this.group, partitions: assigned }, 'onAssigned failed');
      }
    });
  }

  /**
   * The client has no rebalance listener: it rejoins (JoinGroup) as soon as a heartbeat learns of a
   * rebalance, and retries a commit refused for a stale generation under the new one. Both would break the
   * bus's contract, so the member wraps the two request builders the client looks up through `kGetApi`:
   * - JoinGroup first revokes everything through the listener (and waits for it); the request that tells the
   *   coordinator "this member is ready for the new generation" leaves only after that. `lost` is true when
   *   the client lost its member id (the coordinator dropped it: its partitions are already elsewhere).
   * - OffsetCommit turns a rejoin-class error (illegal generation, unknown member, rebalance in progress)
   *   into a non-retryable one, so the client neither rejoins nor re-sends the commit; `commit` reports it
   *   as a conflict.
   */
  private interceptApis(): void {
    type GetApi = (name: string, cb: (err: Error | null, api?: AnyApi) => void) => void;
    const consumer = this.consumer as unknown as Record<symbol, GetApi>;
    const original = consumer[kGetApi]!.bind(this.consumer);
    consumer[kGetApi] = (name, cb) => {
      if (name !== 'JoinGroup' && name !== 'OffsetCommit') return original(name, cb);
      original(name, (err, api) => {
        if (err || !api) return cb(err);
        cb(null, name === 'JoinGroup' ? this.wrapJoinGroup(api) : this.wrapOffsetCommit(api));
      });
    };
  }

  private wrapJoinGroup(api: AnyApi): AnyApi {
    const wrapped = (...args: unknown[]) => {
      // api(connection, groupId, sessionTimeout, rebalanceTimeout, memberId, groupInstanceId, …, callback)
      const callback = args[args.length - 1] as (err: Error | null) => void;
      // Still a member of the group only when the coordinator announced a rebalance (REBALANCE_IN_PROGRESS)
      // to this member id; a rejoin for any other reason (unknown member id, illegal generation) means the
      // coordinator already dropped this member and gave its partitions away.
      const lost = this.owned.size > 0 && (args[4] === '' || !this.rebalanceAnnounced);
      this.rebalanceAnnounced = false;
      this.runSerial(() => this.revokeAll(lost)).then(
        () => api(...args),
        (err: Error) => callback(err),
      );
    };
    return Object.assign(wrapped, api) as AnyApi;
  }

  private wrapOffsetCommit(api: AnyApi): AnyApi {
    const wrapped = (...args: unknown[]) => {
      const callback = args[args.length - 1] as (err: Error | null, res?: unknown) => void;
      args[args.length - 1] = (err: Error | null, res?: unknown) => {
        if (err && fencedIn(err)) {
          callback(new UserError(`offset commit refused: ${describe(err)}`, { trainwatchFenced: true }));
          return;
        }
        callback(err, res);
      };
      api(...args);
    };
    return Object.assign(wrapped, api) as AnyApi;
  }
}

/** A rejoin-class protocol error: the member's generation is over. */
function fencedIn(err: unknown): boolean {
  return Boolean((err as { findBy?: (k: string, v: unknown) => unknown }).findBy?.('needsRejoin', true));
}
