/**
 * Clean behaviours of the workload's shape (clean.ts): dynamic batches, sequence curricula, gradient
 * accumulation, pipelines, mixed-length batches, irregular steps, every-N logging, mixture of experts, a job
 * slow from its start and rank 0's extra work.
 *
 * Kind definitions share one shape (name, category, variants, make → effects and truth), so `duplicates` pairs
 * them across incidents-*.ts and clean-*.ts: the repetition is the table's, each entry's numbers are its own.
 */
import type { KindDef } from './kind.js';

export const dynamicBatch: KindDef = {
  name: 'dynamic_batch_size',
  category: 'clean',
  summary: 'batch size changes level regularly: samples/s and step time jump between levels',
  variants: [
    { name: 'levels', splits: ['train', 'heldout'] },
    { name: 'ramp_up', splits: ['heldout'] },
  ],
  make(ctx) {
    const period = ctx.draw([180, 480], [120, 600]);
    const levels = ctx.split === 'train' ? [0.5, 1, 1.5, 2] : [0.25, 0.75, 1, 2, 3];
    const rng = ctx.rng.fork(11);
    let level = 1;
    let last = -1;
    return {
      effects: [
        {
          apply(s) {
            const k = Math.floor(s.tS / period);
            if (k !== last) {
              last = k;
              level = ctx.variant === 'ramp_up' ? Math.min(4, 0.5 + 0.5 * k) : rng.pick(levels);
            }
            s.batchMul *= level;
            s.stepTimeMul *= level ** 0.85;
          },
        },
      ],
      description: `batch size ×${levels.join('/')} changing every ${Math.round(period)} s (${ctx.variant})`,
    };
  },
};

export const seqCurriculum: KindDef = {
  name: 'seq_length_curriculum',
  category: 'clean',
  summary: 'sequence-length curriculum: tokens per sample double in stages, samples/s halves',
  variants: [{ name: 'doubling', splits: ['train', 'heldout'] }],
  make(ctx) {
    const stage = ctx.draw([300, 600], [200, 900]);
    return {
      effects: [
        {
          apply(s) {
            const k = Math.min(4, Math.floor(s.tS / stage));
            const mul = 2 ** k / 8;
            s.seqMul *= mul;
            s.stepTimeMul *= mul ** 1.1;
          },
        },
      ],
      description: `sequence length doubles every ${Math.round(stage)} s (4 stages)`,
    };
  },
};

export const gradAccum: KindDef = {
  name: 'gradient_accumulation',
  category: 'clean',
  summary: 'gradient accumulation: one optimizer step every k micro-batches (slow step cadence)',
  variants: [{ name: 'fixed_k', splits: ['train', 'heldout'] }],
  make(ctx) {
    const k = Math.round(ctx.draw([4, 8], [8, 32]));
    return {
      effects: [
        {
          apply(s) {
            s.stepTimeMul *= k;
            s.batchMul *= k;
          },
        },
      ],
      description: `${k} micro-batches per optimizer step`,
    };
  },
};

export const pipeline: KindDef = {
  name: 'pipeline_bubbles',
  category: 'clean',
  summary: 'pipeline parallelism: per-stage imbalance (last stage slower), utilization dips in bubbles',
  variants: [{ name: 'stages', splits: ['train', 'heldout'] }],
  make(ctx) {
    const stages = ctx.pick([2, 4], [4, 8]);
    const bubble = ctx.draw([0.1, 0.25], [0.15, 0.35]);
    const lastSlow = ctx.draw([1.03, 1.08], [1.04, 1.09]);
    return {
      effects: [
        {
          apply(s) {
            const per = s.ranks / stages;
            for (let r = 0; r < s.ranks; r++) {
              const st = Math.min(stages - 1, Math.floor(r / per));
              // The first and last stages idle longest in the fill and drain bubbles.
              const edge = st === 0 || st === stages - 1 ? 1 : 0.5;
              s.rankUtilMul[r]! *= 1 - bubble * edge * (0.8 + 0.2 * Math.sin(s.tS / 7 + st));
              if (st === stages - 1) s.rankSlow[r]! *= lastSlow;
            }
          },
        },
      ],
      description: `${stages} stages, bubbles ${Math.round(bubble * 100)}%, last stage ${Math.round((lastSlow - 1) * 100)}% slower`,
    };
  },
};

export const mixedLength: KindDef = {
  name: 'mixed_length_batches',
  category: 'clean',
  summary: 'mixed-length batches: noisy, heavy-tailed step time',
  variants: [
    { name: 'noisy', splits: ['train', 'heldout'] },
    { name: 'heavy_tail', splits: ['heldout'] },
  ],
  make(ctx) {
    const cv = ctx.draw([0.15, 0.3], [0.25, 0.5]);
    const rng = ctx.rng.fork(13);
    const tail = ctx.variant === 'heavy_tail';
    return {
      effects: [
        {
          apply(s) {
            s.extraStepNoise += cv;
            if (tail && rng.next() < 0.03) s.stepTimeMul *= 2 + rng.next() * 2;
          },
        },
      ],
      description: `step time CV +${cv.toFixed(2)}${tail ? ', 3% of steps 2–4× longer' : ''}`,
    };
  },
};

export const irregular: KindDef = {
  name: 'irregular_logging',
  category: 'clean',
  summary: 'irregular logging: training metrics missing from many ticks, short agent gaps on a node',
  variants: [{ name: 'jittered', splits: ['train', 'heldout'] }],
  make(ctx) {
    const drop = ctx.draw([0.2, 0.5], [0.3, 0.6]);
    const gapS = ctx.draw([5, 20], [10, 40]);
    const rng = ctx.rng.fork(19);
    let gapNode = -1;
    let gapUntil = -1;
    return {
      effects: [
        {
          apply(s) {
            if (rng.next() < drop) s.trainSilent = true;
            if (s.tS >= gapUntil && rng.next() < s.dtS / 240) {
              gapNode = rng.int(0, s.nodes - 1);
              gapUntil = s.tS + gapS;
            }
            if (s.tS < gapUntil && gapNode >= 0) s.nodeSilent[gapNode] = 1;
          },
        },
      ],
      silenceS: gapS,
      description: `${Math.round(drop * 100)}% of ticks without training metrics, node gaps of ${Math.round(gapS)} s`,
    };
  },
};

export const everyN: KindDef = {
  name: 'log_every_n_steps',
  category: 'clean',
  summary: 'training metrics logged only every N steps',
  variants: [{ name: 'every_n', splits: ['train', 'heldout'] }],
  make(ctx) {
    const n = Math.round(ctx.draw([10, 50], [50, 200]));
    return {
      effects: [],
      params: { logEverySteps: n },
      description: `logs every ${n} steps`,
    };
  },
};

export const moe: KindDef = {
  name: 'moe_imbalance',
  category: 'clean',
  summary: 'mixture-of-experts load imbalance: hot experts move between ranks every few tens of seconds',
  variants: [{ name: 'moving_hotspots', splits: ['train', 'heldout'] }],
  make(ctx) {
    const maxSlow = ctx.draw([1.1, 1.25], [1.15, 1.35]);
    const holdS = ctx.draw([10, 40], [5, 60]);
    const rng = ctx.rng.fork(23);
    let slow: Float64Array | undefined;
    let last = -1;
    return {
      effects: [
        {
          apply(s) {
            const k = Math.floor(s.tS / holdS);
            if (!slow || k !== last) {
              last = k;
              slow ??= new Float64Array(s.ranks);
              for (let r = 0; r < s.ranks; r++) slow[r] = 1 + (maxSlow - 1) * rng.next() ** 3;
            }
            for (let r = 0; r < s.ranks; r++) s.rankSlow[r]! *= slow[r]!;
            s.extraStepNoise += 0.05;
          },
        },
      ],
      description: `ranks up to ${Math.round((maxSlow - 1) * 100)}% slower, reshuffled every ${Math.round(holdS)} s`,
    };
  },
};

export const slowFromStart: KindDef = {
  name: 'slow_from_start',
  category: 'clean',
  summary: 'a job slow from its start (small batches, CPU-bound input): no degradation',
  variants: [{ name: 'slow', splits: ['train', 'heldout'] }],
  make(ctx) {
    const slow = ctx.draw([1.8, 3], [2.5, 5]);
    return {
      effects: [
        {
          apply(s) {
            s.stepTimeMul *= slow;
            s.utilMul *= 0.55;
          },
        },
      ],
      description: `${slow.toFixed(1)}× slower than its model's usual, from the start`,
    };
  },
};

export const rank0Overhead: KindDef = {
  name: 'rank0_overhead',
  category: 'clean',
  summary: 'rank 0 does extra work (logging, metrics): a few percent slower, always',
  variants: [{ name: 'constant', splits: ['train', 'heldout'] }],
  make(ctx) {
    const extra = ctx.draw([1.02, 1.06], [1.04, 1.08]);
    return {
      effects: [
        {
          apply(s) {
            s.rankSlow[0]! *= extra;
          },
        },
      ],
      description: `rank 0 ${Math.round((extra - 1) * 100)}% slower`,
    };
  },
};
