/**
 * Detectors at scale (issue 18): thresholds that hold for a job of 512 ranks as for one of 8, a job-level
 * throughput alert that one rank cannot raise on its own and that speaks in the job's totals, and a memory
 * ramp that is over when the memory levels off, not when a timer says.
 */
import { describe, expect, it } from 'vitest';
import type { Alert } from '../../alerting/notifier.js';
import type { AlertChange } from '../../alerting/tracker.js';
import { SeriesBatchBuilder } from '../../model/batch.js';
import { DetectorSettings } from './config.js';
import { DetectorEngine } from './engine.js';
import { multipleComparisonZ, normalUpperQuantile, normalUpperTail } from './stats.js';

const TENANT = 'default';
const START_MS = Date.UTC(2026, 0, 1);

function engineFiring(): { engine: DetectorEngine; fired: Alert[] } {
  const fired: Alert[] = [];
  const engine = new DetectorEngine(DetectorSettings.defaults(), {
    transition(a: Alert, change: AlertChange) {
      if (change === 'firing') fired.push(a);
    },
  });
  return { engine, fired };
}

describe('multiple-comparison threshold', () => {
  it('keeps z up to the reference size and raises it with the number of ranks compared', () => {
    expect(normalUpperQuantile(0.05)).toBeCloseTo(1.6449, 3);
    expect(normalUpperTail(normalUpperQuantile(1e-6))).toBeCloseTo(1e-6, 8);
    expect(multipleComparisonZ(3.5, 8, 8)).toBe(3.5);
    const z64 = multipleComparisonZ(3.5, 64, 8);
    const z512 = multipleComparisonZ(3.5, 512, 8);
    expect(z64).toBeGreaterThan(3.9);
    expect(z512).toBeGreaterThan(z64);
    // The chance that one of 512 exceeds it is what one of 8 has at 3.5.
    expect(512 * normalUpperTail(z512)).toBeCloseTo(8 * normalUpperTail(3.5), 4);
  });
});

/** A job of `ranks` ranks reporting samples/s every second; ranks in `slow` drop by `drop` from `fromS`. */
function runThroughput(ranks: number, slow: (r: number) => boolean, drop: number, fromS: number) {
  const { engine, fired } = engineFiring();
  for (let s = 0; s < 20 * 60; s++) {
    const t = START_MS + s * 1000;
    const b = new SeriesBatchBuilder(ranks);
    for (let r = 0; r < ranks; r++) {
      const wobble = 1 + 0.02 * Math.sin(s * 0.7 + r);
      const v = 100 * wobble * (s >= fromS && slow(r) ? 1 - drop : 1);
      b.addSeries({
        __name__: 'train_samples_per_second',
        job_id: 'j1',
        node_id: `n${r >> 3}`,
        rank: String(r),
      }).add(t, v);
    }
    engine.tick(t, true);
    engine.observe(TENANT, b.build());
  }
  return fired.filter((a) => a.name === 'ThroughputDegraded');
}

describe('job throughput', () => {
  it('is not degraded by one rank of a 64-rank job', () => {
    expect(runThroughput(64, (r) => r === 5, 0.3, 600)).toEqual([]);
  });

  it('is degraded when the job slows, and says so in the job total', () => {
    const alerts = runThroughput(16, () => true, 0.3, 600);
    expect(alerts).toHaveLength(1);
    const a = alerts[0]!;
    // 16 ranks of about 100 samples/s: the job's baseline is about 1600, its level about 1120.
    expect(a.annotations.description).toMatch(/the sum over its 16 ranks/);
    const m = /fell to ([0-9.,]+)\S* from a baseline of ([0-9.,]+)/.exec(a.annotations.description ?? '');
    expect(m).not.toBeNull();
    const base = Number(m![2]!.replace(/,/g, ''));
    expect(base).toBeGreaterThan(1500);
    expect(base).toBeLessThan(1700);
    expect(a.value).toBeGreaterThan(0.05);
    expect(a.value).toBeLessThan(0.35);
  });
});
