/**
 * The detector engine's two ways in must agree: the processor's (series-table refs from the record decoder,
 * `observeRecord`) and label objects (`observe`, used by tests and tools). And a snapshot taken mid-run,
 * written as JSON and restored into a fresh engine, must continue exactly as the engine that never stopped:
 * the same alert changes with the same timestamps and values, the same derived samples. Fed the fleet
 * simulator with its injected incidents, so every detector raises and clears alerts on the way.
 */
import { describe, expect, it } from 'vitest';
import type { Alert } from '../../alerting/notifier.js';
import type { AlertChange } from '../../alerting/tracker.js';
import { hashPartitionKey, jobPartitionKey } from '../../bus/index.js';
import { type SeriesBatch, SeriesBatchBuilder } from '../../model/batch.js';
import type { JobEvent } from '../../model/job.js';
import type { LabelSet } from '../../model/labels.js';
import { NativeEncoder } from '../../protocol/native.js';
import { defaultFleetOptions, FleetSimulator } from '../../simulator/index.js';
import { decodeRecord, RecordBatch } from '../record-decoder.js';
import { SeriesTable } from '../series-table.js';
import { StateReader, StateWriter } from '../state.js';
import { DetectorSettings } from './config.js';
import { DetectorEngine, type EngineSnapshot } from './engine.js';

const TENANT = 'default';
const START_MS = Date.UTC(2025, 0, 1);

interface Step {
  readonly t: number;
  readonly records: { batch: SeriesBatch; payload: Uint8Array; events: JobEvent[] }[];
}

/** The simulator's fleet, one record per node per tick, as the agents send it. */
function fleetSteps(minutes: number): Step[] {
  const fleet = new FleetSimulator({ ...defaultFleetOptions, seed: 7, jobs: 8, startMs: START_MS });
  const encoder = new NativeEncoder();
  const steps: Step[] = [];
  while (fleet.nowMs < START_MS + minutes * 60_000) {
    fleet.tick();
    const records: Step['records'] = [];
    for (const node of fleet.activeNodes()) {
      const b = new SeriesBatchBuilder(node.series.length);
      for (let s = 0; s < node.series.length; s++) {
        if (!node.present[s]) continue;
        b.addSeries(node.series[s]!);
        b.add(fleet.nowMs, node.values[s]!);
      }
      const batch = b.build();
      const events = node.events;
      node.events = [];
      records.push({ batch, payload: encoder.encodePayload(batch, events), events });
    }
    steps.push({ t: fleet.nowMs, records });
  }
  return steps;
}

type Log = string[];

function newEngine(log: Log, derived: Log, seriesTtlMs?: number): DetectorEngine {
  const engine = new DetectorEngine(
    DetectorSettings.defaults(),
    {
      transition(a: Alert, change: AlertChange) {
        log.push(
          `${change} ${a.name} ${a.fingerprint} active=${a.activeAtMs} firing=${a.firingAtMs} resolved=${a.resolvedAtMs} value=${a.value}`,
        );
      },
    },
    { derived: true, ...(seriesTtlMs !== undefined ? { seriesTtlMs } : {}) },
  );
  return Object.assign(engine, { derivedLog: derived });
}

function drainDerived(engine: DetectorEngine, out: Log): void {
  for (const [tenant, b] of engine.takeDerived())
    for (let i = 0; i < b.series.length; i++)
      for (let j = b.offsets[i]!; j < b.offsets[i + 1]!; j++)
        out.push(
          `${tenant} ${b.series[i]!.__name__} ${b.series[i]!.job_id} ${b.timestamps[j]} ${b.values[j]}`,
        );
}

/** Runs steps [from, to) through the engine, by label objects or by series-table refs. */
function run(
  engine: DetectorEngine,
  steps: Step[],
  from: number,
  to: number,
  way: 'labels' | 'refs',
  derived: Log,
  table = new SeriesTable(),
): void {
  const rb = new RecordBatch();
  const tenantSid = table.internString(TENANT);
  for (let i = from; i < to; i++) {
    const step = steps[i]!;
    engine.tick(step.t, true);
    for (const r of step.records) {
      if (way === 'labels') {
        if (r.batch.sampleCount > 0) engine.observe(TENANT, r.batch);
        if (r.events.length > 0) engine.observeEvents(TENANT, r.events);
      } else {
        decodeRecord(r.payload, tenantSid, table, rb, step.t);
        if (rb.sampleCount > 0) engine.observeRecord(TENANT, rb, table);
        if (rb.events.length > 0) engine.observeEvents(TENANT, rb.events);
      }
      drainDerived(engine, derived);
    }
  }
}

describe('detector engine', () => {
  const steps = fleetSteps(25);

  // Two full runs of the fleet: about 25 s alone on the loaded 2-core machine, over 30 s beside a benchmark.
  it('raises the same alerts and derived samples by series-table refs as by label objects', {
    timeout: 120_000,
  }, () => {
    const a: Log = [];
    const aDerived: Log = [];
    run(newEngine(a, aDerived), steps, 0, steps.length, 'labels', aDerived);
    const b: Log = [];
    const bDerived: Log = [];
    run(newEngine(b, bDerived), steps, 0, steps.length, 'refs', bDerived);
    // The fleet's incidents start 5 minutes into their jobs: every kind of change shows up.
    expect(a.filter((l) => l.startsWith('firing')).length).toBeGreaterThan(3);
    expect(a.some((l) => l.startsWith('resolved'))).toBe(true);
    expect(aDerived.length).toBeGreaterThan(100);
    expect(b).toEqual(a);
    expect(bDerived).toEqual(aDerived);
  });

  for (const format of ['binary', 'json'] as const) {
    // One pass of the fleet: at each of twelve cuts the state is handed to a fresh engine, which runs to the
    // next cut beside the engine that never stopped. The two must make the same alert changes and derived
    // samples on the way, and hold the same state at the next cut; by induction (the engine is deterministic
    // given its state and input) the restored engine continues exactly as the whole one to the end. The last
    // restored engine runs to the end.
    it(`continues from a ${format} snapshot exactly as an engine that never stopped`, {
      timeout: 120_000,
    }, () => {
      // Cut at many points, so that every kind of open alert is handed over at some cut (a restored job must
      // be in the phase it was in: its idle-GPU and straggler alerts depend on it being in training).
      const cuts = Array.from({ length: 12 }, (_, i) => Math.floor((steps.length * (i + 1)) / 13));
      // Forgetting silent series is by wall-clock arrival, which a snapshot does not carry: a restored series
      // counts as arrived at the restoring engine's first tick (as restored into a running engine), so a series
      // already silent at the cut goes up to a TTL later than in the engine that saw it arrive. Not within this
      // run: everything else continues exactly. The sweep after a restore has its own test below.
      const noSweep = 24 * 60 * 60_000;
      const whole: Log = [];
      const wholeDerived: Log = [];
      const e1 = newEngine(whole, wholeDerived, noSweep);
      const e1Table = new SeriesTable();
      const openAtCuts = new Set<string>();
      const stateOf = (e: DetectorEngine) => JSON.parse(JSON.stringify(e.snapshot())) as EngineSnapshot;
      run(e1, steps, 0, cuts[0]!, 'refs', wholeDerived, e1Table);
      for (const [i, cut] of cuts.entries()) {
        const next = cuts[i + 1] ?? steps.length;
        for (const a of e1.activeAlerts()) openAtCuts.add(a.name);
        const snap = stateOf(e1);

        const second: Log = [];
        const secondDerived: Log = [];
        const e2 = newEngine(second, secondDerived, noSweep);
        if (format === 'json') e2.restore(snap);
        else {
          const w = new StateWriter();
          let slices = 0;
          for (const _ of e1.encodeState(w, 64)) slices++;
          expect(slices, 'the state is written in slices').toBeGreaterThan(2);
          e2.decodeState(new StateReader(w.take()));
        }
        expect(stateOf(e2), `state restored at cut ${cut}`).toEqual(snap);
        const logAt = whole.length;
        const derivedAt = wholeDerived.length;
        run(e1, steps, cut, next, 'refs', wholeDerived, e1Table);
        run(e2, steps, cut, next, 'refs', secondDerived);
        expect(second, `alert changes from cut ${cut} to ${next}`).toEqual(whole.slice(logAt));
        expect(secondDerived, `derived samples from cut ${cut} to ${next}`).toEqual(
          wholeDerived.slice(derivedAt),
        );
        if (next < steps.length)
          expect(stateOf(e2), `state at ${next} after cut ${cut}`).toEqual(stateOf(e1));
      }
      expect([...openAtCuts]).toEqual(
        expect.arrayContaining(['GPUIdle', 'TrainingStraggler', 'TrainingStalled']),
      );
    });
  }

  it('after a restore, clears alerts that were open at the snapshot once their condition stops holding', () => {
    // Three alerts open at the cut (a threshold, a job-level member alert, a node absence), each of which
    // clears a minute after it.
    const points = (minute: number) => {
      const b = new SeriesBatchBuilder();
      const t = START_MS + minute * 60_000;
      const hot = minute < 5;
      b.addSeries({ __name__: 'gpu_temperature_celsius', job_id: 'j', node_id: 'n1', gpu: '0' }).add(
        t,
        hot ? 95 : 60,
      );
      b.addSeries({ __name__: 'train_loss', job_id: 'j', node_id: 'n1', rank: '0' }).add(
        t,
        minute === 4 ? Number.NaN : 2,
      );
      if (minute < 1 || minute >= 5)
        b.addSeries({ __name__: 'train_loss', job_id: 'j', node_id: 'n2', rank: '1' }).add(t, 2);
      return b.build();
    };
    const feed = (engine: DetectorEngine, from: number, to: number) => {
      for (let m = from; m < to; m++) {
        for (let s = 0; s < 60; s += 15) {
          const b = points(m);
          const shifted = { ...b, timestamps: b.timestamps.map((t) => t + s * 1000) };
          engine.observe(TENANT, shifted);
        }
      }
    };
    const whole: Log = [];
    feed(newEngine(whole, []), 0, 8);
    const before: Log = [];
    const e1 = newEngine(before, []);
    feed(e1, 0, 5);
    const snap = JSON.parse(JSON.stringify(e1.snapshot())) as EngineSnapshot;
    expect(snap.alerts.map((a) => a.name).sort()).toEqual([
      'GPUTemperatureHigh',
      'NodeMetricsAbsent',
      'TrainingNaN',
    ]);
    const after: Log = [];
    const e2 = newEngine(after, []);
    const w = new StateWriter();
    for (const _ of e1.encodeState(w));
    e2.decodeState(new StateReader(w.take()));
    feed(e2, 5, 8);
    expect(after.map((l) => l.split(' ').slice(0, 2).join(' ')).sort()).toEqual([
      'resolved GPUTemperatureHigh',
      'resolved NodeMetricsAbsent',
      'resolved TrainingNaN',
    ]);
    expect([...before, ...after]).toEqual(whole);
  });

  it('forgets series nobody sends any more and ends their alerts', () => {
    const log: Log = [];
    const engine = new DetectorEngine(
      DetectorSettings.defaults(),
      { transition: (a, c) => log.push(`${c} ${a.name}`) },
      { seriesTtlMs: 60_000 },
    );
    // Live from the start, as a processor ticks once a second (sweeps run on a minute's first tick).
    engine.tick(START_MS, true);
    const b = new SeriesBatchBuilder();
    b.addSeries({ __name__: 'gpu_temperature_celsius', job_id: 'j', node_id: 'n', gpu: '0' });
    for (let i = 0; i < 120; i++) b.add(START_MS + i * 1000, 95);
    engine.observe(TENANT, b.build());
    expect(log).toEqual(['pending GPUTemperatureHigh', 'firing GPUTemperatureHigh']);
    const tracked = engine.seriesCount;
    expect(tracked).toBe(1);
    engine.tick(START_MS + 120_000 + 61_000, true);
    expect(engine.seriesCount).toBe(0);
    expect(log.at(-1)).toBe('resolved GPUTemperatureHigh');
    // The same series coming back starts afresh.
    const again = new SeriesBatchBuilder();
    again.addSeries({ __name__: 'gpu_temperature_celsius', job_id: 'j', node_id: 'n', gpu: '0' });
    again.add(START_MS + 200_000, 95);
    engine.observe(TENANT, again.build());
    expect(engine.seriesCount).toBe(1);
    expect(log.at(-1)).toBe('pending GPUTemperatureHigh');
  });

  it('keeps series whose samples keep arriving, however old their timestamps (a backlog, a backfill)', () => {
    const log: Log = [];
    const engine = new DetectorEngine(
      DetectorSettings.defaults(),
      { transition: (a, c) => log.push(`${c} ${a.name}`) },
      { seriesTtlMs: 90_000 },
    );
    // A processor 10 minutes behind: every minute of wall clock it reads a minute of samples 10 minutes old.
    const lag = 10 * 60_000;
    for (let minute = 0; minute < 5; minute++) {
      const wall = START_MS + lag + minute * 60_000;
      engine.tick(wall, true);
      const b = new SeriesBatchBuilder();
      b.addSeries({ __name__: 'gpu_temperature_celsius', job_id: 'j', node_id: 'n', gpu: '0' });
      for (let i = 0; i < 60; i++) b.add(START_MS + minute * 60_000 + i * 1000, 95);
      engine.observe(TENANT, b.build());
    }
    engine.tick(START_MS + lag + 5 * 60_000, true);
    expect(engine.seriesCount).toBe(1);
    expect(log).toEqual(['pending GPUTemperatureHigh', 'firing GPUTemperatureHigh']);
    // Once nothing arrives for the TTL (90 s; swept once a minute), it goes.
    engine.tick(START_MS + lag + 6 * 60_000 + 1000, true);
    expect(engine.seriesCount).toBe(0);
    expect(log.at(-1)).toBe('resolved GPUTemperatureHigh');
  });
  it('keeps series restored before its first tick: they arrived now, however old their last sample', () => {
    // The cluster replays data about as old as the TTL: a new processor restores a partition at start, before
    // its first tick; its restored series have no arrival time yet, and must not be swept by sample time.
    const ttl = 15 * 60_000;
    const labels = { __name__: 'gpu_temperature_celsius', job_id: 'j', node_id: 'n', gpu: '0' };
    const aLog: Log = [];
    const a = new DetectorEngine(
      DetectorSettings.defaults(),
      { transition: (x, c) => aLog.push(`${c} ${x.name} ${x.activeAtMs}`) },
      { seriesTtlMs: ttl },
    );
    // The wall clock a little under a TTL past the last sample (START_MS + 119 s).
    const wall = START_MS + 120_000 + ttl - 30_000;
    a.tick(wall, true);
    const b1 = new SeriesBatchBuilder();
    b1.addSeries(labels);
    for (let i = 0; i < 120; i++) b1.add(START_MS + i * 1000, 95);
    a.observe(TENANT, b1.build());
    expect(aLog.map((l) => l.split(' ')[0])).toEqual(['pending', 'firing']);
    const snap = a.snapshotPartitions(new Set([0]), () => 0);

    const bLog: Log = [];
    const b = new DetectorEngine(
      DetectorSettings.defaults(),
      { transition: (x, c) => bLog.push(`${c} ${x.name} ${x.activeAtMs}`) },
      { seriesTtlMs: ttl },
    );
    b.restorePartition(snap.get(0)!);
    // First tick, then the next minute's sweep: the last sample is now older than the TTL, but the series
    // arrived (was restored) 61 s ago; A, which saw it arrive 61 s ago, keeps it too.
    b.tick(wall + 1000, true);
    b.tick(wall + 62_000, true);
    a.tick(wall + 1000, true);
    a.tick(wall + 62_000, true);
    expect(a.seriesCount).toBe(1);
    expect(b.seriesCount).toBe(1);
    expect(bLog).toEqual([]);
    // The episode continues on B: its next sample keeps it firing, not a second episode.
    const b2 = new SeriesBatchBuilder();
    b2.addSeries(labels);
    b2.add(START_MS + 120_000, 95);
    b.observe(TENANT, b2.build());
    expect(bLog).toEqual([]);
    expect(b.activeAlerts().map((x) => `${x.name} ${x.activeAtMs}`)).toEqual([
      aLog[1]!.split(' ').slice(1).join(' '),
    ]);
  });
});

/**
 * Partition hand-over: a partition's state leaves one engine and joins another that holds other partitions.
 * Bus partitions are keyed as the collector keys them: a job's data by (tenant, job_id), other series by node.
 */
describe('detector engine state per partition', () => {
  const PARTITIONS = 4;
  const partitionOf = (tenant: string, labels: LabelSet): number | undefined => {
    const key =
      labels.job_id !== undefined
        ? jobPartitionKey(tenant, labels.job_id)
        : labels.node_id !== undefined
          ? `${tenant}\u0000\u0000${labels.node_id}`
          : undefined;
    return key === undefined ? undefined : hashPartitionKey(key) % PARTITIONS;
  };
  /** A record split by partition, as the collector splits a batch into one bus record per partition. */
  const split = (batch: SeriesBatch, events: readonly JobEvent[]) => {
    const parts = new Map<number | undefined, { b: SeriesBatchBuilder; events: JobEvent[] }>();
    const partOf = (p: number | undefined) => {
      let x = parts.get(p);
      if (!x) {
        x = { b: new SeriesBatchBuilder(), events: [] };
        parts.set(p, x);
      }
      return x;
    };
    for (let i = 0; i < batch.series.length; i++) {
      const { b } = partOf(partitionOf(TENANT, batch.series[i]!));
      b.addSeries(batch.series[i]!);
      for (let j = batch.offsets[i]!; j < batch.offsets[i + 1]!; j++)
        b.add(batch.timestamps[j]!, batch.values[j]!);
    }
    for (const ev of events) partOf(partitionOf(TENANT, { job_id: ev.jobId })).events.push(ev);
    return [...parts].map(([p, x]) => ({ p, batch: x.b.build(), events: x.events }));
  };
  const steps = fleetSteps(25);
  const splitSteps = steps.map((step) => ({
    t: step.t,
    records: step.records.map((r) => split(r.batch, r.events)),
  }));
  const feed = (
    engine: DetectorEngine,
    from: number,
    to: number,
    keep: (p: number | undefined) => boolean,
    derived: Log,
  ) => {
    for (let i = from; i < to; i++) {
      const step = splitSteps[i]!;
      engine.tick(step.t, true);
      for (const parts of step.records) {
        for (const { p, batch, events } of parts) {
          if (!keep(p)) continue;
          if (batch.sampleCount > 0) engine.observe(TENANT, batch);
          if (events.length > 0) engine.observeEvents(TENANT, events);
        }
        drainDerived(engine, derived);
      }
    }
  };
  const sorted = (l: Log) => [...l].sort();

  it('a partition handed over mid-run continues as if one engine had seen everything', {
    timeout: 120_000,
  }, () => {
    const whole: Log = [];
    const wholeDerived: Log = [];
    feed(newEngine(whole, wholeDerived), 0, steps.length, () => true, wholeDerived);
    expect(
      whole.filter((l) => l.startsWith('firing')).map((l) => l.split(' ')[1]),
      'the fleet raises several kinds of alert',
    ).toEqual(expect.arrayContaining(['TrainingStalled', 'TrainingStraggler']));

    // Cuts before the fleet's incidents (5 minutes into their jobs) hand over no open alert, only ramping state.
    let cutsWithOpenAlerts = 0;
    // Eight cut points, so that every family's state (open, resolving, ramping) is handed over at some cut.
    for (const cut of Array.from({ length: 8 }, (_, i) => Math.floor((steps.length * (i + 1)) / 9))) {
      // Engine A owns partitions 0 and 1, engine B owns 2 and 3; at the cut, partition 1 moves to B.
      const moved = new Set([1]);
      const aLog: Log = [];
      const aDerived: Log = [];
      const bLog: Log = [];
      const bDerived: Log = [];
      const a = newEngine(aLog, aDerived);
      const b = newEngine(bLog, bDerived);
      const onA = (p: number | undefined) => p === 0 || p === 1;
      feed(a, 0, cut, onA, aDerived);
      feed(b, 0, cut, (p) => !onA(p), bDerived);
      const openOnA = new Set(a.activeAlerts().map((x) => x.fingerprint));
      const snap = a.snapshotPartitions(moved, partitionOf);
      expect([...snap.keys()]).toEqual([1]);
      a.dropPartitions(moved, partitionOf);
      const stayed = new Set(a.activeAlerts().map((x) => x.fingerprint));
      const movedAlerts = [...openOnA].filter((fp) => !stayed.has(fp));
      if (movedAlerts.length > 0) cutsWithOpenAlerts++;
      const openOnB = b.activeAlerts().length;
      b.restorePartition(snap.get(1)!);
      const onB = new Set(b.activeAlerts().map((x) => x.fingerprint));
      expect(onB.size).toBe(openOnB + movedAlerts.length);
      for (const fp of movedAlerts) expect(onB.has(fp)).toBe(true);
      const aBefore = aLog.length;
      feed(a, cut, steps.length, (p) => p === 0, aDerived);
      feed(b, cut, steps.length, (p) => p !== 0, bDerived);
      // A (ticking on) says nothing more about partition 1's alerts: no resolution, no JobAbsent.
      for (const l of aLog.slice(aBefore)) expect(movedAlerts).not.toContain(l.split(' ')[2]);
      expect(aLog.slice(aBefore).filter((l) => l.includes('JobMetricsAbsent'))).toEqual([]);
      // Together they raised exactly what one engine raised: same episodes (fingerprint, activeAtMs), none twice.
      expect(sorted([...aLog, ...bLog])).toEqual(sorted(whole));
      expect(sorted([...aDerived, ...bDerived])).toEqual(sorted(wholeDerived));
    }
    expect(cutsWithOpenAlerts, 'alerts of partition 1 are open at most cuts').toBeGreaterThanOrEqual(5);
  });
});
