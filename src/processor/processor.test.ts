/**
 * Detector state hand-over between processors of one consumer group (embedded bus): a partition that moves
 * (a member joins, or its owner dies) continues its detectors on the new owner — the same alert episode
 * (fingerprint and activeAtMs), never raised twice, and nothing more from the old owner about it.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import { waitFor } from '../../test/support/helpers.js';
import type { Alert } from '../alerting/notifier.js';
import type { AlertChange } from '../alerting/tracker.js';
import {
  type Bus,
  DiskLogBus,
  type GroupMember,
  jobPartitionKey,
  type RebalanceListener,
} from '../bus/index.js';
import { BusWriter } from '../collector/index.js';
import type { JobStore } from '../meta/index.js';
import type { PgPartitionState } from '../meta/postgres/index.js';
import { SeriesBatchBuilder } from '../model/batch.js';
import { Errors, twError } from '../model/errors.js';
import type { Storage } from '../storage/index.js';
import { DetectorSettings } from './detectors/config.js';
import { DetectorEngine } from './detectors/engine.js';
import { FilePartitionStateStore, type PartitionStateStore } from './partition-state.js';
import { Processor } from './processor.js';
import { STATE_FILE, writeState } from './state.js';

const TENANT = 'default';
const M = 60_000;
const START_MS = Date.now() - 30 * M;

interface Change {
  readonly by: string;
  readonly change: AlertChange;
  readonly name: string;
  readonly jobId: string | undefined;
  readonly fingerprint: string;
  readonly activeAtMs: number;
  readonly firingAtMs: number | null;
}

const storage: Storage = {
  appender: { append: async () => {} },
  querier: () => {
    throw new Error('not queried');
  },
  checkpoint: async () => {},
  coveredPositions: () => new Map(),
  close: async () => {},
} as unknown as Storage;

const jobs = { applyEvent() {}, noteSamples() {}, flush() {} } as unknown as JobStore;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function openBus(dir: string): Promise<DiskLogBus> {
  return DiskLogBus.open({
    dir: path.join(dir, 'bus'),
    partitions: 4,
    segmentBytes: 1 << 20,
    fsync: 'never',
    fsyncIntervalMs: 50,
    maxQueuedBytes: 8 << 20,
    logger: pino({ level: 'silent' }),
  });
}

/** A processor with its own engine and its own state store instance on the shared state directory. */
function newProcessor(
  name: string,
  bus: Bus,
  stateDir: string,
  changes: Change[],
  persistAlerts?: () => Promise<boolean>,
) {
  const engine = new DetectorEngine(DetectorSettings.defaults(), {
    transition(a: Alert, change: AlertChange) {
      changes.push({
        by: name,
        change,
        name: a.labels.alertname ?? '',
        jobId: a.labels.job_id,
        fingerprint: a.fingerprint,
        activeAtMs: a.activeAtMs,
        firingAtMs: a.firingAtMs,
      });
    },
  });
  const processor = new Processor(bus, storage, jobs, pino({ level: 'silent' }), new Registry(), {
    checkpointIntervalMs: 60_000,
    analysis: {
      engine,
      stateDir,
      partitionStates: new FilePartitionStateStore(stateDir),
      stateIntervalMs: 0,
      tickMs: 3_600_000,
      ...(persistAlerts ? { persistAlerts } : {}),
    },
  });
  return { processor, engine };
}

/** A job id whose partition satisfies `want`. */
function jobIn(bus: Bus, want: (p: number) => boolean, prefix: string): string {
  for (let i = 0; ; i++) {
    const id = `${prefix}-${i}`;
    if (want(bus.partitionOf(jobPartitionKey(TENANT, id)))) return id;
  }
}

/**
 * Minutes [from, to) of a 4-rank job's step durations, a sample every 5 s: rank 3 takes twice as long
 * between `slowFrom` and `slowTo` (a straggler), the others about one second.
 */
async function writeMinutes(
  writer: BusWriter,
  jobId: string,
  from: number,
  to: number,
  slow: [number, number],
): Promise<void> {
  let seq = 0;
  for (let t = START_MS + from * M; t < START_MS + to * M; t += 5000) {
    const b = new SeriesBatchBuilder();
    const minute = (t - START_MS) / M;
    for (let r = 0; r < 4; r++) {
      const straggling = r === 3 && minute >= slow[0] && minute < slow[1];
      b.addSeries({
        __name__: 'train_step_duration_seconds',
        job_id: jobId,
        node_id: `n${r}`,
        rank: String(r),
      }).add(t, straggling ? 2 : 1 + 0.01 * ((t / 5000 + r) % 3));
    }
    await writer.write(
      { tenant: TENANT, sourceId: `src-${jobId}`, sequence: seq++, receivedAtMs: t },
      b.build(),
      [],
    );
  }
}

/** Waits until `processor` has read every record of the partitions it owns. */
async function drained(processor: Processor, bus: DiskLogBus): Promise<void> {
  const positions = (processor as unknown as { positions: Map<number, number> }).positions;
  await waitFor(
    'the processor to catch up',
    () => [...positions].every(([p, at]) => at >= bus.endOffset(p)),
    10_000,
    20,
  );
}

const episodes = (changes: readonly Change[], name: string) =>
  new Set(changes.filter((c) => c.name === name).map((c) => `${c.fingerprint}@${c.activeAtMs}`));

describe('processor: detector state per partition', () => {
  it('takes the PostgreSQL partition state as its store, as it is', () => {
    expectTypeOf<PgPartitionState>().toMatchTypeOf<PartitionStateStore>();
  });

  it('a partition file store never moves a partition back to an older offset', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tw-partstate-'));
    dirs.push(dir);
    const store = new FilePartitionStateStore(dir);
    expect(await store.load('processor', 2)).toBeUndefined();
    expect(await store.save('processor', 2, 10, new Uint8Array([1, 2, 3]), 5)).toBe(true);
    expect(await store.save('processor', 2, 9, new Uint8Array([9]), 6)).toBe(false);
    expect(await store.save('processor', 2, 10, new Uint8Array([4]), 7)).toBe(true);
    const loaded = await store.load('processor', 2);
    expect([loaded?.offset, loaded?.savedAtMs, [...(loaded?.state ?? [])]]).toEqual([10, 7, [4]]);
    expect(await store.load('processor', 3)).toBeUndefined();
  });

  it('a straggler alert keeps its episode when its partition moves to a joining processor', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tw-partstate-'));
    dirs.push(dir);
    const stateDir = path.join(dir, 'processor');
    const bus = await openBus(dir);
    const writer = new BusWriter(bus);
    // Round robin over members in join order: once B joins, A keeps the even partitions, B takes the odd.
    const moving = jobIn(bus, (p) => p % 2 === 1, 'moving');
    const staying = jobIn(bus, (p) => p % 2 === 0, 'staying');
    const changes: Change[] = [];
    const a = newProcessor('A', bus, stateDir, changes);
    await a.processor.start();
    await a.processor.caughtUp;
    try {
      // Rank 3 of the moving job straggles from minute 1: pending, then firing a minute later, on A.
      await writeMinutes(writer, moving, 0, 4, [1, 6]);
      await writeMinutes(writer, staying, 0, 4, [9, 9]);
      await drained(a.processor, bus);
      const onA = changes.filter((c) => c.jobId === moving);
      expect(onA.map((c) => `${c.by} ${c.change} ${c.name}`)).toEqual([
        'A pending TrainingStraggler',
        'A firing TrainingStraggler',
      ]);

      const b = newProcessor('B', bus, stateDir, changes);
      await b.processor.start();
      try {
        await b.processor.caughtUp;
        expect(b.engine.activeAlerts().map((x) => x.fingerprint)).toEqual([onA[0]!.fingerprint]);
        expect(b.engine.activeAlerts()[0]!.activeAtMs).toBe(onA[0]!.activeAtMs);
        expect(a.engine.activeAlerts()).toEqual([]);

        // The straggler keeps straggling, then recovers at minute 6: B resolves the episode A opened.
        await writeMinutes(writer, moving, 4, 8, [1, 6]);
        await writeMinutes(writer, staying, 4, 8, [9, 9]);
        await drained(b.processor, bus);
        await drained(a.processor, bus);
        // Wall-clock absence on A (the first tick notes the jobs' arrival, the second is 3 minutes of silence):
        // its engine forgot the moving job, so it says nothing about it.
        a.engine.tick(Date.now(), true);
        a.engine.tick(Date.now() + 3 * M, true);
        const all = changes.filter((c) => c.jobId === moving);
        expect(all.map((c) => `${c.by} ${c.change} ${c.name}`)).toEqual([
          'A pending TrainingStraggler',
          'A firing TrainingStraggler',
          'B resolved TrainingStraggler',
        ]);
        expect(new Set(all.map((c) => c.activeAtMs)).size).toBe(1);
        expect(all[2]!.firingAtMs).toBe(all[1]!.firingAtMs);
        // A still sees its own job (it is absent to A's clock now), and nothing of the moved one.
        expect(
          changes.some((c) => c.by === 'A' && c.name === 'JobMetricsAbsent' && c.jobId === staying),
        ).toBe(true);
      } finally {
        await b.processor.stop();
      }
    } finally {
      await a.processor.stop();
      await bus.close();
    }
  });

  it('a processor that dies (partitions lost) is continued from its last saved state and committed offset', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tw-partstate-'));
    dirs.push(dir);
    const stateDir = path.join(dir, 'processor');
    const bus = await openBus(dir);
    const writer = new BusWriter(bus);
    const job = jobIn(bus, () => true, 'job');
    // A's view of the bus: its listener is kept, to take its partitions away as a fenced Kafka member's are.
    let listenerA: RebalanceListener | undefined;
    let memberA: GroupMember | undefined;
    const busA: Bus = {
      partitionCount: bus.partitionCount,
      partitionOf: (k) => bus.partitionOf(k),
      append: (k, r, s) => bus.append(k, r, s),
      join: async (g, l) => {
        listenerA = l;
        memberA = await bus.join(g, l);
        return memberA;
      },
      close: () => bus.close(),
    };
    const changes: Change[] = [];
    const a = newProcessor('A', busA, stateDir, changes);
    await a.processor.start();
    await a.processor.caughtUp;
    try {
      // Pending from minute 1; A saves its state and commits at minute 1.5, then fires at about minute 2.
      await writeMinutes(writer, job, 0, 1.5, [1, 5]);
      await drained(a.processor, bus);
      await a.processor.checkpoint(true);
      await writeMinutes(writer, job, 1.5, 3, [1, 5]);
      await drained(a.processor, bus);
      expect(changes.map((c) => `${c.by} ${c.change} ${c.name}`)).toEqual([
        'A pending TrainingStraggler',
        'A firing TrainingStraggler',
      ]);
      // Dies: its partitions are lost (nothing saved, nothing committed past the checkpoint).
      await listenerA!.onRevoked([0, 1, 2, 3], true, memberA!);
      expect(a.engine.activeAlerts()).toEqual([]);
      await a.processor.stop();

      const b = newProcessor('B', bus, stateDir, changes);
      await b.processor.start();
      try {
        await b.processor.caughtUp;
        await writeMinutes(writer, job, 3, 7, [1, 5]);
        await drained(b.processor, bus);
        const byB = changes.filter((c) => c.by === 'B');
        // B replays from the checkpoint: it re-derives the firing A raised after it (same episode, same
        // firing time: the alert hub recognises it), and resolves it once rank 3 recovers.
        expect(byB.map((c) => `${c.change} ${c.name}`)).toEqual([
          'firing TrainingStraggler',
          'resolved TrainingStraggler',
        ]);
        expect(episodes(changes, 'TrainingStraggler').size).toBe(1);
        expect(byB[0]!.firingAtMs).toBe(changes[1]!.firingAtMs);
      } finally {
        await b.processor.stop();
      }
    } finally {
      await bus.close();
    }
  });

  it('a checkpoint that began before its partitions were lost does not save their state emptied', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tw-partstate-'));
    dirs.push(dir);
    const stateDir = path.join(dir, 'processor');
    const bus = await openBus(dir);
    const writer = new BusWriter(bus);
    const job = jobIn(bus, () => true, 'job');
    let listenerA: RebalanceListener | undefined;
    let memberA: GroupMember | undefined;
    const busA: Bus = {
      partitionCount: bus.partitionCount,
      partitionOf: (k) => bus.partitionOf(k),
      append: (k, r, s) => bus.append(k, r, s),
      join: async (g, l) => {
        listenerA = l;
        memberA = await bus.join(g, l);
        return memberA;
      },
      close: () => bus.close(),
    };
    // A's alert flush (PostgreSQL in a cluster) can be held: a checkpoint waits there before encoding state.
    let holdFlush: Promise<void> | undefined;
    let flushReached: (() => void) | undefined;
    const persistAlerts = async () => {
      flushReached?.();
      await holdFlush;
      return true;
    };
    const changes: Change[] = [];
    const a = newProcessor('A', busA, stateDir, changes, persistAlerts);
    await a.processor.start();
    await a.processor.caughtUp;
    try {
      // Pending from minute 1, firing at about minute 2; A saves its state and commits at minute 3.
      await writeMinutes(writer, job, 0, 3, [1, 5]);
      await drained(a.processor, bus);
      await a.processor.checkpoint(true);
      expect(changes.map((c) => `${c.by} ${c.change} ${c.name}`)).toEqual([
        'A pending TrainingStraggler',
        'A firing TrainingStraggler',
      ]);
      // The next checkpoint waits on the flush while A's partitions are taken away (its session expired), then
      // goes on: it must not save the dropped partitions' (empty) state over the one saved above.
      let release: () => void = () => {};
      holdFlush = new Promise<void>((r) => {
        release = r;
      });
      const reached = new Promise<void>((r) => {
        flushReached = r;
      });
      const stale = a.processor.checkpoint(true);
      await reached;
      await listenerA!.onRevoked([0, 1, 2, 3], true, memberA!);
      release();
      await stale;
      await a.processor.stop();

      const b = newProcessor('B', bus, stateDir, changes);
      await b.processor.start();
      try {
        await b.processor.caughtUp;
        // B continues the episode A opened, from A's saved state.
        expect(b.engine.activeAlerts().map((x) => `${x.fingerprint}@${x.activeAtMs}`)).toEqual([
          `${changes[0]!.fingerprint}@${changes[0]!.activeAtMs}`,
        ]);
        await writeMinutes(writer, job, 3, 7, [1, 5]);
        await drained(b.processor, bus);
        expect(changes.filter((c) => c.by === 'B').map((c) => `${c.change} ${c.name}`)).toEqual([
          'resolved TrainingStraggler',
        ]);
        expect(episodes(changes, 'TrainingStraggler').size).toBe(1);
      } finally {
        await b.processor.stop();
      }
    } finally {
      await bus.close();
    }
  });

  it('a processor whose commit learns it was fenced stops treating its partitions as its own at once', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tw-partstate-'));
    dirs.push(dir);
    const stateDir = path.join(dir, 'processor');
    const bus = await openBus(dir);
    const writer = new BusWriter(bus);
    const job = jobIn(bus, () => true, 'job');
    // A Kafka member whose session the coordinator dropped still lists its partitions (they are revoked only
    // when it rejoins), but its commits are refused as fenced.
    let fenced = false;
    const fence = (m: GroupMember): GroupMember =>
      new Proxy(m, {
        get(target, key) {
          if (key === 'commit' && fenced)
            return async (p: number) => {
              throw twError(
                Errors.conflict,
                `cannot commit partition ${p}: this member was fenced by a rebalance`,
              );
            };
          const v = Reflect.get(target, key, target);
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
    const busA: Bus = {
      partitionCount: bus.partitionCount,
      partitionOf: (k) => bus.partitionOf(k),
      append: (k, r, s) => bus.append(k, r, s),
      join: async (g, l) =>
        fence(
          await bus.join(g, {
            onAssigned: (ps, m) => l.onAssigned(ps, fence(m)),
            onRevoked: (ps, lost, m) => l.onRevoked(ps, lost, fence(m)),
          }),
        ),
      close: () => bus.close(),
    };
    let flushes = 0;
    const persistAlerts = async () => {
      flushes++;
      return true;
    };
    const changes: Change[] = [];
    const a = newProcessor('A', busA, stateDir, changes, persistAlerts);
    await a.processor.start();
    await a.processor.caughtUp;
    const positions = (a.processor as unknown as { positions: Map<number, number> }).positions;
    try {
      await writeMinutes(writer, job, 0, 3, [1, 5]);
      await drained(a.processor, bus);
      await a.processor.checkpoint(true);
      expect(changes.map((c) => `${c.by} ${c.change} ${c.name}`)).toEqual([
        'A pending TrainingStraggler',
        'A firing TrainingStraggler',
      ]);
      fenced = true;
      await a.processor.checkpoint(true);
      // Released as lost: nothing read, analysed, saved or flushed for them any more; their series and open
      // alert are dropped without a word (the new owner continues the episode).
      expect(positions.size).toBe(0);
      expect(a.engine.seriesCount).toBe(0);
      expect(a.engine.activeAlerts()).toEqual([]);
      const flushed = flushes;
      await writeMinutes(writer, job, 3, 7, [1, 5]);
      await a.processor.checkpoint(true);
      expect(flushes).toBe(flushed);
      expect(a.engine.seriesCount).toBe(0);
      expect(changes.filter((c) => c.by === 'A').length).toBe(2);
    } finally {
      await a.processor.stop();
      await bus.close();
    }
  });

  it('migrates the single state file of an earlier build to per-partition states', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tw-partstate-'));
    dirs.push(dir);
    const stateDir = path.join(dir, 'processor');
    const bus = await openBus(dir);
    const writer = new BusWriter(bus);
    const job = jobIn(bus, () => true, 'job');
    await writeMinutes(writer, job, 0, 3, [1, 4]);
    // What an earlier build left: one engine that read the whole bus, saved with every partition's end.
    const changes: Change[] = [];
    const earlier = newProcessor('old', bus, stateDir, changes).engine;
    for (let t = START_MS; t < START_MS + 3 * M; t += 5000)
      for (let r = 0; r < 4; r++) {
        const b = new SeriesBatchBuilder();
        b.addSeries({
          __name__: 'train_step_duration_seconds',
          job_id: job,
          node_id: `n${r}`,
          rank: String(r),
        }).add(t, r === 3 && t >= START_MS + M ? 2 : 1 + 0.01 * ((t / 5000 + r) % 3));
        earlier.observe(TENANT, b.build());
      }
    expect(changes.map((c) => `${c.by} ${c.change}`)).toEqual(['old pending', 'old firing']);
    const ends: [number, number][] = [0, 1, 2, 3].map((p) => [p, bus.endOffset(p)]);
    await writeState(stateDir, Date.now(), ends, earlier, async () => {});

    const b = newProcessor('new', bus, stateDir, changes);
    await b.processor.start();
    try {
      await b.processor.caughtUp;
      expect(existsSync(path.join(stateDir, STATE_FILE))).toBe(false);
      expect(readdirSync(path.join(stateDir, 'partitions', 'processor')).sort()).toEqual([
        '0.bin',
        '1.bin',
        '2.bin',
        '3.bin',
      ]);
      expect(b.engine.activeAlerts().map((a) => a.activeAtMs)).toEqual([changes[0]!.activeAtMs]);
      await writeMinutes(writer, job, 3, 6, [1, 4]);
      await drained(b.processor, bus);
      expect(changes.map((c) => `${c.by} ${c.change}`)).toEqual([
        'old pending',
        'old firing',
        'new resolved',
      ]);
      expect(changes[2]!.activeAtMs).toBe(changes[0]!.activeAtMs);
    } finally {
      await b.processor.stop();
      await bus.close();
    }
  });
});
