/**
 * The memory-leak detector's state across a restore: a firing GPUMemoryLeak handed over between two
 * evaluations goes on counting down from its forecast's bucket, exactly as the engine that never stopped; state
 * written before the forecast's start and the ramp's end were saved (10 entries) is still read: the alert stays
 * open, its series past its ramp, its countdown from the restore.
 */
import { describe, expect, it } from 'vitest';
import type { Alert } from '../../alerting/notifier.js';
import type { AlertChange } from '../../alerting/tracker.js';
import { SeriesBatchBuilder } from '../../model/batch.js';
import { DetectorSettings } from './config.js';
import { DetectorEngine, type EngineSnapshot } from './engine.js';

const TENANT = 'default';
const START_MS = Date.UTC(2025, 0, 1);
const GiB = 2 ** 30;
const TOTAL = 80 * GiB;
/** Flat at 40 GiB for 10 minutes, then 40 MiB/s: out of memory about 17 minutes later. */
const LEAK_FROM_MS = 10 * 60_000;
const SLOPE = 40 * 2 ** 20;
const INTERVAL_MS = 1000;
/** Cut between two 10 s buckets' evaluations, while GPUMemoryLeak fires. */
const CUT_MS = START_MS + LEAK_FROM_MS + 5 * 60_000 + 4500;
const END_MS = START_MS + LEAK_FROM_MS + 8 * 60_000;

type Log = string[];

function newEngine(log: Log, values: Map<number, number>): DetectorEngine {
  return new DetectorEngine(DetectorSettings.defaults(), {
    transition(a: Alert, change: AlertChange) {
      if (a.name === 'GPUMemoryLeak') log.push(`${change} ${a.fingerprint} active=${a.activeAtMs}`);
    },
    value(a: Alert, atMs: number) {
      if (a.name === 'GPUMemoryLeak') values.set(atMs, a.value);
    },
  });
}

function feed(engine: DetectorEngine, from: number, to: number): void {
  const labels = { job_id: 'j1', node_id: 'n1', gpu: '0', rank: '0' };
  for (let t = from; t < to; t += INTERVAL_MS) {
    const since = t - START_MS - LEAK_FROM_MS;
    const used = 40 * GiB + Math.max(0, since / 1000) * SLOPE;
    const b = new SeriesBatchBuilder(3);
    b.addSeries({ __name__: 'train_step', ...labels }).add(t, (t - START_MS) / 500);
    b.addSeries({ __name__: 'gpu_memory_used_bytes', ...labels }).add(t, used);
    b.addSeries({ __name__: 'gpu_memory_total_bytes', ...labels }).add(t, TOTAL);
    engine.tick(t, true);
    engine.observe(TENANT, b.build());
  }
}

/** The key and memory-leak state of the snapshot's memory series (keyed `<entry>:memory_leak`). */
function leakEntry(snap: EngineSnapshot): { d: Record<string, unknown>; key: string; state: unknown[] } {
  const s = snap.series.find((x) => x.l.__name__ === 'gpu_memory_used_bytes')!;
  const key = Object.keys(s.d).find((k) => k.endsWith(':memory_leak'))!;
  return { d: s.d, key, state: s.d[key] as unknown[] };
}

describe('memory-leak state across a restore', () => {
  const wholeLog: Log = [];
  const wholeValues = new Map<number, number>();
  const whole = newEngine(wholeLog, wholeValues);
  feed(whole, START_MS, CUT_MS);
  const snap = JSON.parse(JSON.stringify(whole.snapshot())) as EngineSnapshot;
  const logAt = wholeLog.length;
  feed(whole, CUT_MS, END_MS);

  it('a firing leak goes on with the same values, as if the engine had never stopped', () => {
    expect(wholeLog.slice(0, logAt), 'the leak fires before the cut').toEqual([
      expect.stringMatching(/^pending /),
      expect.stringMatching(/^firing /),
    ]);
    expect(leakEntry(snap).state).toHaveLength(12);
    const log: Log = [];
    const values = new Map<number, number>();
    const restored = newEngine(log, values);
    restored.restore(snap);
    feed(restored, CUT_MS, END_MS);
    expect(log).toEqual(wholeLog.slice(logAt));
    const after = [...wholeValues].filter(([t]) => t >= CUT_MS);
    expect(after.length, 'values move after the cut').toBeGreaterThan(10);
    expect([...values]).toEqual(after);
  });

  it('reads state from before the forecast start and the ramp end were saved', () => {
    const old = JSON.parse(JSON.stringify(snap)) as EngineSnapshot;
    const { d, key, state } = leakEntry(old);
    d[key] = state.slice(0, 10);
    const log: Log = [];
    const values = new Map<number, number>();
    const restored = newEngine(log, values);
    restored.restore(old);
    feed(restored, CUT_MS, END_MS);
    // Still the same episode, open to the end: past its ramp (not ramping again from the restore).
    expect(log).toEqual([]);
    expect(restored.activeAlerts().filter((a) => a.name === 'GPUMemoryLeak')).toHaveLength(1);
    // Until the next evaluation it counts down from the restore, behind by the age of the forecast's bucket
    // (its samples' mean time: at most two fine buckets, 20 s); from then on it is the same forecast.
    for (const [t, v] of values) {
      const exact = wholeValues.get(t);
      expect(exact, `a value at ${t}`).toBeDefined();
      expect(Math.abs(v - exact!)).toBeLessThanOrEqual(20);
    }
    expect(values.size, 'values move after the restore').toBeGreaterThan(10);
    const last = END_MS - INTERVAL_MS;
    expect(values.get(last), 'the same forecast by the end').toBe(wholeValues.get(last));
  });
});
