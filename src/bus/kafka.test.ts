/**
 * The Kafka bus against a real single-node broker (test/support/kafka.ts). Skipped with a message when the
 * broker's jars were not fetched (outside CI); CI fetches them.
 */
import { promises as fsp } from 'node:fs';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/helpers.js';
import { type KafkaBroker, kafkaUnavailable, startKafka } from '../../test/support/kafka.js';
import { TrainwatchError } from '../model/errors.js';
import { type GroupMember, hashPartitionKey, type RebalanceListener } from './bus.js';
import { DiskLogBus, defaultDiskLogOptions } from './disk-log.js';
import { KafkaBus, type KafkaBusOptions } from './kafka.js';

const logger = pino({ level: 'silent' });
const skipReason = kafkaUnavailable();
if (skipReason) console.warn(`skipping the Kafka bus tests: ${skipReason}`);

let broker: KafkaBroker;
let topicSeq = 0;

function options(partitions: number, extra: Partial<KafkaBusOptions> = {}): KafkaBusOptions {
  return {
    brokers: [broker.brokers],
    topic: `tw-test-${process.pid}-${topicSeq++}`,
    partitions,
    clientId: 'tw-test',
    replicationFactor: 1,
    heartbeatIntervalMs: 300,
    sessionTimeoutMs: 10_000,
    logger,
    ...extra,
  };
}

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** Resolves when `cond` holds, re-checked whenever `notify` is called (no polling). */
class Condition {
  private waiters: { cond: () => boolean; resolve: () => void }[] = [];
  notify(): void {
    this.waiters = this.waiters.filter((w) => {
      if (!w.cond()) return true;
      w.resolve();
      return false;
    });
  }
  until(what: string, cond: () => boolean, timeoutMs = 40_000): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
      this.waiters.push({
        cond,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }
}

/** Rebalance events of every member, in the order the members' listeners saw them. */
type RebalanceEvent = { member: string; kind: 'assigned' | 'revoked'; partitions: number[]; lost?: boolean };

/**
 * A processor-like consumer: reads each owned partition from its committed offset, records what it read,
 * commits after each read, and on revoke stops reading, then commits where it got to.
 */
class TestProcessor {
  member!: GroupMember;
  /** The member, once `join` resolved: onAssigned may run before that (the interface allows it). */
  private resolveJoined!: (m: GroupMember) => void;
  private readonly joined = new Promise<GroupMember>((resolve) => {
    this.resolveJoined = resolve;
  });
  readonly positions = new Map<number, number>();
  private readonly loops = new Map<number, { stop: boolean; done: Promise<void> }>();
  readonly commitErrors: Error[] = [];

  constructor(
    readonly name: string,
    readonly events: RebalanceEvent[],
    readonly seen: Map<string, string[]>,
    readonly changed: Condition,
  ) {}

  readonly listener: RebalanceListener = {
    onAssigned: async (partitions) => {
      this.events.push({ member: this.name, kind: 'assigned', partitions: [...partitions] });
      const member = await this.joined;
      for (const p of partitions) {
        const from = await member.committed(p);
        this.positions.set(p, from);
        const state = { stop: false, done: Promise.resolve() };
        state.done = this.loop(p, state);
        this.loops.set(p, state);
      }
      this.changed.notify();
    },
    onRevoked: async (partitions, lost) => {
      this.events.push({ member: this.name, kind: 'revoked', partitions: [...partitions], lost });
      for (const p of partitions) {
        const l = this.loops.get(p);
        if (!l) continue;
        l.stop = true;
        await l.done;
        this.loops.delete(p);
        if (!lost) await this.commit(p);
      }
      this.changed.notify();
    },
  };

  private async commit(p: number): Promise<void> {
    try {
      await this.member.commit(p, this.positions.get(p)!);
    } catch (err) {
      this.commitErrors.push(err as Error);
    }
  }

  setMember(member: GroupMember): void {
    this.member = member;
    this.resolveJoined(member);
  }

  private async loop(p: number, state: { stop: boolean }): Promise<void> {
    while (!state.stop) {
      const from = this.positions.get(p)!;
      let entries: Awaited<ReturnType<GroupMember['read']>>;
      try {
        entries = await this.member.read(p, from, 64 << 10);
      } catch {
        return; // revoked under us: onRevoked stops the loop
      }
      if (state.stop) return;
      if (entries.length === 0) {
        await this.member.waitFor(p, from, 300);
        continue;
      }
      for (const e of entries) {
        const key = `${p}:${e.offset}`;
        const list = this.seen.get(key) ?? [];
        list.push(dec(e.record));
        this.seen.set(key, list);
      }
      this.positions.set(p, entries[entries.length - 1]!.offset + 1);
      await this.commit(p);
      this.changed.notify();
    }
  }
}

describe.skipIf(skipReason !== undefined)('KafkaBus against a real broker', () => {
  beforeAll(async () => {
    broker = await startKafka();
  }, 90_000);

  afterAll(async () => {
    await broker?.stop();
  });

  it('maps keys to partitions exactly as the embedded bus does', async () => {
    const bus = await KafkaBus.open(options(7));
    const dir = tempDir();
    const disk = await DiskLogBus.open({ ...defaultDiskLogOptions, partitions: 7, dir, logger });
    try {
      for (let i = 0; i < 500; i++) {
        const key = `tenant-${i % 13}\u0000job-${i}`;
        expect(bus.partitionOf(key)).toBe(disk.partitionOf(key));
        expect(bus.partitionOf(key)).toBe(hashPartitionKey(key) % 7);
      }
    } finally {
      await bus.close();
      await disk.close();
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses an existing topic whose partition count differs, naming both counts', async () => {
    // No replication factor: the topic gets the cluster's default.
    const opts = options(3, { replicationFactor: undefined });
    const bus = await KafkaBus.open(opts);
    await bus.close();
    await expect(KafkaBus.open({ ...opts, partitions: 5 })).rejects.toThrow(
      /has 3 partitions but bus.partitions is 5/,
    );
  });

  it('appends concurrently, acknowledges with dense offsets, and reads them back in order', async () => {
    const bus = await KafkaBus.open(options(4));
    try {
      // Many appends in one tick: one produce request; offsets per partition must be dense and in order.
      const n = 400;
      const results = await Promise.all(
        Array.from({ length: n }, (_, i) => bus.append(`t\u0000job-${i % 17}`, enc(`record-${i}`))),
      );
      const byPartition = new Map<number, Map<number, string>>();
      results.forEach((r, i) => {
        expect(r.partition).toBe(bus.partitionOf(`t\u0000job-${i % 17}`));
        const m = byPartition.get(r.partition) ?? new Map<number, string>();
        expect(m.has(r.offset)).toBe(false);
        m.set(r.offset, `record-${i}`);
        byPartition.set(r.partition, m);
      });
      // An append aborted before its request left is not written, and rejects with the abort's reason.
      const ac = new AbortController();
      const aborted = bus.append('t\u0000job-0', enc('aborted'), ac.signal);
      ac.abort(new Error('client went away'));
      await expect(aborted).rejects.toThrow('client went away');
      // A second round after the first was acknowledged continues the offsets.
      const later = await bus.append('t\u0000job-0', enc('later'));
      expect(later.offset).toBe(byPartition.get(later.partition)!.size);
      byPartition.get(later.partition)!.set(later.offset, 'later');

      const assigned = new Condition();
      let owned: number[] = [];
      const member = await bus.join('reader', {
        onAssigned: async (ps) => {
          owned = [...owned, ...ps];
          assigned.notify();
        },
        onRevoked: async () => {},
      });
      await assigned.until('all partitions assigned', () => owned.length === 4);
      for (const [p, expected] of byPartition) {
        expect(await member.startOffset(p)).toBe(0);
        expect(await member.endOffset(p)).toBe(expected.size);
        expect(await member.committed(p)).toBe(0);
        const got = new Map<number, string>();
        let from = 0;
        while (from < expected.size) {
          const entries = await member.read(p, from, 1000);
          expect(entries.length).toBeGreaterThan(0);
          for (const e of entries) {
            expect(e.partition).toBe(p);
            expect(e.offset).toBe(from);
            got.set(e.offset, dec(e.record));
            from++;
          }
        }
        expect(got).toEqual(expected);
        // Reading past the end resolves empty; seeking back re-reads.
        expect(await member.read(p, expected.size, 1000)).toEqual([]);
        const again = await member.read(p, 1, 1);
        expect(again.map((e) => [e.offset, dec(e.record)])).toEqual([[1, expected.get(1)]]);
      }
      // waitFor resolves when a record arrives, not at its timeout.
      const p0 = [...byPartition.keys()][0]!;
      const end = await member.endOffset(p0);
      const key = Array.from({ length: 100 }, (_, i) => `t\u0000k${i}`).find(
        (k) => bus.partitionOf(k) === p0,
      )!;
      const started = Date.now();
      const waited = member.waitFor(p0, end, 20_000);
      await bus.append(key, enc('wake'));
      await waited;
      expect(Date.now() - started).toBeLessThan(15_000);
      expect((await member.read(p0, end, 1000)).map((e) => dec(e.record))).toEqual(['wake']);
    } finally {
      await bus.close();
    }
  });

  it('commits, reads the commit back, and keeps it for the next member of the group', async () => {
    const opts = options(2);
    const bus = await KafkaBus.open(opts);
    try {
      for (let i = 0; i < 10; i++) await bus.append(`k${i}`, enc(`v${i}`));
      const ready = new Condition();
      let owned = 0;
      const listener: RebalanceListener = {
        onAssigned: async (ps) => {
          owned += ps.length;
          ready.notify();
        },
        onRevoked: async (ps) => {
          owned -= ps.length;
        },
      };
      const a = await bus.join('committer', listener);
      await ready.until('assignment', () => owned === 2);
      expect(await a.committed(0)).toBe(0);
      await a.commit(0, 3);
      expect(await a.committed(0)).toBe(3);
      // b joins while a is still in the group (a group that never empties rebalances without the
      // broker's initial delay), then a leaves: b owns everything and finds a's commit.
      const b = await bus.join('committer', listener);
      await a.leave();
      expect(a.assignment.size).toBe(0);
      await expect(a.commit(0, 4)).rejects.toMatchObject({ kind: { code: 'conflict' } });
      await ready.until('b to own both partitions', () => b.assignment.size === 2);
      expect(await b.committed(0)).toBe(3);
      expect(await b.committed(1)).toBe(0);
    } finally {
      await bus.close();
    }
  });

  it('splits partitions between members, moves them on join with revoke before assign, loses nothing', async () => {
    const partitions = 6;
    const bus = await KafkaBus.open(options(partitions));
    const events: RebalanceEvent[] = [];
    const seen = new Map<string, string[]>();
    const changed = new Condition();
    const appended = new Map<string, string>();
    const procs: TestProcessor[] = [];
    let appending = true;
    let seq = 0;
    // Appends keep arriving while the group rebalances.
    const appender = (async () => {
      while (appending) {
        const batch = Array.from({ length: 20 }, () => {
          const i = seq++;
          return bus.append(`tenant\u0000job-${i % 23}`, enc(`rec-${i}`)).then((r) => {
            appended.set(`${r.partition}:${r.offset}`, `rec-${i}`);
          });
        });
        await Promise.all(batch);
        changed.notify();
        // Pacing of the background appender (load while the group rebalances), not a wait for an event.
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const join = async (name: string) => {
      const proc = new TestProcessor(name, events, seen, changed);
      procs.push(proc);
      proc.setMember(await bus.join('processors', proc.listener));
      return proc;
    };
    const coverage = () => {
      const owners = procs.flatMap((p) => [...(p.member?.assignment ?? [])]);
      return new Set(owners).size === partitions && owners.length === partitions;
    };
    try {
      const a = await join('a');
      const b = await join('b');
      await changed.until(
        'a and b to split the partitions',
        () => coverage() && a.member.assignment.size > 0 && b.member.assignment.size > 0,
      );
      expect(a.member.assignment.size + b.member.assignment.size).toBe(partitions);

      const c = await join('c');
      await changed.until('c to get partitions', () => coverage() && c.member.assignment.size > 0);
      expect(a.member.assignment.size).toBeGreaterThan(0);
      expect(b.member.assignment.size).toBeGreaterThan(0);

      appending = false;
      await appender;
      await changed.until(`every appended record to be read (${appended.size})`, () => {
        for (const k of appended.keys()) if (!seen.has(k)) return false;
        return true;
      });

      // A partition is never owned by two members: replaying the listeners' calls in the order they
      // happened, every assignment finds the partition free, every revoke finds it owned by the revoker.
      const owner = new Map<number, string>();
      for (const e of events) {
        for (const p of e.partitions) {
          if (e.kind === 'assigned') {
            expect(
              owner.get(p),
              `partition ${p} assigned to ${e.member} while ${owner.get(p)} owns it`,
            ).toBeUndefined();
            owner.set(p, e.member);
          } else {
            expect(owner.get(p)).toBe(e.member);
            owner.delete(p);
          }
        }
      }
      expect(events.some((e) => e.member === 'c' && e.kind === 'assigned')).toBe(true);
      expect(events.filter((e) => e.kind === 'revoked').every((e) => e.lost === false)).toBe(true);

      // At least once; after dedup by (partition, offset) exactly once, with the content appended there.
      for (const [k, v] of appended) {
        const reads = seen.get(k)!;
        expect(new Set(reads)).toEqual(new Set([v]));
      }
      expect([...seen.keys()].filter((k) => !appended.has(k))).toEqual([]);
      // Commits made while revoking (before the hand-over) were accepted.
      for (const p of procs) expect(p.commitErrors).toEqual([]);

      // A member that lost a partition cannot commit it.
      const moved = [...c.member.assignment][0]!;
      const loser = [a, b].find((x) => !x.member.assignment.has(moved))!;
      await expect(loser.member.commit(moved, 1)).rejects.toMatchObject({ kind: { code: 'conflict' } });
      await expect(loser.member.read(moved, 0, 100)).rejects.toMatchObject({ kind: { code: 'conflict' } });
    } finally {
      appending = false;
      await appender;
      await bus.close();
    }
  }, 60_000);

  it('fences a member whose revoke outlasts the rebalance: its late commit is refused, the partitions moved on', async () => {
    // The coordinator waits rebalanceTimeoutMs for every member to rejoin; a member still revoking then is
    // dropped from the group, and the others take its partitions.
    const bus = await KafkaBus.open(options(2, { rebalanceTimeoutMs: 6_000, sessionTimeoutMs: 6_000 }));
    const changed = new Condition();
    let releaseSlowRevoke!: () => void;
    const slowRevoke = new Promise<void>((r) => {
      releaseSlowRevoke = r;
    });
    let lateCommit: Promise<unknown> | undefined;
    const aOwned = new Set<number>();
    const bOwned = new Set<number>();
    let a!: GroupMember;
    try {
      a = await bus.join('fencing', {
        onAssigned: async (ps) => {
          for (const p of ps) aOwned.add(p);
          changed.notify();
        },
        onRevoked: async (ps) => {
          // The first revoke stalls past the rebalance timeout, then tries to commit what it processed.
          if (!lateCommit) {
            await slowRevoke;
            lateCommit = a.commit(ps[0]!, 1).then(
              () => 'accepted',
              (e: unknown) => e,
            );
            await lateCommit;
          }
          for (const p of ps) aOwned.delete(p);
          changed.notify();
        },
      });
      await changed.until('a to own both partitions', () => aOwned.size === 2);
      await bus.join('fencing', {
        onAssigned: async (ps) => {
          for (const p of ps) bOwned.add(p);
          changed.notify();
        },
        onRevoked: async (ps) => {
          for (const p of ps) bOwned.delete(p);
          changed.notify();
        },
      });
      // b is given both partitions once the coordinator gave up on a, while a is still inside onRevoked.
      await changed.until('b to take over both partitions', () => bOwned.size === 2);
      expect(aOwned.size).toBe(2);
      releaseSlowRevoke();
      await changed.until('a to finish revoking', () => lateCommit !== undefined && aOwned.size === 0);
      const refused = await lateCommit;
      expect(refused).toBeInstanceOf(TrainwatchError);
      expect((refused as TrainwatchError).kind.code).toBe('conflict');
      expect((refused as TrainwatchError).message).toMatch(/fenced/);
      expect(await a.committed(0)).toBe(0);
    } finally {
      releaseSlowRevoke();
      await bus.close();
    }
  }, 45_000);

  // Last: it kills the shared broker (and starts it again).
  it('rejects appends with a retryable 503 while the broker is gone, and recovers when it is back', async () => {
    const bus = await KafkaBus.open(options(2, { retries: 1, retryDelayMs: 200, requestTimeoutMs: 3_000 }));
    const changed = new Condition();
    try {
      const before = await bus.append('k', enc('before'));
      const p = before.partition;
      const member = await bus.join('survivor', {
        onAssigned: async () => changed.notify(),
        onRevoked: async () => changed.notify(),
      });
      await changed.until('the member to own the partition', () => member.assignment.has(p));

      await broker.kill();
      const started = Date.now();
      const err = await bus.append('k', enc('during')).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(TrainwatchError);
      const tw = err as TrainwatchError;
      expect(tw.status).toBe(503);
      expect(tw.kind.retryable).toBe(true);
      expect(tw.retryAfterSeconds).toBeGreaterThan(0);
      expect(tw.message).toMatch(/cannot append to Kafka topic/);
      expect(Date.now() - started).toBeLessThan(20_000);

      await broker.restart();
      // The producer takes a new producer id after the failed request, then appends as before.
      const after = await bus.append('k', enc('after'));
      expect(after).toEqual({ partition: p, offset: 1 });
      // The member is back in its group (rejoined if its session expired) and reads on from the log.
      let got: string[] = [];
      const deadline = Date.now() + 30_000;
      while (!got.includes('after') && Date.now() < deadline) {
        if (!member.assignment.has(p)) {
          await changed.until('the member to own the partition again', () => member.assignment.has(p));
          continue;
        }
        try {
          got = (await member.read(p, 0, 1 << 20)).map((e) => dec(e.record));
        } catch {
          // The client reconnects; the long-poll below waits (or fails) for a while before the next try.
        }
        if (!got.includes('after')) await member.waitFor(p, got.length, 1_000);
      }
      expect(got).toEqual(['before', 'after']);
    } finally {
      await bus.close();
    }
  }, 60_000);
});
