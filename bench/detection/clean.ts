/**
 * Clean behaviours: what healthy training jobs do that a naive detector mistakes for an incident. Any alert
 * that fires on a clean run is a false alarm (except the informational AccuracyPlateau, see score.ts).
 *
 * Each behaviour draws its parameters from the train or the held-out range (`ctx.draw(train, heldout)`); the
 * held-out ranges overlap the train ones only partly, and some variants appear only in held-out.
 */
import {
  checkpoints,
  compileStartup,
  completion,
  elastic,
  evaluation,
  hostBursts,
  loaderStalls,
  steady,
  warmupLr,
} from './clean-schedules.js';
import {
  lrDecaySpeedup,
  memRamp,
  noisyLoss,
  plateau,
  sawtooth,
  spikesRecover,
  thermalVar,
} from './clean-signals.js';
import {
  dynamicBatch,
  everyN,
  gradAccum,
  irregular,
  mixedLength,
  moe,
  pipeline,
  rank0Overhead,
  seqCurriculum,
  slowFromStart,
} from './clean-workloads.js';
import type { KindDef, Made, MakeContext } from './kind.js';

/** Runs `fn` on ticks inside [start, start + dur) of every period, starting at `offset` seconds. */
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
