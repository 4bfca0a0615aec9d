/**
 * The shapes shared by the detector engine and the detectors. A detector looks at one series at a time (a
 * {@link DetectorFamily}: the state of every series it applies to, in typed-array columns indexed by a slot)
 * or at a whole job (`JobState`: the step progress, the nodes and the ranks of one training job).
 */
import type { LabelSet } from '../../model/labels.js';
import type { StateReader, StateWriter } from '../state.js';
import type { DetectorName } from './config.js';

/** What the engine knows about one series it analyses; created once per series, never per sample. */
export interface SeriesInfo {
  /** The engine's dense index of the series: the index into its per-series columns (`lastT`, `lastV`, ...). */
  readonly dref: number;
  readonly name: string;
  readonly tenant: string;
  /** The series' labels with `tenant` set. Shared with the processor's series table: never mutate. */
  readonly labels: LabelSet;
  readonly job: JobRef | undefined;
  /** The series' identity as a string (tenant + sorted labels), computed when first needed (member alerts). */
  key?: string;
}

/** The part of a job's state the series detectors read. */
export interface JobRef {
  readonly tenant: string;
  readonly jobId: string;
  /** Newest sample time of any series of the job (the job's event-time clock). */
  clock: number;
  finished: boolean;
  /** Whether the job is making step progress (or has no step metric at all): GPUs idle here are waste. */
  progressing(t: number): boolean;
  /** The job's phase as of its last evaluation (a code of phase.ts). */
  readonly phase: number;
  /**
   * When every rank last moved again after standing still together (a checkpoint or an evaluation; NaN:
   * never). A sample taken up to then may cover the pause (throughput averaged over it).
   */
  readonly pauseEndT: number;
  /** Mean newest utilization of the job's GPUs that reported in the last minute (NaN: none). */
  gpuUtilization(t: number): number;
  /** The job's usual interval between two samples of a series (ms; NaN: not known yet). */
  readonly sampleInterval: number;
  /** When the job first made step progress after its (re)start (NaN: not yet; no step series: NaN). */
  readonly progressSinceT: number;
}

export type FamilyName = DetectorName | 'threshold' | 'derived';

/**
 * One detector's state for every series it applies to. A series gets a *slot* in each family that applies
 * to it; the family keeps its learned state in typed-array columns indexed by slot, so a sample costs a few
 * array reads and writes and no allocation.
 */
export interface DetectorFamily {
  readonly detector: FamilyName;
  /** Slots in use. */
  readonly live: number;
  /** Takes a slot for series `dref`, with the parameters of that series. */
  alloc(info: SeriesInfo, params: unknown): number;
  /** A new sample of the slot's series (t strictly greater than the previous one; never a staleness marker). */
  observe(slot: number, t: number, v: number): void;
  /** The slot's learned state as JSON-able data (undefined: nothing to save); `load` accepts what `save` returned. */
  save(slot: number): unknown;
  load(slot: number, data: unknown): void;
  /** The same state in the binary state file (state.ts); `read` reads what `write` wrote. */
  write(slot: number, w: StateWriter): void;
  read(slot: number, r: StateReader): void;
  /** The series went away (or its job finished): end whatever this slot raised. */
  dispose(slot: number, t: number): void;
  /** After a restore the tracker may hold alerts of any slot: let the next evaluation check. */
  assumeActive(slot: number): void;
  free(slot: number): void;
}

/** Alert names raised by each detector. */
export const DETECTOR_ALERTS: Readonly<Record<DetectorName | 'threshold', readonly string[]>> = {
  threshold: [],
  nonfinite: ['TrainingNaN'],
  loss_spike: ['TrainingLossSpike'],
  loss_trend: ['TrainingLossDiverging'],
  anomaly: ['MetricAnomaly'],
  stall: ['TrainingStalled'],
  absence: ['JobMetricsAbsent', 'NodeMetricsAbsent'],
  throughput: ['ThroughputDegraded'],
  plateau: ['AccuracyPlateau'],
  straggler: ['TrainingStraggler'],
  ecc: ['GPUECCErrors'],
  throttle: ['GPUThrottled'],
  memory_leak: ['GPUMemoryLeak'],
  waste: ['GPUIdle'],
};

export const DETECTOR_DESCRIPTIONS: Readonly<Record<DetectorName | 'threshold', string>> = {
  threshold: 'static thresholds on a metric or on a ratio of two sibling metrics (temperature, memory full)',
  nonfinite: 'NaN or ±Inf in a loss or gradient metric',
  loss_spike: 'loss spike: robust z-score (median/MAD) of the residual against an EWMA of the loss',
  loss_trend:
    "loss drifting upwards: Sen's slope of the bucketed loss with a confidence bound above zero and a material rise",
  anomaly: 'EWMA z-score anomaly on the metrics listed in detectors.anomaly.metrics',
  stall:
    "training step frozen on every rank: with GPUs busy after max(factor × median step time, min) (a hang), with GPUs idle after the job's own pauses (checkpoint, eval)",
  absence: 'a running job, or one of its nodes, whose series stopped arriving',
  throughput:
    'throughput degradation: one-sided CUSUM against the baseline learned after warm-up, outside pauses and phases',
  plateau: 'accuracy plateau: no improvement of the smoothed best value by min_delta for patience',
  straggler:
    "a rank whose step time, GPU utilization, SM clock or power deviates from the job's other ranks (median/MAD), persistently or in bursts (duty cycle)",
  ecc: 'GPU ECC errors: any increase of the error counter',
  throttle: 'GPU thermal or power throttling reported by the driver',
  memory_leak:
    "GPU memory growing towards out-of-memory: Sen's slope with a confidence bound and a forecast time until full",
  waste: 'GPU allocated to a running job but idle',
};
