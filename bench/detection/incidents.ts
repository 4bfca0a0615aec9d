/**
 * Incident kinds: each starts at a drawn onset (after the job's first minutes, so that detectors have learned
 * its normal behaviour) and declares its ground truth: the alerts that count as catching it, the alerts that
 * are genuine symptoms, the place to name, and the minimum delay the signal allows.
 *
 * Minimum delays, the common cases (seconds; `interval` = sampling interval, `trainPeriod` = how often the
 * training metrics arrive = max(interval, step time × log-every-N), `pause` = the longest legitimate pause
 * the run's background shows, `silence` = its longest legitimate silence):
 * - a value that is wrong at once (NaN, an ECC error, a throttle flag, a loss that jumps): one sample of it;
 * - a frozen step: it must outlast the longest legitimate pause (pause + interval), and at least 3 training
 *   periods; with the 0%-vs-100% signature of a partial hang, 3 samples suffice (no pause looks like that);
 * - a slow rank: enough samples for its mean to stand out of the step-time noise, n = (3 × cv / slowdown)²,
 *   at least 3 samples;
 * - a trend (drift, leak, gradual slowdown): the time until the change exceeds three noise standard deviations
 *   (or 1% of the GPU's memory for a leak), at least 5 samples;
 * - absent series: they must outlast the longest legitimate silence (silence + interval), at least 3 intervals.
 */
import type { Effect, RunState } from './generator.js';
import { GPU_MEMORY_BYTES, nodeIdOf } from './generator.js';
import type { Background, KindDef, Made, MakeContext } from './kind.js';
import type { GroundTruth, Place, RunParams } from './types.js';

const sec = (p: RunParams) => p.intervalMs / 1000;
/** How often the training metrics arrive, seconds. */
export function trainPeriodS(p: RunParams): number {
  return Math.max(sec(p), p.model.stepSeconds * p.logEverySteps);
}
/** The first tick at or after `s` seconds, as event time. */
function onsetMs(p: RunParams, s: number): number {
  return p.startMs + Math.ceil(s / sec(p)) * p.intervalMs;
}

/** A rank other than 0 (rank 0 is special in many jobs), its node and GPU. */
function pickRank(ctx: MakeContext): { rank: number; place: (p: RunParams) => Place } {
  const rank = ctx.rng.int(1, ctx.params.worldSize - 1);
  return {
    rank,
    place: (p) => ({
      rank,
      gpu: rank % p.gpusPerNode,
      nodeId: nodeIdOf(p, Math.floor(rank / p.gpusPerNode)),
    }),
  };
}

/** Onset in seconds after the start: late enough for every detector's warm-up, early enough to leave time. */
function drawOnset(ctx: MakeContext): number {
  return ctx.draw([600, 900], [540, 1200]);
}

/** Samples a mean needs to stand out of noise `cv` by `delta` (relative): (3 cv / delta)², at least 3. */
function samplesToResolve(cv: number, delta: number): number {
  return Math.max(3, Math.ceil((3 * cv) / delta) ** 2);
}

function truth(
  p: RunParams,
  startS: number,
  alerts: string[],
  where: Place | 'job',
  minDelayS: number,
  why: string,
  symptoms: string[] = [],
): GroundTruth {
  return {
    onsetMs: onsetMs(p, startS),
    alerts,
    symptoms,
    where,
    minDelayMs: Math.round(minDelayS * 1000),
    minDelayWhy: why,
  };
}

/** Common symptoms of anything that slows or stops the job. */
const SLOW = ['ThroughputDegraded'];
const STOP = ['ThroughputDegraded', 'GPUIdle', 'TrainingStraggler', 'MetricAnomaly'];

function after(startS: number, fn: (s: RunState, sinceS: number) => void): Effect {
  return {
    apply(s) {
      if (s.tS >= startS) fn(s, s.tS - startS);
    },
  };
}

const nan: KindDef = {
  name: 'nan_divergence',
  category: 'incident',
  summary: 'the loss becomes NaN (or +Inf) abruptly',
  variants: [
    { name: 'nan', splits: ['train', 'heldout'] },
    { name: 'inf', splits: ['heldout'] },
  ],
  make(ctx) {
    const at = drawOnset(ctx);
    const code = ctx.variant === 'inf' ? 2 : 1;
    return {
      effects: [after(at, (s) => (s.lossNonFinite = code))],
      params: { durationMs: (at + 600) * 1000 },
      description: `loss ${ctx.variant === 'inf' ? '+Inf' : 'NaN'} from ${Math.round(at)} s`,
      truth: (p) =>
        truth(
          p,
          at,
          ['TrainingNaN', 'TrainingLossSpike'],
          'job',
          trainPeriodS(p),
          'one sample of the loss',
          STOP,
        ),
    };
  },
};

const driftNan: KindDef = {
  name: 'loss_drift_then_nan',
  category: 'incident',
  summary: 'the loss drifts upward for minutes, then becomes NaN',
  variants: [
    { name: 'linear', splits: ['train', 'heldout'] },
    { name: 'accelerating', splits: ['heldout'] },
  ],
  make(ctx) {
    const at = drawOnset(ctx);
    const perMin = ctx.draw([0.05, 0.15], [0.02, 0.06]);
    const nanAfter = ctx.draw([180, 360], [300, 720]);
    const accel = ctx.variant === 'accelerating';
    return {
      effects: [
        after(at, (s, since) => {
          const m = since / 60;
          s.lossMul *= 1 + perMin * (accel ? m * m : m);
          if (since >= nanAfter) s.lossNonFinite = 1;
        }),
      ],
      params: { durationMs: (at + nanAfter + 300) * 1000 },
      description: `loss +${Math.round(perMin * 100)}%/min${accel ? ' (accelerating)' : ''} from ${Math.round(at)} s, NaN ${Math.round(nanAfter)} s later`,
      truth: (p) => {
        const rise = 3 * p.lossNoise;
        const minS = accel ? 60 * Math.sqrt(rise / perMin) : (60 * rise) / perMin;
        return truth(
          p,
          at,
          ['TrainingLossSpike', 'TrainingNaN', 'TrainingLossDiverging'],
          'job',
          Math.max(minS, 5 * trainPeriodS(p)),
          'the drift exceeds 3 σ of the loss noise (at least 5 samples)',
          STOP,
        );
      },
    };
  },
};

const jump: KindDef = {
  name: 'loss_jump_no_recovery',
  category: 'incident',
  summary: 'the loss jumps and never comes back down',
  variants: [
    { name: 'step', splits: ['train', 'heldout'] },
    { name: 'ramped', splits: ['heldout'] },
  ],
  make(ctx) {
    const at = drawOnset(ctx);
    const height = ctx.draw([1.6, 3], [1.4, 2.2]);
    const rampS = ctx.variant === 'ramped' ? ctx.draw([20, 40], [20, 60]) : 0;
    return {
      effects: [
        after(at, (s, since) => (s.lossMul *= 1 + (height - 1) * Math.min(1, rampS ? since / rampS : 1))),
      ],
      params: { durationMs: (at + 600) * 1000 },
      description: `loss ×${height.toFixed(1)} from ${Math.round(at)} s${rampS ? ` over ${Math.round(rampS)} s` : ''}, for good`,
      truth: (p) =>
        truth(
          p,
          at,
          ['TrainingLossSpike', 'TrainingLossDiverging'],
          'job',
          trainPeriodS(p) + rampS / 2,
          'one sample of the raised loss (half the ramp when it ramps)',
        ),
    };
  },
};

/** A frozen step's minimum: outlast the longest legitimate pause, and 3 training periods. */
function frozenMin(p: RunParams, bg: Background): number {
  return Math.max(bg.pauseS + sec(p), 3 * trainPeriodS(p));
}

const hang: KindDef = {
  name: 'nccl_hang',
  category: 'incident',
  summary: 'full NCCL hang: the step stops on every rank, GPUs spin in the collective',
  variants: [
    { name: 'spinning', splits: ['train', 'heldout'] },
    { name: 'mixed_spin', splits: ['heldout'] },
  ],
  make(ctx) {
    const at = drawOnset(ctx);
    const mixed = ctx.variant === 'mixed_spin';
    return {
      effects: [
        after(at, (s) => {
          for (let r = 0; r < s.ranks; r++) {
            s.rankFrozen[r] = 1;
            s.rankUtil[r] = mixed && r % 2 === 0 ? 0 : 1;
          }
          s.nodeNetMul.fill(0.001);
        }),
      ],
      params: { durationMs: (at + 900) * 1000 },
      description: `every rank stuck from ${Math.round(at)} s${mixed ? ', half at 0%, half at 100%' : ', GPUs at 100%'}`,
      truth: (p, bg) =>
        truth(
          p,
          at,
          ['TrainingStalled'],
          'job',
          frozenMin(p, bg),
          'outlast the longest legitimate pause',
          STOP,
        ),
    };
  },
};

const partialHang: KindDef = {
  name: 'partial_hang',
  category: 'incident',
  summary: 'one rank stuck at 0% GPU while its peers spin at 100% waiting in the collective',
  variants: [{ name: 'one_rank', splits: ['train', 'heldout'] }],
  make(ctx) {
    const at = drawOnset(ctx);
    const c = pickRank(ctx);
    return {
      effects: [
        after(at, (s) => {
          for (let r = 0; r < s.ranks; r++) {
            s.rankFrozen[r] = 1;
            s.rankUtil[r] = r === c.rank ? 0 : 1;
          }
        }),
      ],
      params: { durationMs: (at + 900) * 1000 },
      description: `rank ${c.rank} stuck at 0% from ${Math.round(at)} s, the others spin`,
      truth: (p) =>
        truth(
          p,
          at,
          ['TrainingStalled', 'TrainingStraggler', 'GPUIdle'],
          c.place(p),
          3 * Math.max(sec(p), trainPeriodS(p)),
          '3 samples of the 0%-vs-100% signature (no legitimate pause looks like it)',
          STOP,
        ),
    };
  },
};

function stragglerMin(p: RunParams, slow: number, extraCv = 0): number {
  const cv = Math.max(0.015, p.stepNoise * 0.5 + extraCv);
  return samplesToResolve(cv, slow) * trainPeriodS(p);
}

const straggler: KindDef = {
  name: 'persistent_straggler',
  category: 'incident',
  summary: 'one rank persistently slower than its peers (the job waits for it)',
  variants: [
    { name: 'constant', splits: ['train', 'heldout'] },
    { name: 'creeping', splits: ['heldout'] },
  ],
  make(ctx) {
    const at = drawOnset(ctx);
    const slow = ctx.draw([0.25, 0.6], [0.15, 0.3]);
    const c = pickRank(ctx);
    const creepS = ctx.variant === 'creeping' ? ctx.draw([120, 300], [120, 300]) : 0;
    return {
      effects: [
        after(at, (s, since) => {
          s.rankSlow[c.rank]! *= 1 + slow * (creepS ? Math.min(1, since / creepS) : 1);
        }),
      ],
      params: { durationMs: (at + 900) * 1000 },
      description: `rank ${c.rank} ${Math.round(slow * 100)}% slower from ${Math.round(at)} s${creepS ? `, reached over ${Math.round(creepS)} s` : ''}`,
      truth: (p) =>
        truth(
          p,
          at,
          ['TrainingStraggler'],
          c.place(p),
          stragglerMin(p, slow) + creepS / 2,
          'its mean step time stands out of the noise',
          SLOW,
        ),
    };
  },
};

const intermittent: KindDef = {
  name: 'intermittent_straggler',
  category: 'incident',
  summary: 'one rank slow in bursts (a noisy neighbour, a flapping link)',
  variants: [{ name: 'bursts', splits: ['train', 'heldout'] }],
  make(ctx) {
    const at = drawOnset(ctx);
    const slow = ctx.draw([0.3, 0.6], [0.2, 0.4]);
    const burstS = ctx.draw([30, 60], [20, 45]);
    const periodS = burstS / ctx.draw([0.35, 0.6], [0.25, 0.4]);
    const c = pickRank(ctx);
    return {
      effects: [
        after(at, (s, since) => {
          if (since % periodS < burstS) s.rankSlow[c.rank]! *= 1 + slow;
        }),
      ],
      params: { durationMs: (at + 1200) * 1000 },
      description: `rank ${c.rank} ${Math.round(slow * 100)}% slower in ${Math.round(burstS)} s bursts every ${Math.round(periodS)} s`,
      truth: (p) =>
        truth(
          p,
          at,
          ['TrainingStraggler'],
          c.place(p),
          Math.min(burstS, stragglerMin(p, slow)),
          'it stands out within its first burst',
          SLOW,
        ),
    };
  },
};

const powerCap: KindDef = {
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

const thermal: KindDef = {
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

const fastLeak = leak(
  'fast_memory_leak',
  'GPU memory of one rank grows to OOM within minutes',
  [300, 900],
  [180, 1500],
);
const slowLeak = leak(
  'slow_memory_leak',
  'GPU memory of one rank grows to OOM over hours',
  [2 * 3600, 4 * 3600],
  [4 * 3600, 8 * 3600],
);

const degradation: KindDef = {
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

const idleGpu: KindDef = {
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

const allIdle: KindDef = {
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

const nodeLost: KindDef = {
  name: 'node_lost',
  category: 'incident',
  summary: 'a node dies: its series stop, the other ranks hang in the collective',
  variants: [
    { name: 'hang_then_fail', splits: ['train', 'heldout'] },
    { name: 'hang_forever', splits: ['heldout'] },
  ],
  make(ctx) {
    const at = drawOnset(ctx);
    const node = ctx.rng.int(1, ctx.params.worldSize / ctx.params.gpusPerNode - 1);
    const timeoutS = ctx.draw([600, 600], [600, 1800]);
    const fails = ctx.variant === 'hang_then_fail';
    return {
      effects: [
        after(at, (s, since) => {
          s.nodeSilent[node] = 1;
          for (let r = 0; r < s.ranks; r++) {
            s.rankFrozen[r] = 1;
            s.rankUtil[r] = 1;
          }
          if (fails && since >= timeoutS) {
            s.events.push({ kind: 'finish', jobId: s.p.jobId, timeMs: s.tMs, status: 'failed' });
            s.ended = true;
          }
        }),
      ],
      params: { durationMs: (at + 900) * 1000 },
      description: `node ${node} lost at ${Math.round(at)} s`,
      truth: (p, bg) =>
        truth(
          p,
          at,
          ['NodeMetricsAbsent', 'TrainingStalled'],
          { nodeId: nodeIdOf(p, node) },
          Math.max(3 * sec(p), bg.silenceS + sec(p)),
          'its series outlast the longest legitimate silence (3 intervals at least)',
          STOP,
        ),
    };
  },
};

const starvation: KindDef = {
  name: 'dataloader_starvation',
  category: 'incident',
  summary: "one rank's data loader starves: its GPU waits for input, the job slows",
  variants: [{ name: 'one_rank', splits: ['train', 'heldout'] }],
  minNodes: 1,
  make(ctx) {
    const at = drawOnset(ctx);
    const slow = ctx.draw([0.4, 1], [0.25, 0.5]);
    const c = pickRank(ctx);
    return {
      effects: [
        after(at, (s) => {
          s.rankSlow[c.rank]! *= 1 + slow;
          s.rankUtil[c.rank] = s.p.model.utilBase / (1 + slow);
          s.nodeCpuAdd[s.nodeOf(c.rank)]! += 0.6;
        }),
      ],
      params: { durationMs: (at + 900) * 1000 },
      description: `rank ${c.rank} starved for input (${Math.round(slow * 100)}% slower) from ${Math.round(at)} s`,
      truth: (p) =>
        truth(
          p,
          at,
          ['TrainingStraggler'],
          c.place(p),
          stragglerMin(p, slow),
          'its step time stands out of the noise',
          SLOW,
        ),
    };
  },
};

const ecc: KindDef = {
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

const network: KindDef = {
  name: 'network_degradation',
  category: 'incident',
  summary: "one node's network degrades: its ranks take longer per step, so does the job",
  variants: [{ name: 'one_node', splits: ['train', 'heldout'] }],
  minNodes: 3,
  make(ctx) {
    const at = drawOnset(ctx);
    const node = ctx.rng.int(1, ctx.params.worldSize / ctx.params.gpusPerNode - 1);
    const slow = ctx.draw([0.25, 0.6], [0.15, 0.3]);
    return {
      effects: [
        after(at, (s) => {
          s.nodeNetMul[node]! *= 0.4;
          for (let g = 0; g < s.p.gpusPerNode; g++) s.rankSlow[node * s.p.gpusPerNode + g]! *= 1 + slow;
        }),
      ],
      params: { durationMs: (at + 900) * 1000 },
      description: `node ${node}'s network at 40% from ${Math.round(at)} s, its ranks ${Math.round(slow * 100)}% slower`,
      truth: (p) =>
        truth(
          p,
          at,
          ['TrainingStraggler', 'NodeNetworkDegraded'],
          { nodeId: nodeIdOf(p, node) },
          stragglerMin(p, slow),
          "the node's step time stands out of the noise",
          SLOW,
        ),
    };
  },
};

const slowNode: KindDef = {
  name: 'slow_node',
  category: 'incident',
  summary: 'every GPU of one node slower (a bad BIOS setting, a node in a hot aisle)',
  variants: [{ name: 'one_node', splits: ['train', 'heldout'] }],
  minNodes: 4,
  make(ctx) {
    const at = drawOnset(ctx);
    const node = ctx.rng.int(1, ctx.params.worldSize / ctx.params.gpusPerNode - 1);
    const clock = ctx.draw([0.65, 0.8], [0.75, 0.88]);
    return {
      effects: [
        after(at, (s) => {
          for (let g = 0; g < s.p.gpusPerNode; g++) {
            const r = node * s.p.gpusPerNode + g;
            s.rankClockMul[r]! *= clock;
            s.rankSlow[r]! *= 1 / clock;
          }
        }),
      ],
      params: { durationMs: (at + 900) * 1000 },
      description: `node ${node}'s GPUs at ${Math.round(clock * 100)}% clock from ${Math.round(at)} s`,
      truth: (p) =>
        truth(
          p,
          at,
          ['TrainingStraggler', 'GPUClockDeficit'],
          { nodeId: nodeIdOf(p, node) },
          3 * sec(p),
          '3 samples of the clock deficit',
          SLOW,
        ),
    };
  },
};

const silent: KindDef = {
  name: 'job_silent',
  category: 'incident',
  summary: 'the whole job stops reporting without a finish event (killed, crashed)',
  variants: [{ name: 'crash', splits: ['train', 'heldout'] }],
  make(ctx) {
    const at = drawOnset(ctx);
    return {
      effects: [after(at, (s) => (s.silent = true))],
      params: { durationMs: (at + 600) * 1000 },
      description: `every series stops at ${Math.round(at)} s`,
      truth: (p, bg) =>
        truth(
          p,
          at,
          ['JobMetricsAbsent', 'NodeMetricsAbsent'],
          'job',
          Math.max(3 * sec(p), bg.silenceS + sec(p)),
          'outlast the longest legitimate silence (3 intervals at least)',
        ),
    };
  },
};

export const INCIDENT_KINDS: readonly KindDef[] = [
  nan,
  driftNan,
  jump,
  hang,
  partialHang,
  straggler,
  intermittent,
  powerCap,
  thermal,
  fastLeak,
  slowLeak,
  degradation,
  idleGpu,
  allIdle,
  nodeLost,
  starvation,
  ecc,
  network,
  slowNode,
  silent,
];

export type { Made };
