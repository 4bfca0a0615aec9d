/**
 * The shapes shared by the detector engine and the detectors. A detector looks at one series at a time
 * ({@link SeriesDetector}: one instance per series it applies to, fed each new sample in time order) or at a
 * whole job ({@link JobState}: the step progress, the nodes and the ranks of one training job).
 */
import type { LabelSet } from '../../model/labels.js';
import type { DetectorName } from './config.js';

/** One detector's state for one series. Instances are plain objects so they can be checkpointed. */
export interface SeriesDetector {
  /** `derived` feeds the derived per-job series (src/processor/derived.ts), not an alert. */
  readonly detector: DetectorName | 'threshold' | 'derived';
  /** A new sample of the series (t strictly greater than the previous one; never a staleness marker). */
  observe(t: number, v: number): void;
  /** The instance's learned state as JSON-able data; `load` accepts what `save` returned. */
  save?(): unknown;
  load?(data: unknown): void;
  /** The series went away (or its job finished): end whatever this instance raised. */
  dispose?(t: number): void;
}

/** What the engine knows about one series. */
export interface SeriesInfo {
  readonly key: string;
  readonly name: string;
  readonly tenant: string;
  /** The series' labels with `tenant` set. */
  readonly labels: LabelSet;
  readonly job: JobRef | undefined;
  lastT: number;
  lastV: number;
  readonly detectors: SeriesDetector[];
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
}

/** Alert names raised by each detector. */
export const DETECTOR_ALERTS: Readonly<Record<DetectorName | 'threshold', readonly string[]>> = {
  threshold: [],
  nonfinite: ['TrainingNaN'],
  loss_spike: ['TrainingLossSpike'],
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
  anomaly: 'EWMA z-score anomaly on the metrics listed in detectors.anomaly.metrics',
  stall:
    'training step not advancing for max(factor × median step time, min) while the job still reports (NCCL hang)',
  absence: 'a running job, or one of its nodes, whose series stopped arriving',
  throughput: 'gradual throughput degradation: one-sided CUSUM against the baseline learned after warm-up',
  plateau: 'accuracy plateau: no improvement of the smoothed best value by min_delta for patience',
  straggler: "a rank whose step time or GPU utilization deviates from the job's other ranks (median/MAD)",
  ecc: 'GPU ECC errors: any increase of the error counter',
  throttle: 'GPU thermal or power throttling reported by the driver',
  memory_leak: 'GPU memory growing towards out-of-memory: linear fit and forecast time until full',
  waste: 'GPU allocated to a running job but idle',
};
