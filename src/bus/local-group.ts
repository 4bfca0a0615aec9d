/**
 * Consumer groups for an in-process log (the embedded {@link DiskLogBus}): the part of Kafka's group
 * coordinator that one process needs. Members join and leave; every partition is owned by exactly one member
 * of its group; a rebalance first revokes what moves (and waits for the old owner to checkpoint and commit),
 * then assigns it (and waits for the new owner to restore its state). A new member hears of its first
 * assignment even when it is empty. Commits from a member that no longer
 * owns the partition are refused, as Kafka fences a stale generation.
 *
 * Assignment is round robin over members in join order: partition p goes to member p mod n. It is stable for
 * a given membership, so a member that stays keeps whatever is not given to a newcomer.
 */
import type { Logger } from 'pino';
import { Errors, twError } from '../model/errors.js';
import { assertOwned, type BusEntry, type GroupMember, type RebalanceListener } from './bus.js';

/** What the coordinator needs from the log it hands out. */
export interface LocalLog {
  readonly partitionCount: number;
  read(partition: number, fromOffset: number, maxBytes: number): Promise<BusEntry[]>;
  waitFor(partition: number, offset: number, timeoutMs: number): Promise<void>;
  endOffset(partition: number): number;
  startOffset(partition: number): number;
  /** Durably records a group's committed offset. */
  commit(group: string, partition: number, offset: number): Promise<void>;
  /** The group's committed offset, 0 when it never committed. */
  committed(group: string, partition: number): number;
  /** Whole segments ending at or before `offset` may go: every group has committed past them. */
  truncateBefore(partition: number, offset: number): Promise<void>;
}

const GROUP_RE = /^[a-z0-9_-]+$/;

export class LocalGroupCoordinator {
  private readonly groups = new Map<string, LocalGroup>();

  constructor(
    private readonly log: LocalLog,
    private readonly logger?: Logger,
  ) {}

  async join(group: string, listener: RebalanceListener): Promise<GroupMember> {
    if (!GROUP_RE.test(group)) {
      throw twError(
        Errors.badRequest,
        `invalid consumer group name ${JSON.stringify(group)}: use [a-z0-9_-]`,
      );
    }
    let g = this.groups.get(group);
    if (!g) {
      g = new LocalGroup(group, this.log, this, this.logger);
      this.groups.set(group, g);
    }
    return g.join(listener);
  }

  /** Every member of every group leaves (their partitions are revoked through their listeners). */
  async leaveAll(): Promise<void> {
    for (const g of this.groups.values()) await g.leaveAll();
  }

  /** The lowest offset of `partition` that some group still needs (every known group's committed offset). */
  lowestCommitted(partition: number): number {
    let low = Number.POSITIVE_INFINITY;
    for (const name of this.groups.keys()) low = Math.min(low, this.log.committed(name, partition));
    return low;
  }
}

class LocalGroup {
  private readonly members: LocalMember[] = [];
  /** Rebalances run one after another. */
  private rebalancing: Promise<void> = Promise.resolve();
  private nextId = 0;

  constructor(
    readonly name: string,
    readonly log: LocalLog,
    readonly coordinator: LocalGroupCoordinator,
    private readonly logger?: Logger,
  ) {}

  join(listener: RebalanceListener): Promise<GroupMember> {
    const member = new LocalMember(this, listener, this.nextId++);
    this.members.push(member);
    // As with Kafka, the member is known to its owner before its first assignment arrives.
    setImmediate(() => void this.rebalance());
    return Promise.resolve(member);
  }

  leave(member: LocalMember): Promise<void> {
    const i = this.members.indexOf(member);
    if (i < 0) return this.rebalancing;
    this.members.splice(i, 1);
    // The leaving member gives up everything; the others take it over.
    return this.rebalance(member);
  }

  async leaveAll(): Promise<void> {
    for (const m of [...this.members]) await m.leave();
  }

  private rebalance(leaving?: LocalMember): Promise<void> {
    const run = async () => {
      // Members may join or leave while this rebalance awaits their listeners: it works on the membership it
      // started with, and the change queues the next rebalance.
      const members = [...this.members];
      const n = members.length;
      const target = new Map<LocalMember, number[]>();
      for (const m of members) target.set(m, []);
      for (let p = 0; p < this.log.partitionCount; p++) {
        if (n > 0) target.get(members[p % n]!)!.push(p);
      }
      // Revoke first: a partition is never owned by two members at once.
      const owners = leaving ? [leaving, ...members] : members;
      for (const m of owners) {
        const keep = new Set(target.get(m) ?? []);
        const revoked = [...m.owned].filter((p) => !keep.has(p)).sort((a, b) => a - b);
        if (revoked.length === 0) continue;
        try {
          await m.listener.onRevoked(revoked, false, m);
        } catch (err) {
          this.logger?.error({ err, group: this.name, partitions: revoked }, 'onRevoked failed');
        }
        for (const p of revoked) m.owned.delete(p);
      }
      for (const m of members) {
        const assigned = target.get(m)!.filter((p) => !m.owned.has(p));
        if (assigned.length === 0 && m.rebalanced) continue;
        m.rebalanced = true;
        for (const p of assigned) m.owned.add(p);
        try {
          await m.listener.onAssigned(assigned, m);
        } catch (err) {
          this.logger?.error({ err, group: this.name, partitions: assigned }, 'onAssigned failed');
        }
      }
    };
    const logged = () =>
      run().catch((err: unknown) => this.logger?.error({ err, group: this.name }, 'rebalance failed'));
    this.rebalancing = this.rebalancing.then(logged, logged);
    return this.rebalancing;
  }
}

class LocalMember implements GroupMember {
  readonly owned = new Set<number>();
  /** Whether the member has been told of its first assignment (possibly empty). */
  rebalanced = false;
  private left = false;

  constructor(
    private readonly g: LocalGroup,
    readonly listener: RebalanceListener,
    readonly id: number,
  ) {}

  get group(): string {
    return this.g.name;
  }

  get assignment(): ReadonlySet<number> {
    return this.owned;
  }

  // GroupMember.read's signature, as KafkaMember.read (kafka-member.ts) and DelegatedMember.read (port-bus.ts).
  async read(
    partition: number,
    fromOffset: number,
    maxBytes: number,
    signal?: AbortSignal,
  ): Promise<BusEntry[]> {
    signal?.throwIfAborted();
    assertOwned(this, partition, 'cannot read');
    return this.g.log.read(partition, fromOffset, maxBytes);
  }

  waitFor(partition: number, offset: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted || !this.owned.has(partition)) return Promise.resolve();
    if (!signal) return this.g.log.waitFor(partition, offset, timeoutMs);
    return new Promise<void>((resolve) => {
      const onAbort = () => resolve();
      signal.addEventListener('abort', onAbort, { once: true });
      void this.g.log.waitFor(partition, offset, timeoutMs).then(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  async commit(partition: number, offset: number): Promise<void> {
    assertOwned(this, partition, 'cannot commit');
    const log = this.g.log;
    await log.commit(this.g.name, partition, offset);
    await log.truncateBefore(partition, this.g.coordinator.lowestCommitted(partition));
  }

  async committed(partition: number): Promise<number> {
    const log = this.g.log;
    return Math.max(log.committed(this.g.name, partition), log.startOffset(partition));
  }

  async endOffset(partition: number): Promise<number> {
    return this.g.log.endOffset(partition);
  }

  async startOffset(partition: number): Promise<number> {
    return this.g.log.startOffset(partition);
  }

  async leave(): Promise<void> {
    if (this.left) return;
    this.left = true;
    await this.g.leave(this);
  }
}
