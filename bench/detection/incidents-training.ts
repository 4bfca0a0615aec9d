/**
 * Incident kinds in the training signal itself: NaN losses (sudden and after a drift), loss jumps, hung and
 * partially hung steps, stragglers and intermittent stalls. Minimum delays follow incidents.ts's header.
 *
 * Kind definitions share one shape (name, category, variants, make → effects and truth), so `duplicates` pairs
 * them across incidents-*.ts and clean-*.ts: the repetition is the table's, each entry's numbers are its own.
 */

import {
  after,
  drawOnset,
  frozenMin,
  pickRank,
  SLOW,
  STOP,
  sec,
  stragglerMin,
  trainPeriodS,
  truth,
} from './incident-timing.js';
import type { KindDef } from './kind.js';

export const nan: KindDef = {
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

export const driftNan: KindDef = {
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

export const jump: KindDef = {
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

export const hang: KindDef = {
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

export const partialHang: KindDef = {
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

export const straggler: KindDef = {
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

export const intermittent: KindDef = {
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
