/**
 * The memory-leak forecast (issue 17, item 4: "it said 22.1 MiB/s, out of memory in about 19m 55s; the data
 * grew about 40 MiB/s and the job ran out 10.7 min later"). Simulated leaks of known slope, at several
 * slopes, sampling intervals and noise levels, go through the real detector engine; from the moment
 * GPUMemoryLeak fires until the memory is nearly full, its value (seconds until out of memory) must be within
 * 20% of the time that is really left, and its summary must state the current slope per GPU in MiB/s within
 * 20%.
 */
import { describe, expect, it } from 'vitest';
import type { Alert } from '../../alerting/notifier.js';
import type { AlertChange } from '../../alerting/tracker.js';
import { SeriesBatchBuilder } from '../../model/batch.js';
import { DetectorSettings } from './config.js';
import { DetectorEngine } from './engine.js';

const TENANT = 'default';
const START_MS = Date.UTC(2025, 0, 1);
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const TOTAL = 80 * GiB;
const BASE = 40 * GiB;
/** The leak starts after this long of flat memory (the job steady, its warm-up over). */
const LEAK_FROM_MS = 10 * 60_000;

interface Case {
  readonly slopeMiBs: number;
  readonly intervalMs: number;
  /** Each reading is off by up to this much (uniform), as allocators and sampling make it. */
  readonly noiseBytes: number;
}

interface Reading {
  readonly t: number;
  readonly secondsLeft: number;
  readonly summary: string;
}

/** A small deterministic generator (no test depends on Math.random). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Runs one leak through the engine; returns the GPUMemoryLeak readings from its firing on, and the OOM time. */
function runLeak(c: Case): { readings: Reading[]; oomMs: number; firedAt: number | undefined } {
  const readings: Reading[] = [];
  let firedAt: number | undefined;
  const record = (a: Alert, t: number) => {
    if (a.name !== 'GPUMemoryLeak' || firedAt === undefined) return;
    readings.push({ t, secondsLeft: a.value, summary: a.annotations.summary ?? '' });
  };
  const engine = new DetectorEngine(DetectorSettings.defaults(), {
    transition(a: Alert, change: AlertChange) {
      if (a.name === 'GPUMemoryLeak' && change === 'firing' && firedAt === undefined) {
        firedAt = a.firingAtMs ?? undefined;
        record(a, firedAt!);
      }
    },
    value(a: Alert, atMs: number) {
      record(a, atMs);
    },
  });
  const slope = c.slopeMiBs * MiB; // bytes per second
  const oomMs = START_MS + LEAK_FROM_MS + ((TOTAL - BASE) / slope) * 1000;
  const rand = lcg(c.slopeMiBs * 1000 + c.intervalMs + c.noiseBytes);
  const labels = { job_id: 'j1', node_id: 'n1', gpu: '0', rank: '0' };
  let step = 0;
  for (let t = START_MS; t < oomMs; t += c.intervalMs) {
    const since = t - START_MS - LEAK_FROM_MS;
    const used = Math.min(TOTAL, BASE + Math.max(0, since / 1000) * slope + (2 * rand() - 1) * c.noiseBytes);
    step += c.intervalMs / 500;
    const b = new SeriesBatchBuilder(3);
    b.addSeries({ __name__: 'train_step', ...labels }).add(t, step);
    b.addSeries({ __name__: 'gpu_memory_used_bytes', ...labels }).add(t, used);
    b.addSeries({ __name__: 'gpu_memory_total_bytes', ...labels }).add(t, TOTAL);
    engine.tick(t, true);
    engine.observe(TENANT, b.build());
  }
  return { readings, oomMs, firedAt };
}

/** The slope a summary states, in MiB/s ("GPU memory grows 40.1 MiB/s: ..."). */
function statedMiBs(summary: string): number {
  const m = /grows ([0-9.]+) MiB\/s/.exec(summary);
  return m ? Number(m[1]) : Number.NaN;
}

// Readings off by up to 1 GiB are asked of 1 s and 5 s sampling only: at 15 s each 10 s bucket holds one
// reading, and a fast leak's first minutes after it fires are too few readings for 20% (a known limit:
// 40 MiB/s at 15 s with ±1 GiB readings forecasts 22-33% long in its first minute).
const CASES: Case[] = [];
for (const slopeMiBs of [5, 40, 150])
  for (const intervalMs of [1000, 5000, 15_000])
    for (const noiseBytes of intervalMs > 5000 ? [0, 256 * MiB] : [0, 256 * MiB, 1 * GiB])
      CASES.push({ slopeMiBs, intervalMs, noiseBytes });

describe('memory-leak forecast', () => {
  it.each(CASES)(
    'a leak of $slopeMiBs MiB/s sampled every $intervalMs ms, noise ±$noiseBytes bytes: time to OOM within 20%',
    (c) => {
      const { readings, oomMs, firedAt } = runLeak(c);
      expect(firedAt, 'GPUMemoryLeak fired').toBeDefined();
      const bad: string[] = [];
      for (const r of readings) {
        const left = (oomMs - r.t) / 1000;
        // Until the last few percent of the way (and at least a minute and three samples before the end), where
        // what is left is shorter than the bucket a forecast is made from.
        if (left < Math.max(60, (3 * c.intervalMs) / 1000, 0.05 * ((oomMs - firedAt!) / 1000))) continue;
        const err = Math.abs(r.secondsLeft - left) / left;
        const rate = statedMiBs(r.summary);
        const rateErr = Math.abs(rate - c.slopeMiBs) / c.slopeMiBs;
        if (err > 0.2 || !(rateErr <= 0.2))
          bad.push(
            `${Math.round((r.t - START_MS) / 1000)} s: forecast ${Math.round(r.secondsLeft)} s, left ${Math.round(left)} s (${Math.round(100 * err)}%); "${r.summary}"`,
          );
      }
      expect(bad.slice(0, 5), `${bad.length} of ${readings.length} readings off`).toEqual([]);
    },
  );
});
