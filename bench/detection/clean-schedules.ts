/**
 * Clean behaviours of a job's schedule (clean.ts): steady runs, LR warm-up, checkpoint saves, periodic
 * evaluation, data-loader stalls, elastic restarts, completion, compile start-up and host-side bursts.
 *
 * Kind definitions share one shape (name, category, variants, make → effects and truth), so `duplicates` pairs
 * them across incidents-*.ts and clean-*.ts: the repetition is the table's, each entry's numbers are its own.
 */
import type { Effect, RunState } from './generator.js';
import { lossCurve } from './generator.js';
import type { KindDef } from './kind.js';

export function periodic(
  periodS: number,
  durS: number,
  offsetS: number,
  fn: (s: RunState, intoS: number) => void,
): Effect {
  return {
    apply(s) {
      if (s.tS < offsetS) return;
      const into = (s.tS - offsetS) % periodS;
      if (into < durS) fn(s, into);
    },
  };
}

export const steady: KindDef = {
  name: 'steady',
  category: 'clean',
  summary: 'steady training: noise only',
  variants: [{ name: 'plain', splits: ['train', 'heldout'] }],
  make: () => ({ effects: [], description: 'steady training' }),
};

export const warmupLr: KindDef = {
  name: 'warmup_lr_schedule',
  category: 'clean',
  summary: 'slow first steps (compilation, cache warm-up) and an LR warm-up: loss falls fast, then slowly',
  variants: [{ name: 'decaying', splits: ['train', 'heldout'] }],
  make(ctx) {
    const warmS = ctx.draw([60, 240], [120, 420]);
    const slow = ctx.draw([1.5, 3], [2, 5]);
    return {
      effects: [
        {
          apply(s) {
            const left = Math.max(0, 1 - s.tS / warmS);
            s.stepTimeMul *= 1 + (slow - 1) * left;
            s.utilMul *= 1 - 0.4 * left;
          },
        },
      ],
      description: `first ${Math.round(warmS)} s up to ${slow.toFixed(1)}× slower, easing off`,
    };
  },
};

function checkpointEffect(periodS: number, durS: number, offsetS: number): Effect {
  let inPause = false;
  return {
    apply(s) {
      if (s.tS < offsetS) return;
      const into = (s.tS - offsetS) % periodS;
      const now = into < durS;
      if (now !== inPause) {
        inPause = now;
        s.phase(now ? 'checkpoint' : 'train');
      }
      if (!now) return;
      s.paused = true;
      s.pauseUtil = 0.02;
      s.nodeCpuAdd.fill(0.35);
      s.nodeNetMul.fill(0.3);
    },
  };
}

export const checkpoints: KindDef = {
  name: 'checkpoint_saves',
  category: 'clean',
  summary: 'periodic checkpoint saves: every rank pauses for tens of seconds; the first step after covers it',
  variants: [{ name: 'periodic', splits: ['train', 'heldout'] }],
  make(ctx) {
    const period = ctx.draw([300, 900], [180, 1200]);
    const dur = ctx.draw([20, 60], [30, 120]);
    return {
      effects: [checkpointEffect(period, dur, ctx.draw([120, 300], [60, 400]))],
      pauseS: dur,
      description: `a ${Math.round(dur)} s checkpoint every ${Math.round(period / 60)} min`,
    };
  },
};

function evalEffect(periodS: number, durS: number, offsetS: number, util: number): Effect {
  let inEval = false;
  return {
    apply(s) {
      if (s.tS < offsetS) return;
      const into = (s.tS - offsetS) % periodS;
      const now = into < durS;
      if (now !== inEval) {
        inEval = now;
        s.phase(now ? 'eval' : 'train');
        if (!now) {
          const l = lossCurve(s.p, s.step) * 1.07;
          s.evalResult = {
            loss: l,
            accuracy: Math.max(0, Math.min(1, 1 - l / (s.p.model.lossStart * 1.05))),
          };
        }
      }
      if (!now) return;
      s.paused = true;
      s.pauseUtil = util;
    },
  };
}

export const evaluation: KindDef = {
  name: 'periodic_evaluation',
  category: 'clean',
  summary: 'periodic evaluation: the step stops, GPUs run the eval forward pass, eval metrics arrive after',
  variants: [{ name: 'periodic', splits: ['train', 'heldout'] }],
  make(ctx) {
    const period = ctx.draw([300, 900], [240, 1500]);
    const dur = ctx.draw([30, 90], [60, 180]);
    return {
      effects: [evalEffect(period, dur, ctx.draw([120, 300], [60, 400]), ctx.draw([0.5, 0.8], [0.3, 0.9]))],
      pauseS: dur,
      description: `a ${Math.round(dur)} s evaluation every ${Math.round(period / 60)} min`,
    };
  },
};

export const loaderStalls: KindDef = {
  name: 'dataloader_stalls',
  category: 'clean',
  summary: 'data-loader stalls on every rank that recover (storage hiccups)',
  variants: [{ name: 'random', splits: ['train', 'heldout'] }],
  make(ctx) {
    const meanGap = ctx.draw([300, 900], [240, 1200]);
    const maxDur = ctx.draw([10, 30], [20, 60]);
    const rng = ctx.rng.fork(17);
    let next = meanGap * (0.5 + rng.next());
    let until = -1;
    return {
      effects: [
        {
          apply(s) {
            if (s.tS >= next && until < s.tS) {
              until = s.tS + maxDur * (0.3 + 0.7 * rng.next());
              next = until + meanGap * (0.5 + rng.next());
            }
            if (s.tS < until) {
              s.paused = true;
              s.pauseUtil = 0.03;
              s.nodeCpuAdd.fill(0.4);
            }
          },
        },
      ],
      pauseS: maxDur,
      description: `stalls up to ${Math.round(maxDur)} s about every ${Math.round(meanGap / 60)} min`,
    };
  },
};

function restartEffect(atS: number[], gapS: number, rewindSteps: number, rampS: number): Effect {
  let restartedAt = Number.NEGATIVE_INFINITY;
  let idx = 0;
  let sentStart = true;
  return {
    apply(s) {
      if (idx < atS.length && s.tS >= atS[idx]!) {
        if (s.tS < atS[idx]! + gapS) {
          s.silent = true;
          sentStart = false;
          return;
        }
        idx++;
        restartedAt = s.tS;
        s.step = Math.max(0, s.step - rewindSteps);
      }
      if (!sentStart) {
        sentStart = true;
        s.events.push({ kind: 'start', jobId: s.p.jobId, timeMs: s.tMs, worldSize: s.p.worldSize });
      }
      const since = s.tS - restartedAt;
      if (since < rampS) {
        s.memMul *= 0.1 + (0.9 * Math.floor((since / rampS) * 6)) / 6;
        s.stepTimeMul *= 1 + 1.5 * (1 - since / rampS);
      }
    },
  };
}

export const elastic: KindDef = {
  name: 'elastic_restart',
  category: 'clean',
  summary: 'preemption / elastic restart: the job goes silent, resumes from a checkpoint (step goes back)',
  variants: [
    { name: 'one_restart', splits: ['train', 'heldout'] },
    { name: 'two_restarts', splits: ['heldout'] },
  ],
  make(ctx) {
    const gap = ctx.draw([45, 100], [60, 110]);
    const d = ctx.params.durationMs / 1000;
    const at = ctx.variant === 'two_restarts' ? [d * 0.3, d * 0.65] : [d * ctx.draw([0.3, 0.6], [0.3, 0.7])];
    return {
      effects: [
        restartEffect(at, gap, Math.round(ctx.draw([50, 400], [100, 1000])), ctx.draw([30, 90], [60, 150])),
      ],
      silenceS: gap,
      description: `${at.length} restart(s), ${Math.round(gap)} s silent each, step rewound to a checkpoint`,
    };
  },
};

export const completion: KindDef = {
  name: 'graceful_completion',
  category: 'clean',
  summary: 'the job ends: final evaluation and checkpoint, a finish event, the series stop',
  variants: [{ name: 'completed', splits: ['train', 'heldout'] }],
  make(ctx) {
    const d = ctx.params.durationMs / 1000;
    const endS = d * ctx.draw([0.75, 0.9], [0.6, 0.9]);
    const evalS = ctx.draw([30, 90], [30, 150]);
    const ckptS = ctx.draw([20, 60], [30, 120]);
    return {
      effects: [
        {
          apply(s) {
            if (s.tS < endS) return;
            if (s.tS < endS + evalS) {
              s.paused = true;
              s.pauseUtil = 0.6;
            } else if (s.tS < endS + evalS + ckptS) {
              s.paused = true;
              s.pauseUtil = 0.02;
            } else {
              s.events.push({ kind: 'finish', jobId: s.p.jobId, timeMs: s.tMs, status: 'completed' });
              s.ended = true;
            }
          },
        },
      ],
      pauseS: Math.max(evalS, ckptS),
      description: `finishes at ${Math.round(endS / 60)} min after a ${Math.round(evalS)} s eval and a ${Math.round(ckptS)} s checkpoint`,
    };
  },
};

export const compileStartup: KindDef = {
  name: 'long_compile_startup',
  category: 'clean',
  summary: 'long start-up (graph compilation, autotuning): bursty low utilization, very slow first steps',
  variants: [{ name: 'compile', splits: ['train', 'heldout'] }],
  make(ctx) {
    const compileS = ctx.draw([60, 240], [120, 480]);
    const rng = ctx.rng.fork(31);
    return {
      effects: [
        {
          apply(s) {
            if (s.tS >= compileS) return;
            s.stepTimeMul *= 8;
            s.utilMul *= 0.1 + 0.5 * rng.next();
            s.memMul *= 0.4;
          },
        },
      ],
      description: `${Math.round(compileS)} s of compilation before full speed`,
    };
  },
};

export const hostBursts: KindDef = {
  name: 'host_cpu_bursts',
  category: 'clean',
  summary: 'host CPU and network bursts (preprocessing, logging uploads) without effect on training',
  variants: [{ name: 'bursts', splits: ['train', 'heldout'] }],
  make(ctx) {
    const rng = ctx.rng.fork(37);
    const p = ctx.draw([0.01, 0.03], [0.02, 0.05]);
    let until = -1;
    let node = 0;
    return {
      effects: [
        {
          apply(s) {
            if (s.tS >= until && rng.next() < p) {
              until = s.tS + 10 + 50 * rng.next();
              node = rng.int(0, s.nodes - 1);
            }
            if (s.tS < until) {
              s.nodeCpuAdd[node]! += 0.5;
              s.nodeNetMul[node]! *= 1.5;
            }
          },
        },
      ],
      description: `CPU bursts on one node, ${(p * 100).toFixed(0)}% chance a tick`,
    };
  },
};
