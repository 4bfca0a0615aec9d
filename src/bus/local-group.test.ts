/**
 * Consumer groups over the embedded log: partitions are owned by exactly one member, a rebalance revokes
 * before it assigns, fenced members cannot commit, and commits let the log drop what every group has read.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { GroupMember, RebalanceListener } from './bus.js';
import { DiskLogBus } from './disk-log.js';

const opened: DiskLogBus[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((b) => b.close()));
});

async function open(partitions = 4, segmentBytes = 1 << 20): Promise<DiskLogBus> {
  const bus = await DiskLogBus.open({
    dir: mkdtempSync(path.join(os.tmpdir(), 'tw-group-')),
    partitions,
    segmentBytes,
    fsync: 'never',
    fsyncIntervalMs: 50,
    maxQueuedBytes: 8 << 20,
    logger: pino({ level: 'silent' }),
  });
  opened.push(bus);
  return bus;
}

/** A listener that records every call, in order, into a shared journal. */
function recorder(name: string, journal: string[], onRevoked?: (ps: readonly number[]) => Promise<void>) {
  let assignedOnce: () => void = () => {};
  const firstAssignment = new Promise<void>((resolve) => {
    assignedOnce = resolve;
  });
  const listener: RebalanceListener = {
    async onAssigned(ps) {
      journal.push(`${name}+${ps.join(',')}`);
      assignedOnce();
    },
    async onRevoked(ps, lost) {
      journal.push(`${name}-${ps.join(',')}${lost ? ' lost' : ''}`);
      await onRevoked?.(ps);
    },
  };
  return { listener, firstAssignment };
}

/** Waits until the member owns exactly `n` partitions (rebalances run after the event loop turns). */
async function owning(m: GroupMember, n: number): Promise<void> {
  for (let i = 0; i < 1000 && m.assignment.size !== n; i++) await new Promise((r) => setImmediate(r));
  expect(m.assignment.size).toBe(n);
}

describe('consumer groups on the embedded log', () => {
  it('gives a lone member every partition, and shares them when a second joins (revoke before assign)', async () => {
    const bus = await open(4);
    const journal: string[] = [];
    const a = recorder('a', journal);
    const ma = await bus.join('g', a.listener);
    await a.firstAssignment;
    expect([...ma.assignment].sort()).toEqual([0, 1, 2, 3]);

    const b = recorder('b', journal);
    const mb = await bus.join('g', b.listener);
    await b.firstAssignment;
    expect([...ma.assignment].sort()).toEqual([0, 2]);
    expect([...mb.assignment].sort()).toEqual([1, 3]);
    // a gave up 1 and 3 before b got them.
    expect(journal).toEqual(['a+0,1,2,3', 'a-1,3', 'b+1,3']);

    // b leaves: its partitions go back to a, after b released them.
    await mb.leave();
    await owning(ma, 4);
    expect(journal.slice(3)).toEqual(['b-1,3', 'a+1,3']);
  });

  it('tells a member with nothing to own that it got nothing', async () => {
    const bus = await open(1);
    const journal: string[] = [];
    const a = recorder('a', journal);
    await bus.join('g', a.listener);
    await a.firstAssignment;
    const b = recorder('b', journal);
    const mb = await bus.join('g', b.listener);
    await b.firstAssignment;
    expect(mb.assignment.size).toBe(0);
    expect(journal).toEqual(['a+0', 'b+']);
  });

  it('lets the revoked owner commit during the hand-over, and refuses it afterwards', async () => {
    const bus = await open(2);
    const key = Array.from({ length: 100 }, (_, i) => `k${i}`).find((k) => bus.partitionOf(k) === 1)!;
    for (let i = 0; i < 5; i++) await bus.append(key, new Uint8Array([i]));
    const journal: string[] = [];
    let ma: GroupMember | undefined;
    const a = recorder('a', journal, async (ps) => {
      // The hand-over: the old owner still owns what it is giving up until this resolves.
      for (const p of ps) await ma!.commit(p, 3);
    });
    ma = await bus.join('g', a.listener);
    await a.firstAssignment;
    const read = await ma.read(1, 0, 1 << 20);
    expect(read.map((e) => e.offset)).toEqual([0, 1, 2, 3, 4]);

    const b = recorder('b', journal);
    const mb = await bus.join('g', b.listener);
    await b.firstAssignment;
    expect(mb.assignment.has(1)).toBe(true);
    // The new owner resumes where the old one committed.
    expect(await mb.committed(1)).toBe(3);
    expect((await mb.read(1, await mb.committed(1), 1 << 20)).map((e) => e.offset)).toEqual([3, 4]);
    // The old owner is fenced: no reads, no commits that would move the new owner's position.
    await expect(ma.commit(1, 5)).rejects.toMatchObject({ kind: { code: 'conflict' } });
    await expect(ma.read(1, 0, 1 << 20)).rejects.toThrow(/not assigned/);
    expect(await mb.committed(1)).toBe(3);
  });

  it('keeps segments until every group has committed past them', async () => {
    const bus = await open(1, 1 << 16);
    const payload = new Uint8Array(20_000);
    for (let i = 0; i < 12; i++) await bus.append('k', payload);
    const journal: string[] = [];
    const a = recorder('a', journal);
    const b = recorder('b', journal);
    const ma = await bus.join('first', a.listener);
    const mb = await bus.join('second', b.listener);
    await Promise.all([a.firstAssignment, b.firstAssignment]);
    expect(await ma.startOffset(0)).toBe(0);

    await ma.commit(0, 12);
    // The second group still needs everything.
    expect(await mb.startOffset(0)).toBe(0);
    await mb.commit(0, 9);
    const start = await mb.startOffset(0);
    expect(start).toBeGreaterThan(0);
    expect(start).toBeLessThanOrEqual(9);
    // A group that never committed starts at the oldest record still there.
    const c = recorder('c', journal);
    const mc = await bus.join('third', c.listener);
    await c.firstAssignment;
    expect(await mc.committed(0)).toBe(start);
  });

  it('rejects a group name that could escape the log directory', async () => {
    const bus = await open(1);
    await expect(bus.join('../x', recorder('x', []).listener)).rejects.toThrow(/invalid consumer group/);
  });
});
