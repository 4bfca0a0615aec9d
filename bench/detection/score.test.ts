/**
 * The detection scoring in CI: the machinery on planted detector outputs (a perfect one scores 100%, a false
 * alarm is counted, culprits are matched), the library's shape (kinds, splits, determinism), and a small
 * sample of both splits through the real detector engine, whose figures are printed and held to the clear
 * regressions only (a NaN loss is always caught). The full scoring: `npm run bench -- --scenario detectors`.
 */
import { describe, expect, it } from 'vitest';
import { CLEAN_KINDS } from './clean.js';
import { INCIDENT_KINDS } from './incidents.js';
import { buildLibrary, buildScenario, kindByName } from './library.js';
import {
  type Detect,
  type Firing,
  placeMatch,
  renderDetectionMarkdown,
  runScenario,
  scoreKinds,
  scoreLibrary,
  totals,
} from './score.js';
import type { Place, Scenario } from './types.js';

/** Alert labels that name a place the way the detectors do (rank with its node; GPU with its node). */
function labelsAt(where: Place | 'job', jobId: string): Record<string, string> {
  const l: Record<string, string> = { job_id: jobId, tenant: 'default' };
  if (where === 'job') return l;
  if (where.nodeId !== undefined) l.node_id = where.nodeId;
  if (where.rank !== undefined) l.rank = String(where.rank);
  return l;
}

/** A perfect detector: the first expected alert at exactly the minimum delay, naming the place. */
const perfect: Detect = (s) => {
  const t = s.truth;
  if (!t) return { firings: [], samples: 0 };
  return {
    firings: [
      { name: t.alerts[0]!, labels: labelsAt(t.where, s.params.jobId), atMs: t.onsetMs + t.minDelayMs },
    ],
    samples: 0,
  };
};

const SAMPLE_KINDS = [
  'steady',
  'checkpoint_saves',
  'startup_memory_ramp',
  'nan_divergence',
  'partial_hang',
  'persistent_straggler',
  'node_lost',
];

describe('the scenario library', () => {
  it('has at least 20 clean behaviours and 15 incident kinds, each in both splits, and held-out-only shapes', () => {
    expect(CLEAN_KINDS.length).toBeGreaterThanOrEqual(20);
    expect(INCIDENT_KINDS.length).toBeGreaterThanOrEqual(15);
    // Real traces (traces.ts) are held-out only, on purpose.
    for (const k of [...CLEAN_KINDS, ...INCIDENT_KINDS]) {
      expect(
        k.variants.some((v) => v.splits.includes('train')),
        k.name,
      ).toBe(true);
      expect(
        k.variants.some((v) => v.splits.includes('heldout')),
        k.name,
      ).toBe(true);
    }
    const heldoutOnly = [...CLEAN_KINDS, ...INCIDENT_KINDS].flatMap((k) =>
      k.variants.filter((v) => !v.splits.includes('train')),
    );
    expect(heldoutOnly.length).toBeGreaterThanOrEqual(10);
  });

  it('draws held-out runs from other seeds and other ranges than train', () => {
    const lib = buildLibrary({ perKind: 2 });
    const train = lib.filter((s) => s.split === 'train');
    const heldout = lib.filter((s) => s.split === 'heldout');
    const trainSeeds = new Set(train.map((s) => s.params.seed));
    expect(heldout.some((s) => trainSeeds.has(s.params.seed))).toBe(false);
    const trainModels = new Set(train.map((s) => s.params.model.name));
    expect(heldout.some((s) => trainModels.has(s.params.model.name))).toBe(false);
    // Train is widened towards large, coarsely sampled jobs (up to 384 ranks, 12 s), but never with a held-out
    // world size or sampling interval.
    const trainSizes = new Set(train.map((s) => s.params.worldSize));
    const trainIntervals = new Set(train.map((s) => s.params.intervalMs));
    // (Small sizes may meet: a kind that needs 3 nodes of 8 makes 24 ranks in either split.)
    expect(heldout.some((s) => s.params.worldSize > 64 && trainSizes.has(s.params.worldSize))).toBe(false);
    // (The real traces of held-out are sampled every second, as train's finest.)
    expect(heldout.some((s) => s.params.intervalMs > 1000 && trainIntervals.has(s.params.intervalMs))).toBe(
      false,
    );
    expect(Math.max(...train.map((s) => s.params.worldSize))).toBeLessThan(512);
    expect(heldout.some((s) => s.params.worldSize >= 256)).toBe(true);
    expect(heldout.some((s) => s.params.intervalMs >= 10_000)).toBe(true);
  });

  it('gives every incident a ground truth inside its run, with a positive minimum delay', () => {
    for (const s of buildLibrary({ perKind: 2 })) {
      if (s.category === 'clean') {
        expect(s.truth, s.id).toBeUndefined();
        continue;
      }
      const t = s.truth!;
      expect(t.onsetMs, s.id).toBeGreaterThan(s.params.startMs);
      expect(t.onsetMs, s.id).toBeLessThan(s.params.startMs + s.params.durationMs);
      expect(t.minDelayMs, s.id).toBeGreaterThan(0);
      expect(t.alerts.length, s.id).toBeGreaterThan(0);
    }
  });

  it('generates the same frames on every pass (effects start afresh)', () => {
    const s = buildScenario(kindByName('loss_spikes_recover'), 'train', 0, 8);
    const digest = (sc: Scenario) => {
      let h = 0;
      let n = 0;
      for (const f of sc.frames())
        for (const b of f.batches)
          for (let i = 0; i < b.sampleCount; i++) {
            h = (h * 31 + Math.round(b.values[i]! * 1000)) % 1_000_000_007;
            n++;
          }
      return `${n}:${h}`;
    };
    const first = digest(s);
    expect(first).not.toBe('0:0');
    expect(digest(s)).toBe(first);
    expect(digest(buildScenario(kindByName('loss_spikes_recover'), 'train', 0, 8))).toBe(first);
  });
});

describe('the scoring machinery', () => {
  const lib = buildLibrary({ perKind: 1, kinds: SAMPLE_KINDS, maxWorldSize: 16 });

  it('scores a perfect detector at 100%: recall, precision, culprit, delay = the minimum, no false alarm', () => {
    const outcomes = lib.map((s) => runScenario(s, perfect));
    const kinds = scoreKinds(outcomes);
    for (const split of ['train', 'heldout'] as const) {
      const t = totals(split, kinds, outcomes);
      expect(t.recall).toBe(1);
      expect(t.precision).toBe(1);
      expect(t.culprit).toBe(1);
      expect(t.ratioP50).toBe(1);
      expect(t.within2x).toBe(1);
      expect(t.cleanFalseAlarms).toBe(0);
    }
  });

  it('counts a planted false alarm on a clean run, and one before the onset', () => {
    const clean = lib.find((s) => s.kind === 'steady' && s.split === 'train')!;
    const noisy: Detect = () => ({
      firings: [
        {
          name: 'ThroughputDegraded',
          labels: { job_id: clean.params.jobId },
          atMs: clean.params.startMs + 60_000,
        },
      ],
      samples: 0,
    });
    const o = runScenario(clean, noisy);
    expect(o.falseAlarms).toBe(1);
    const k = scoreKinds([o])[0]!;
    expect(k.falseAlarmsPerJobHour).toBeCloseTo(1 / (clean.params.durationMs / 3_600_000), 6);

    const inc = lib.find((s) => s.kind === 'nan_divergence' && s.split === 'train')!;
    const early: Detect = (s) => {
      const t = s.truth!;
      return {
        firings: [
          { name: 'TrainingNaN', labels: { job_id: s.params.jobId }, atMs: t.onsetMs - 1000 },
          { name: 'TrainingNaN', labels: { job_id: s.params.jobId }, atMs: t.onsetMs + 5000 },
        ],
        samples: 0,
      };
    };
    const oi = runScenario(inc, early);
    expect(oi.falseAlarms).toBe(1);
    expect(oi.detected).toBe(true);
    expect(oi.delayMs).toBe(5000);
    expect(scoreKinds([oi])[0]!.precision).toBe(0.5);
  });

  it('names the culprit only when the alert names the incident’s place', () => {
    const inc = lib.find((s) => s.kind === 'persistent_straggler' && s.split === 'train')!;
    const place = inc.truth!.where as Place;
    const other = (place.rank! + 1) % inc.params.worldSize;
    const wrong: Detect = (s) => ({
      firings: [
        {
          name: 'TrainingStraggler',
          labels: { rank: String(other), node_id: 'x' },
          atMs: s.truth!.onsetMs + 1000,
        },
      ],
      samples: 0,
    });
    const ow = runScenario(inc, wrong);
    expect(ow.detected).toBe(false);
    expect(ow.culpritNamed).toBe(false);
    expect(ow.falseAlarms).toBe(1);
    const jobLevel: Detect = (s) => ({
      firings: [
        { name: 'TrainingStraggler', labels: { job_id: s.params.jobId }, atMs: s.truth!.onsetMs + 1000 },
      ],
      samples: 0,
    });
    const oj = runScenario(inc, jobLevel);
    expect(oj.detected).toBe(true);
    expect(oj.culpritNamed).toBe(false);

    expect(placeMatch({ rank: '5' }, { rank: 5, nodeId: 'n1', gpu: 1 })).toBe('match');
    expect(placeMatch({ gpu: '1', node_id: 'n1' }, { rank: 5, nodeId: 'n1', gpu: 1 })).toBe('match');
    expect(placeMatch({ gpu: '2', node_id: 'n1' }, { rank: 5, nodeId: 'n1', gpu: 1 })).toBe('other');
    expect(placeMatch({ node_id: 'n1' }, { rank: 5, nodeId: 'n1', gpu: 1 })).toBe('none');
    expect(placeMatch({ node_id: 'n1' }, { nodeId: 'n1' })).toBe('match');
    expect(placeMatch({ rank: '9', node_id: 'n1' }, { nodeId: 'n1' })).toBe('match');
    expect(placeMatch({ rank: '9', node_id: 'n2' }, { nodeId: 'n1' })).toBe('other');
    expect(placeMatch({ job_id: 'j' }, { nodeId: 'n1' })).toBe('none');
  });

  it('ignores symptoms after the onset and counts unrelated alerts as false alarms', () => {
    const inc = lib.find((s) => s.kind === 'persistent_straggler' && s.split === 'train')!;
    const t = inc.truth!;
    const firings: Firing[] = [
      { name: 'ThroughputDegraded', labels: {}, atMs: t.onsetMs + 2000 },
      { name: 'GPUMemoryLeak', labels: { rank: '0' }, atMs: t.onsetMs + 2000 },
    ];
    const o = runScenario(inc, () => ({ firings, samples: 0 }));
    expect(o.firings.map((f) => f.verdict)).toEqual(['symptom', 'false_alarm']);
  });
});

describe('the detectors on a sample of both splits', () => {
  it('run through the real engine; a NaN loss is always caught', () => {
    const report = scoreLibrary({ perKind: 1, kinds: SAMPLE_KINDS, maxWorldSize: 16 });
    const md = renderDetectionMarkdown(report, 'bench/detection/score.test.ts');
    // The current figures, for the record (not asserted: the detectors are being reworked).
    console.log(md);
    expect(report.outcomes.length).toBe(SAMPLE_KINDS.length * 2);
    expect(report.outcomes.every((o) => o.samples > 0)).toBe(true);
    // Clear regressions: a NaN loss must always be caught, at once.
    for (const k of report.kinds.filter((x) => x.kind === 'nan_divergence')) {
      expect(k.recall, `${k.split}\n${md}`).toBe(1);
      expect(k.delayP90Ms, `${k.split}\n${md}`).toBeLessThanOrEqual(60_000);
    }
    // A steady job raises nothing.
    for (const k of report.kinds.filter((x) => x.kind === 'steady'))
      expect(k.falseAlarms, `${k.split}\n${md}`).toBe(0);
  }, 180_000);
});
