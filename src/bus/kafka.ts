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
import { Admin, type ClusterMetadata, ProduceAcks, Producer } from '@platformatic/kafka';
import { Errors, twError } from '../model/errors.js';
import {
  type AppendResult,
  type Bus,
  type GroupMember,
  hashPartitionKey,
  type RebalanceListener,
} from './bus.js';
import { KafkaMember } from './kafka-member.js';
import { clientBase, DEFAULTS, type KafkaBusOptions, unavailable } from './kafka-options.js';

export type { KafkaBusOptions } from './kafka-options.js';

/**
 * Bytes of record values per produce request. Kafka limits a partition's record batch to `message.max.bytes`
 * (1 MiB by default, Event Hubs the same); a request of at most this much keeps every batch under it.
 */
const MAX_REQUEST_VALUE_BYTES = 900 << 10;
const GROUP_RE = /^[a-z0-9_-]+$/;

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

  // Bus.partitionOf and the start of Bus.append as DiskLogBus (disk-log.ts) has them: the contract's checks.
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
