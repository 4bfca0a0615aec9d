/**
 * Clean behaviours of the metrics' shape (clean.ts): memory ramps and sawtooths, loss plateaus, spikes that
 * recover, thermal variation, noisy loss and the speed-up of a decaying learning rate.
 *
 * Kind definitions share one shape (name, category, variants, make → effects and truth), so `duplicates` pairs
 * them across incidents-*.ts and clean-*.ts: the repetition is the table's, each entry's numbers are its own.
 */

import { periodic } from './clean-schedules.js';
import { GPU_MEMORY_BYTES, lossCurve } from './generator.js';
import type { KindDef } from './kind.js';

export const memRamp: KindDef = {
  name: 'startup_memory_ramp',
  category: 'clean',
  summary: 'start-up memory ramp: GPU memory grows in chunks for minutes, then stays flat',
  variants: [
    { name: 'chunks', splits: ['train', 'heldout'] },
    { name: 'smooth', splits: ['heldout'] },
  ],
  make(ctx) {
    const rampS = ctx.draw([60, 180], [120, 400]);
    const chunks = Math.round(ctx.draw([4, 10], [3, 16]));
    const smooth = ctx.variant === 'smooth';
    return {
      effects: [
        {
          apply(s) {
            if (s.tS >= rampS) return;
            const f = s.tS / rampS;
            s.memMul *= 0.05 + 0.95 * (smooth ? f : Math.floor(f * chunks) / chunks);
          },
        },
      ],
      description: `memory reaches its working set over ${Math.round(rampS)} s (${smooth ? 'smoothly' : `${chunks} chunks`})`,
    };
  },
};

export const sawtooth: KindDef = {
  name: 'memory_sawtooth',
  category: 'clean',
  summary: 'caching allocator sawtooth: memory creeps up for minutes, then drops back',
  variants: [{ name: 'sawtooth', splits: ['train', 'heldout'] }],
  make(ctx) {
    const period = ctx.draw([60, 300], [120, 600]);
    const amp = ctx.draw([0.01, 0.04], [0.02, 0.07]);
    return {
      effects: [
        {
          apply(s) {
            const f = (s.tS % period) / period;
            for (let r = 0; r < s.ranks; r++) s.rankMemAdd[r]! += amp * GPU_MEMORY_BYTES * f;
          },
        },
      ],
      description: `+${(amp * 100).toFixed(1)}% of GPU memory over ${Math.round(period)} s, then released`,
    };
  },
};

export const plateau: KindDef = {
  name: 'loss_plateau',
  category: 'clean',
  summary: 'loss plateau: the loss stops improving for a long time (not an incident)',
  variants: [{ name: 'flat', splits: ['train', 'heldout'] }],
  make(ctx) {
    const fromS = ctx.draw([300, 600], [200, 900]);
    let atStep = -1;
    return {
      effects: [
        {
          apply(s) {
            if (s.tS < fromS) return;
            if (atStep < 0) atStep = s.step;
            s.lossMul *= lossCurve(s.p, atStep) / lossCurve(s.p, s.step);
          },
        },
      ],
      description: `loss flat from ${Math.round(fromS)} s`,
    };
  },
};

export const spikesRecover: KindDef = {
  name: 'loss_spikes_recover',
  category: 'clean',
  summary: 'normal loss spikes (bad batches) that recover within a minute',
  variants: [
    { name: 'sharp', splits: ['train', 'heldout'] },
    { name: 'double', splits: ['heldout'] },
  ],
  make(ctx) {
    const every = ctx.draw([180, 600], [120, 900]);
    const height = ctx.draw([1.3, 2.5], [1.5, 3.5]);
    const recoverS = ctx.draw([10, 40], [15, 60]);
    const double = ctx.variant === 'double';
    return {
      effects: [
        periodic(every, recoverS * (double ? 2 : 1), every * 0.7, (s, into) => {
          const x = double ? into % recoverS : into;
          s.lossMul *= 1 + (height - 1) * Math.exp((-3 * x) / recoverS);
        }),
      ],
      description: `spikes ×${height.toFixed(1)} every ${Math.round(every)} s, recovered in ${Math.round(recoverS)} s`,
    };
  },
};

export const thermalVar: KindDef = {
  name: 'thermal_variation',
  category: 'clean',
  summary: 'temperature varies with ambient and GPU position, within limits; clocks wobble slightly',
  variants: [{ name: 'ambient', splits: ['train', 'heldout'] }],
  make(ctx) {
    const amp = ctx.draw([3, 7], [4, 9]);
    const period = ctx.draw([600, 1800], [300, 2400]);
    const rng = ctx.rng.fork(29);
    let offsets: Float64Array | undefined;
    return {
      effects: [
        {
          apply(s) {
            if (!offsets) {
              offsets = new Float64Array(s.ranks);
              for (let r = 0; r < s.ranks; r++) offsets[r] = rng.next() * 6;
            }
            const ambient = amp * Math.sin((2 * Math.PI * s.tS) / period);
            for (let r = 0; r < s.ranks; r++) {
              s.rankTempAdd[r]! += ambient + offsets[r]!;
              s.rankClockMul[r]! *= 1 - (0.004 * (ambient + offsets[r]!)) / 5;
            }
          },
        },
      ],
      description: `±${amp.toFixed(0)} °C ambient over ${Math.round(period / 60)} min, up to +6 °C per GPU`,
    };
  },
};

export const noisyLoss: KindDef = {
  name: 'noisy_loss',
  category: 'clean',
  summary: 'a very noisy loss (small batches, RL fine-tuning)',
  variants: [{ name: 'noisy', splits: ['train', 'heldout'] }],
  make(ctx) {
    const cv = ctx.draw([0.08, 0.2], [0.15, 0.3]);
    return { effects: [], params: { lossNoise: cv }, description: `loss CV ${cv.toFixed(2)}` };
  },
};

export const lrDecaySpeedup: KindDef = {
  name: 'throughput_speedup',
  category: 'clean',
  summary: 'throughput improves mid-run (a faster kernel after autotuning, a freed-up network)',
  variants: [{ name: 'step_up', splits: ['train', 'heldout'] }],
  make(ctx) {
    const atS = (ctx.params.durationMs / 1000) * ctx.draw([0.3, 0.6], [0.2, 0.7]);
    const gain = ctx.draw([1.1, 1.4], [1.2, 1.6]);
    return {
      effects: [
        {
          apply(s) {
            if (s.tS >= atS) s.stepTimeMul /= gain;
          },
        },
      ],
      description: `${Math.round((gain - 1) * 100)}% faster from ${Math.round(atS / 60)} min`,
    };
  },
};
