/**
 * Incident kinds seen on the GPUs: power capping, thermal throttling, memory leaks (fast and slow), gradual
 * degradation, idle GPUs (one or all) and ECC errors. Minimum delays follow incidents.ts's header.
 *
 * Kind definitions share one shape (name, category, variants, make → effects and truth), so `duplicates` pairs
 * them across incidents-*.ts and clean-*.ts: the repetition is the table's, each entry's numbers are its own.
 */
import { GPU_MEMORY_BYTES } from './generator.js';
import {
  after,
  drawOnset,
  frozenMin,
  pickRank,
  SLOW,
  STOP,
  sec,
  trainPeriodS,
  truth,
} from './incident-timing.js';
import type { KindDef } from './kind.js';

export const powerCap: KindDef = {
  name: 'power_capped_gpu',
  category: 'incident',
  summary: 'a power-capped GPU: SM clock down, power at the cap, no throttle flag',
  variants: [{ name: 'capped', splits: ['train', 'heldout'] }],
  make(ctx) {
    const at = drawOnset(ctx);
    const clock = ctx.draw([0.6, 0.8], [0.75, 0.88]);
    const cap = ctx.draw([250, 350], [300, 420]);
    const c = pickRank(ctx);
    return {
      effects: [
        after(at, (s) => {
          s.rankClockMul[c.rank]! *= clock;
          s.rankPowerCapW[c.rank] = cap;
          s.rankSlow[c.rank]! *= 1 / clock ** 0.9;
        }),
      ],
      params: { durationMs: (at + 900) * 1000 },
      description: `GPU of rank ${c.rank} capped at ${Math.round(cap)} W, clock ×${clock.toFixed(2)} from ${Math.round(at)} s`,
      truth: (p) =>
        truth(
          p,
          at,
          ['TrainingStraggler', 'GPUThrottled', 'GPUClockDeficit'],
          c.place(p),
          3 * sec(p),
          '3 samples of the clock deficit',
          SLOW,
        ),
    };
  },
};

export const thermal: KindDef = {
  name: 'thermal_throttling',
  category: 'incident',
  summary: 'a GPU overheats (fan failure): temperature above 85 °C, throttle flag set, clock down',
  variants: [{ name: 'flagged', splits: ['train', 'heldout'] }],
  make(ctx) {
    const heatS = ctx.draw([120, 240], [60, 300]);
    const at = drawOnset(ctx);
    const clock = ctx.draw([0.55, 0.75], [0.65, 0.85]);
    const c = pickRank(ctx);
    return {
      effects: [
        after(at - heatS, (s, since) => {
          // Heats up to the throttle point over `heatS`, then holds there while throttled.
          s.rankTempAdd[c.rank]! += Math.min(1, since / heatS) * 25;
          if (since >= heatS) {
            s.rankThrottled[c.rank] = 1;
            s.rankClockMul[c.rank]! *= clock;
            s.rankSlow[c.rank]! *= 1 / clock ** 0.9;
          }
        }),
      ],
      params: { durationMs: (at + 900) * 1000 },
      description: `GPU of rank ${c.rank} heats for ${Math.round(heatS)} s, throttled from ${Math.round(at)} s (clock ×${clock.toFixed(2)})`,
      truth: (p) =>
        truth(
          p,
          at,
          ['GPUThrottled', 'GPUTemperatureHigh', 'TrainingStraggler'],
          c.place(p),
          sec(p),
          'one sample of the throttle flag',
          SLOW,
        ),
    };
  },
};

function leak(name: string, summary: string, oomTrain: [number, number], oomHeld: [number, number]): KindDef {
  return {
    name,
    category: 'incident',
    summary,
    variants: [
      { name: 'linear', splits: ['train', 'heldout'] },
      { name: 'stepwise', splits: ['heldout'] },
    ],
    make(ctx) {
      const at = drawOnset(ctx);
      const oomS = ctx.draw(oomTrain, oomHeld);
      const c = pickRank(ctx);
      const stepwise = ctx.variant === 'stepwise';
      const stepS = ctx.draw([60, 60], [60, 180]);
      const slowLeak = oomS > 3600;
      const head = 1 - ctx.params.model.memFraction;
      const rate = (head * GPU_MEMORY_BYTES) / oomS;
      const runS = slowLeak ? Math.min(oomS * 0.6, 5400) : oomS + 60;
      return {
        effects: [
          after(at, (s, since) => {
            const grown = rate * (stepwise ? Math.floor(since / stepS) * stepS : since);
            s.rankMemAdd[c.rank]! += grown;
            if (grown >= head * GPU_MEMORY_BYTES) {
              s.events.push({ kind: 'finish', jobId: s.p.jobId, timeMs: s.tMs, status: 'failed' });
              s.ended = true;
            }
          }),
        ],
        params: {
          durationMs: (at + runS) * 1000,
          ...(slowLeak ? { intervalMs: Math.max(ctx.params.intervalMs, 5000) } : {}),
        },
        description: `rank ${c.rank} leaks ${((rate * 60) / 2 ** 20).toFixed(0)} MiB/min from ${Math.round(at)} s (OOM in ${Math.round(oomS / 60)} min)${stepwise ? ', in steps' : ''}`,
        truth: (p) =>
          truth(
            p,
            at,
            ['GPUMemoryLeak', 'GPUMemoryNearFull'],
            c.place(p),
            Math.max(5 * sec(p), (0.01 * GPU_MEMORY_BYTES) / rate, stepwise ? 2 * stepS : 0),
            'growth reaches 1% of the GPU memory (at least 5 samples)',
          ),
      };
    },
  };
}

export const fastLeak = leak(
  'fast_memory_leak',
  'GPU memory of one rank grows to OOM within minutes',
  [300, 900],
  [180, 1500],
);
export const slowLeak = leak(
  'slow_memory_leak',
  'GPU memory of one rank grows to OOM over hours',
  [2 * 3600, 4 * 3600],
  [4 * 3600, 8 * 3600],
);

export const degradation: KindDef = {
  name: 'throughput_degradation',
  category: 'incident',
  summary: 'throughput degrades gradually (thermal paste, a fragmenting allocator, a filling disk)',
  variants: [
    { name: 'gradual', splits: ['train', 'heldout'] },
    { name: 'sudden_drop', splits: ['heldout'] },
  ],
  make(ctx) {
    const at = drawOnset(ctx);
    const perMin = ctx.draw([0.02, 0.05], [0.005, 0.02]);
    const drop = ctx.draw([0.2, 0.3], [0.15, 0.3]);
    const sudden = ctx.variant === 'sudden_drop';
    return {
      effects: [
        after(at, (s, since) => {
          s.stepTimeMul *= sudden ? 1 / (1 - drop) : 1 + perMin * (since / 60);
        }),
      ],
      params: { durationMs: (at + 1500) * 1000 },
      description: sudden
        ? `throughput −${Math.round(drop * 100)}% at ${Math.round(at)} s, for good`
        : `step time +${(perMin * 100).toFixed(1)}%/min from ${Math.round(at)} s`,
      truth: (p) => {
        // The smallest drop the signal resolves: 3 σ of a one-minute mean of the step time, at least 3%.
        const perMinute = Math.max(1, 60 / trainPeriodS(p));
        const resolvable = Math.max(0.03, (3 * p.stepNoise) / Math.sqrt(perMinute));
        const minS = sudden ? 60 : (60 * resolvable) / perMin;
        return truth(
          p,
          at,
          ['ThroughputDegraded'],
          'job',
          Math.max(minS, 5 * trainPeriodS(p)),
          'the slowdown exceeds 3 σ of a minute’s mean (at least 3%)',
        );
      },
    };
  },
};

export const idleGpu: KindDef = {
  name: 'idle_gpu',
  category: 'incident',
  summary: 'a GPU allocated to a running job sits idle (the job uses fewer GPUs than it holds)',
  variants: [{ name: 'one_gpu', splits: ['train', 'heldout'] }],
  make(ctx) {
    const at = drawOnset(ctx);
    const c = pickRank(ctx);
    return {
      effects: [after(at, (s) => (s.rankIdle[c.rank] = 1))],
      params: { durationMs: (at + 900) * 1000 },
      description: `GPU of rank ${c.rank} idle from ${Math.round(at)} s`,
      truth: (p) =>
        truth(p, at, ['GPUIdle'], c.place(p), 3 * sec(p), '3 samples at 0% while its peers compute', [
          'TrainingStraggler',
        ]),
    };
  },
};

export const allIdle: KindDef = {
  name: 'job_gpus_idle',
  category: 'incident',
  summary: 'every GPU of a running job idle, the processes alive (a deadlock in the input pipeline)',
  variants: [{ name: 'idle', splits: ['train', 'heldout'] }],
  make(ctx) {
    const at = drawOnset(ctx);
    return {
      effects: [
        after(at, (s) => {
          s.paused = true;
          s.pauseUtil = 0.01;
        }),
      ],
      params: { durationMs: (at + 900) * 1000 },
      description: `every GPU idle and no step from ${Math.round(at)} s`,
      truth: (p, bg) =>
        truth(
          p,
          at,
          ['TrainingStalled', 'GPUIdle'],
          'job',
          frozenMin(p, bg),
          'outlast the longest legitimate pause (a checkpoint looks the same)',
          STOP,
        ),
    };
  },
};
export const ecc: KindDef = {
  name: 'ecc_error_burst',
  category: 'incident',
  summary: 'a burst of ECC / XID errors on one GPU',
  variants: [{ name: 'burst', splits: ['train', 'heldout'] }],
  make(ctx) {
    const at = drawOnset(ctx);
    const n = Math.round(ctx.draw([3, 20], [1, 8]));
    const c = pickRank(ctx);
    let left = n;
    return {
      effects: [
        after(at, (s) => {
          if (left <= 0) return;
          const k = Math.min(left, 1 + Math.floor(s.rng.next() * 3));
          s.rankEccAdd[c.rank] = k;
          left -= k;
        }),
      ],
      params: { durationMs: (at + 600) * 1000 },
      description: `${n} ECC errors on the GPU of rank ${c.rank} from ${Math.round(at)} s`,
      truth: (p) => truth(p, at, ['GPUECCErrors'], c.place(p), sec(p), 'one sample of the counter'),
    };
  },
};
