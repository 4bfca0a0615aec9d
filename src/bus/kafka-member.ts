/**
 * A member of a Kafka consumer group (kafka.ts states the bus's invariants; the member's own are at
 * {@link KafkaMember}): eager rebalancing through intercepted JoinGroup and OffsetCommit requests, reads by
 * pull-based Fetch on a connection pool of its own, and commits fenced by generation. Separate from the bus,
 * which produces and hands members out: the two share only the options and client settings.
 */

import {
  ConnectionPool,
  Consumer,
  type ConsumerGroupJoinPayload,
  FetchIsolationLevels,
  IS_CONTROL,
  kGetApi,
  UserError,
} from '@platformatic/kafka';
import { Errors, twError } from '../model/errors.js';
import { assertOwned, type BusEntry, type GroupMember, type RebalanceListener } from './bus.js';
import { clientBase, DEFAULTS, describe, type KafkaBusOptions, unavailable } from './kafka-options.js';

/**
 * A read fetches at least this much ahead into the partition's buffer: the processor asks for small slices,
 * and one Fetch round trip per slice would bound it by latency.
 */
const READ_AHEAD_BYTES = 1 << 20;

const EMPTY = new Uint8Array(0);

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
export class KafkaMember implements GroupMember {
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

  // GroupMember.read's signature, as LocalMember.read (local-group.ts) and DelegatedMember.read (port-bus.ts).
  async read(
    partition: number,
    fromOffset: number,
    maxBytes: number,
    signal?: AbortSignal,
  ): Promise<BusEntry[]> {
    signal?.throwIfAborted();
    assertOwned(this, partition, 'cannot read');
    let buf = this.buffers.get(partition);
    if (!buf || !this.seek(buf, fromOffset)) {
      buf = await this.fetchInto(partition, fromOffset, Math.max(maxBytes, READ_AHEAD_BYTES), 0);
      signal?.throwIfAborted();
      assertOwned(this, partition, 'cannot read');
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
    assertOwned(this, partition, 'cannot commit');
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
