/**
 * What every incident kind (incidents.ts) builds on: event-time arithmetic on the run's ticks, the drawn onset
 * and rank, the sample count a mean needs to resolve a change, the ground-truth record, and the common
 * symptoms of a slowed or stopped job.
 */
import type { Effect, RunState } from './generator.js';
import { nodeIdOf } from './generator.js';
import type { Background, MakeContext } from './kind.js';
import type { GroundTruth, Place, RunParams } from './types.js';

export const sec = (p: RunParams) => p.intervalMs / 1000;
/** How often the training metrics arrive, seconds. */
export function trainPeriodS(p: RunParams): number {
  return Math.max(sec(p), p.model.stepSeconds * p.logEverySteps);
}
/** The first tick at or after `s` seconds, as event time. */
export function onsetMs(p: RunParams, s: number): number {
  return p.startMs + Math.ceil(s / sec(p)) * p.intervalMs;
}

/** A rank other than 0 (rank 0 is special in many jobs), its node and GPU. */
export function pickRank(ctx: MakeContext): { rank: number; place: (p: RunParams) => Place } {
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
export function drawOnset(ctx: MakeContext): number {
  return ctx.draw([600, 900], [540, 1200]);
}

/** Samples a mean needs to stand out of noise `cv` by `delta` (relative): (3 cv / delta)², at least 3. */
export function samplesToResolve(cv: number, delta: number): number {
  return Math.max(3, Math.ceil((3 * cv) / delta) ** 2);
}

export function truth(
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
export const SLOW = ['ThroughputDegraded'];
export const STOP = ['ThroughputDegraded', 'GPUIdle', 'TrainingStraggler', 'MetricAnomaly'];

export function after(startS: number, fn: (s: RunState, sinceS: number) => void): Effect {
  return {
    apply(s) {
      if (s.tS >= startS) fn(s, s.tS - startS);
    },
  };
}

/** A frozen step's minimum: outlast the longest legitimate pause, and 3 training periods. */
export function frozenMin(p: RunParams, bg: Background): number {
  return Math.max(bg.pauseS + sec(p), 3 * trainPeriodS(p));
}

/** A slow rank's minimum: samples enough for its mean step time to stand out of the noise. */
export function stragglerMin(p: RunParams, slow: number, extraCv = 0): number {
  const cv = Math.max(0.015, p.stepNoise * 0.5 + extraCv);
  return samplesToResolve(cv, slow) * trainPeriodS(p);
}
