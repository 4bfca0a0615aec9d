/**
 * A consumer-group member whose partitions are worked by other threads: the embedded processor's workers.
 *
 * The main thread stays the group's member (it joined the bus's consumer group, keeps the fencing, commits);
 * it hands each assigned partition to one worker and serves that worker's reads, waits and commits over the
 * worker's port ({@link busPartitionHandlers}). In the worker, a {@link DelegatedBus} is the `Bus` the
 * processor joins: its assignment is what the main thread delegated, and every call crosses the port. So the
 * processor code is the same whether it owns partitions of a Kafka group, of the embedded log, or of a
 * delegation, and a worker's read never touches the main thread's state except through these calls.
 *
 * Records cross as one transferred buffer per read (no copy per record on the receiving side, no structured
 * clone of many small arrays).
 */
import { Errors, twError } from '../model/errors.js';
import type { PortRpc, RpcHandlers } from '../model/port-rpc.js';
import { withTransfer } from '../model/port-rpc.js';
import {
  type AppendResult,
  type Bus,
  type BusEntry,
  type GroupMember,
  hashPartitionKey,
  type RebalanceListener,
} from './bus.js';

/** A read's records, packed: record i is `bytes[starts[i] .. starts[i+1])` at offset `offsets[i]`. */
interface PackedRead {
  readonly offsets: Float64Array;
  readonly starts: Uint32Array;
  readonly bytes: Uint8Array;
}

/**
 * Main thread: the calls a worker makes about the partitions delegated to it, answered by the group member.
 * `owns(p)` says whether partition p is delegated to this worker now; other partitions are refused (409), as
 * a fenced member's would be.
 */
export function busPartitionHandlers(
  member: () => GroupMember | undefined,
  owns: (partition: number) => boolean,
): RpcHandlers {
  const owned = (p: number): GroupMember => {
    const m = member();
    if (!m || !owns(p) || !m.assignment.has(p))
      throw twError(Errors.conflict, `partition ${p} is not delegated to this worker`);
    return m;
  };
  return {
    'bus.read': async (a: { p: number; from: number; max: number }, signal: AbortSignal) => {
      const entries = await owned(a.p).read(a.p, a.from, a.max, signal);
      let total = 0;
      for (const e of entries) total += e.record.length;
      const bytes = new Uint8Array(total);
      const offsets = new Float64Array(entries.length);
      const starts = new Uint32Array(entries.length + 1);
      let at = 0;
      entries.forEach((e, i) => {
        offsets[i] = e.offset;
        starts[i] = at;
        bytes.set(e.record, at);
        at += e.record.length;
      });
      starts[entries.length] = at;
      return withTransfer({ offsets, starts, bytes } satisfies PackedRead, [
        offsets.buffer,
        starts.buffer,
        bytes.buffer,
      ]);
    },
    'bus.waitFor': (a: { p: number; offset: number; timeoutMs: number }, signal: AbortSignal) =>
      owned(a.p).waitFor(a.p, a.offset, a.timeoutMs, signal),
    'bus.commit': (a: { p: number; offset: number }) => owned(a.p).commit(a.p, a.offset),
    'bus.committed': (a: { p: number }) => owned(a.p).committed(a.p),
    'bus.endOffset': (a: { p: number }) => owned(a.p).endOffset(a.p),
    'bus.startOffset': (a: { p: number }) => owned(a.p).startOffset(a.p),
  };
}

/**
 * Worker thread: the bus as the processor sees it when its partitions are delegated. `join` registers the
 * processor's listener; {@link assign} and {@link revoke} (called when the main thread says so) run it.
 * Producing is not a worker's business: `append` is refused.
 */
export class DelegatedBus implements Bus {
  private listener: RebalanceListener | undefined;
  private member: DelegatedMember | undefined;
  /** Assignments that arrived before the processor joined. */
  private early: number[] | undefined;

  constructor(
    private readonly rpc: PortRpc,
    readonly partitionCount: number,
  ) {}

  /** The embedded log's partitioner (disk-log.ts): a key lands where the collector appended it. */
  partitionOf(key: string): number {
    return hashPartitionKey(key) % this.partitionCount;
  }

  append(): Promise<AppendResult> {
    return Promise.reject(new Error('a processor worker does not produce to the bus'));
  }

  async join(group: string, listener: RebalanceListener): Promise<GroupMember> {
    if (this.listener) throw new Error('a processor worker joins the bus once');
    this.listener = listener;
    this.member = new DelegatedMember(group, this.rpc);
    if (this.early) {
      const parts = this.early;
      this.early = undefined;
      await this.assign(parts);
    }
    return this.member;
  }

  /** The main thread delegated `partitions` to this worker. */
  async assign(partitions: readonly number[]): Promise<void> {
    if (!this.listener || !this.member) {
      this.early = [...(this.early ?? []), ...partitions];
      return;
    }
    for (const p of partitions) this.member.owned.add(p);
    await this.listener.onAssigned(partitions, this.member);
  }

  /** The main thread takes `partitions` back (a rebalance of its own group, or shutdown). */
  async revoke(partitions: readonly number[], lost: boolean): Promise<void> {
    const member = this.member;
    if (!this.listener || !member) return;
    const mine = partitions.filter((p) => member.owned.has(p));
    if (mine.length === 0) return;
    await this.listener.onRevoked(mine, lost, member);
    for (const p of mine) member.owned.delete(p);
  }

  async close(): Promise<void> {
    const member = this.member;
    if (member && member.owned.size > 0) await this.revoke([...member.owned], false);
  }
}

class DelegatedMember implements GroupMember {
  readonly owned = new Set<number>();

  constructor(
    readonly group: string,
    private readonly rpc: PortRpc,
  ) {}

  get assignment(): ReadonlySet<number> {
    return this.owned;
  }

  // GroupMember.read's signature, as LocalMember.read (local-group.ts) and KafkaMember.read (kafka-member.ts).
  async read(
    partition: number,
    fromOffset: number,
    maxBytes: number,
    signal?: AbortSignal,
  ): Promise<BusEntry[]> {
    const r = await this.rpc.call<PackedRead>(
      'bus.read',
      { p: partition, from: fromOffset, max: maxBytes },
      signal ? { signal } : {},
    );
    const out: BusEntry[] = new Array(r.offsets.length);
    for (let i = 0; i < r.offsets.length; i++)
      out[i] = { partition, offset: r.offsets[i]!, record: r.bytes.subarray(r.starts[i]!, r.starts[i + 1]!) };
    return out;
  }

  waitFor(partition: number, offset: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return this.rpc
      .call<void>('bus.waitFor', { p: partition, offset, timeoutMs }, signal ? { signal } : {})
      .catch((err) => {
        // An abort ends the wait, as the interface says: it resolves.
        if (signal?.aborted) return;
        throw err;
      });
  }

  commit(partition: number, offset: number): Promise<void> {
    return this.rpc.call('bus.commit', { p: partition, offset });
  }

  committed(partition: number): Promise<number> {
    return this.rpc.call('bus.committed', { p: partition });
  }

  endOffset(partition: number): Promise<number> {
    return this.rpc.call('bus.endOffset', { p: partition });
  }

  startOffset(partition: number): Promise<number> {
    return this.rpc.call('bus.startOffset', { p: partition });
  }

  /** The main thread is the group's member: leaving is its call (it revokes through {@link DelegatedBus}). */
  async leave(): Promise<void> {}
}
