/**
 * The shapes of the detection scenario library: a scenario is one training job (one run of the generator in
 * generator.ts) of one *kind* (a clean behaviour or an incident), in one *split*, with its ground truth.
 *
 * Splits. `train` is what detector changes may be tuned on; `heldout` has other seeds, other parameter ranges
 * (world sizes, sampling intervals, magnitudes) and shape variants that `train` never shows. Detector changes
 * must NEVER be tuned on `heldout`: read its figures, do not chase them. A held-out figure that was tuned on
 * is no longer a held-out figure.
 */

import type { SeriesBatch } from '../../src/model/batch.js';
import type { JobEvent } from '../../src/model/job.js';

export const SPLITS = ['train', 'heldout'] as const;
export type Split = (typeof SPLITS)[number];

export type Category = 'clean' | 'incident';

/** Where an incident is: the rank (and its node and GPU), a whole node, or the whole job. */
export interface Place {
  readonly nodeId?: string;
  readonly rank?: number;
  readonly gpu?: number;
}

/** What a scenario's incident is, when it starts and what counts as catching it. */
export interface GroundTruth {
  /** Event time of the first affected sample. */
  readonly onsetMs: number;
  /** Alert names that count as a detection. */
  readonly alerts: readonly string[];
  /** Alerts that are genuine consequences of the incident: after the onset they are neither hits nor false alarms. */
  readonly symptoms: readonly string[];
  /** The place an alert must name (labels `rank`, `gpu` + `node_id`, or `node_id`); `job`: nothing to name. */
  readonly where: Place | 'job';
  /** The shortest delay after the onset at which the signal allows telling the incident from normal behaviour. */
  readonly minDelayMs: number;
  /** Why that minimum (shown in the report). */
  readonly minDelayWhy: string;
}

/** The job-level metadata of a generated run. */
export interface ModelShape {
  readonly name: string;
  readonly framework: string;
  /** Compute time of one optimizer step (seconds), before any behaviour changes it. */
  readonly stepSeconds: number;
  readonly batchPerRank: number;
  /** Tokens per sample; 0: not a sequence model (no `train_tokens_per_second`). */
  readonly seqLen: number;
  readonly lossStart: number;
  readonly lossEnd: number;
  /** Steps over which the loss curve bends (power law `(1 + step / tau)^-0.7`). */
  readonly lossTau: number;
  /** Fraction of the GPU's memory the steady working set takes. */
  readonly memFraction: number;
  /** GPU utilization while computing. */
  readonly utilBase: number;
}

/** Everything that shapes one generated run (drawn per scenario from the split's ranges). */
export interface RunParams {
  readonly jobId: string;
  readonly seed: number;
  readonly startMs: number;
  readonly worldSize: number;
  readonly gpusPerNode: 4 | 8;
  readonly intervalMs: number;
  readonly durationMs: number;
  readonly model: ModelShape;
  /** Coefficient of variation of the step time. */
  readonly stepNoise: number;
  /** Coefficient of variation of the logged loss around its curve. */
  readonly lossNoise: number;
  /**
   * How the training metrics arrive. `on_step`: the SDK logs when a step completes (nothing while no step
   * completes; the step duration is the last step's). `every_interval`: a gauge exporter reports every sampling
   * interval (the step stays put while paused; throughput is samples done in the interval ÷ the interval).
   */
  readonly trainReport: 'on_step' | 'every_interval';
  /** Which ranks log `train_loss`. */
  readonly lossRanks: 'rank0' | 'all';
  /** Training metrics only every this many steps (1: every step). */
  readonly logEverySteps: number;
  /** The framework reports phases (checkpoint, eval, train) as job `update` events. */
  readonly phaseEvents: boolean;
}

/** One sampling tick of a run: one batch per node that reports (what its agent ships) and the job events. */
export interface Frame {
  readonly tMs: number;
  readonly batches: readonly SeriesBatch[];
  readonly events: readonly JobEvent[];
}

export interface Scenario {
  /** `<kind>/<split>/<n>`. */
  readonly id: string;
  readonly kind: string;
  readonly category: Category;
  readonly split: Split;
  /** The shape variant of the kind (held-out has variants train never shows). */
  readonly variant: string;
  readonly description: string;
  readonly params: RunParams;
  /** Clean behaviours mixed into the run as background (incident runs have some). */
  readonly background: readonly string[];
  /** Undefined for clean runs. */
  readonly truth: GroundTruth | undefined;
  /** Where a scenario converted from a real trace comes from. */
  readonly source?: string;
  /** The run's frames, in time order; generated lazily and deterministically (call again for a fresh pass). */
  frames(): Iterable<Frame>;
}
