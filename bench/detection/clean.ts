/**
 * Clean behaviours: what healthy training jobs do that a naive detector mistakes for an incident. Any alert
 * that fires on a clean run is a false alarm (except the informational AccuracyPlateau, see score.ts).
 *
 * Each behaviour draws its parameters from the train or the held-out range (`ctx.draw(train, heldout)`); the
 * held-out ranges overlap the train ones only partly, and some variants appear only in held-out.
 */
import type { Effect, RunState } from './generator.js';
import { GPU_MEMORY_BYTES, lossCurve } from './generator.js';
import type { KindDef, Made, MakeContext } from './kind.js';

/** Runs `fn` on ticks inside [start, start + dur) of every period, starting at `offset` seconds. */
function periodic(
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

const steady: KindDef = {
  name: 'steady',
  category: 'clean',
  summary: 'steady training: noise only',
  variants: [{ name: 'plain', splits: ['train', 'heldout'] }],
  make: () => ({ effects: [], description: 'steady training' }),
};

const warmupLr: KindDef = {
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

const checkpoints: KindDef = {
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

const evaluation: KindDef = {
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

const dynamicBatch: KindDef = {
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

const seqCurriculum: KindDef = {
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

const gradAccum: KindDef = {
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

const pipeline: KindDef = {
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

const mixedLength: KindDef = {
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

const loaderStalls: KindDef = {
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

const elastic: KindDef = {
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

const memRamp: KindDef = {
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

const sawtooth: KindDef = {
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

const plateau: KindDef = {
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

const spikesRecover: KindDef = {
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

const irregular: KindDef = {
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

const everyN: KindDef = {
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

const moe: KindDef = {
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

const thermalVar: KindDef = {
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

const slowFromStart: KindDef = {
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

const completion: KindDef = {
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

const compileStartup: KindDef = {
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

const hostBursts: KindDef = {
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

const rank0Overhead: KindDef = {
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

const noisyLoss: KindDef = {
  name: 'noisy_loss',
  category: 'clean',
  summary: 'a very noisy loss (small batches, RL fine-tuning)',
  variants: [{ name: 'noisy', splits: ['train', 'heldout'] }],
  make(ctx) {
    const cv = ctx.draw([0.08, 0.2], [0.15, 0.3]);
    return { effects: [], params: { lossNoise: cv }, description: `loss CV ${cv.toFixed(2)}` };
  },
};

const lrDecaySpeedup: KindDef = {
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

export const CLEAN_KINDS: readonly KindDef[] = [
  steady,
  warmupLr,
  checkpoints,
  evaluation,
  dynamicBatch,
  seqCurriculum,
  gradAccum,
  pipeline,
  mixedLength,
  loaderStalls,
  elastic,
  memRamp,
  sawtooth,
  plateau,
  spikesRecover,
  irregular,
  everyN,
  moe,
  thermalVar,
  slowFromStart,
  completion,
  compileStartup,
  hostBursts,
  rank0Overhead,
  noisyLoss,
  lrDecaySpeedup,
];

/** Clean behaviours that incident runs get as background (one or two each). */
export const BACKGROUND_KINDS = [
  'checkpoint_saves',
  'periodic_evaluation',
  'warmup_lr_schedule',
  'startup_memory_ramp',
  'mixed_length_batches',
  'memory_sawtooth',
  'dataloader_stalls',
  'thermal_variation',
] as const;

export type { Made, MakeContext };
