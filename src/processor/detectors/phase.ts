/**
 * The phase of a training job, as the detectors see it. Normal training has moments that look like incidents
 * to a detector that knows only its own series: a checkpoint save or an evaluation freezes the step on every
 * rank for tens of seconds (not a hang), the start-up ramps memory up (not a leak) and the first minutes of
 * throughput are not its level. The job works its phase out from the signals themselves (phase of
 * {@link JobState}: step frozen on all ranks at once with the GPUs idle is a pause; with the GPUs busy it is
 * what a hang looks like) and takes the phase its framework reports where one is sent (the `train_phase`
 * series of the SDK), and the detectors consult it.
 *
 * Codes are what a `train_phase` series without a `phase` label carries as its value.
 */
export const PHASE_STARTUP = 0;
export const PHASE_WARMUP = 1;
export const PHASE_STEADY = 2;
export const PHASE_EVAL = 3;
export const PHASE_CHECKPOINT = 4;
export const PHASE_COOLDOWN = 5;
/** Every rank frozen with its GPUs idle, no phase reported: a checkpoint save or an evaluation. */
export const PHASE_PAUSE = 6;
/** Every rank frozen while GPUs are busy (or nothing says they are idle): what a hang looks like. */
export const PHASE_FROZEN = 7;

export const PHASE_NAMES = [
  'startup',
  'warmup',
  'steady',
  'eval',
  'checkpoint',
  'cooldown',
  'pause',
  'frozen',
] as const;

/** The phase code of a `phase` label value (`-1`: not a phase this model knows). */
export function phaseCode(name: string): number {
  const n = name.toLowerCase().replace(/[-_ ]/g, '');
  switch (n) {
    case 'startup':
    case 'init':
    case 'setup':
    case 'loading':
      return PHASE_STARTUP;
    case 'warmup':
      return PHASE_WARMUP;
    case 'steady':
    case 'train':
    case 'training':
      return PHASE_STEADY;
    case 'eval':
    case 'evaluation':
    case 'validation':
    case 'validate':
      return PHASE_EVAL;
    case 'checkpoint':
    case 'checkpointing':
    case 'save':
    case 'saving':
      return PHASE_CHECKPOINT;
    case 'cooldown':
    case 'teardown':
    case 'shutdown':
      return PHASE_COOLDOWN;
    default:
      return -1;
  }
}

/** Phases in which the step legitimately stands still on every rank. */
export function isPausePhase(phase: number): boolean {
  return phase === PHASE_EVAL || phase === PHASE_CHECKPOINT || phase === PHASE_PAUSE;
}

/** Phases whose samples say nothing about the job's steady behaviour (levels, trends, leaks). */
export function isSettled(phase: number): boolean {
  return phase === PHASE_STEADY;
}
