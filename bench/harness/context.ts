/** What every scenario gets: the results, the load generator, sizes for the mode, and progress output. */
import type { DatasetSummary } from './dataset.js';
import type { GeneratorProcess } from './generator.js';
import type { Results } from './results.js';
import type { WebhookReceiver } from './webhook.js';

export interface Sizes {
  /** Active series of the main data set (≈). */
  readonly series: number;
  readonly ticks: number;
  readonly ticksPerRequest: number;
  readonly concurrency: number;
  /** Larger ingest-only run (≥ 1M series in full mode); null: skipped. */
  readonly large: { readonly series: number; readonly ticks: number } | null;
  /** Time limit of one replay. */
  readonly replaySeconds: number;
  /** How long to wait for everything sent to become queryable. */
  readonly drainSeconds: number;
  readonly queryRepeats: number;
  readonly visibilityProbes: number;
  readonly alertProbes: number;
  readonly agentSeconds: number;
  /** Length of each ingest phase of the isolation scenario (without, then with the heavy query clients). */
  readonly isolationSeconds: number;
  /**
   * Range of the isolation scenario's adversarial subquery `max_over_time(vector(1)[<range>:1ms])`, which a
   * server must refuse: 30d as in the issue that found it; 1d in quick mode, because a build without the limits
   * runs it (30d took 86 s and 20 GB there).
   */
  readonly adversarialRange: string;
  /** Target samples/s for replays; 0 = as fast as possible. */
  readonly rate: number;
}

export const QUICK: Sizes = {
  series: 40_000,
  ticks: 30,
  ticksPerRequest: 1,
  concurrency: 8,
  large: null,
  replaySeconds: 30,
  drainSeconds: 60,
  queryRepeats: 5,
  visibilityProbes: 5,
  alertProbes: 3,
  agentSeconds: 10,
  isolationSeconds: 20,
  adversarialRange: '1d',
  rate: 0,
};

export const FULL: Sizes = {
  series: 200_000,
  ticks: 60,
  ticksPerRequest: 1,
  concurrency: 8,
  // About 97% of a job's nominal series are active (eval metrics come every 250 steps, vision models log no
  // tokens/s): 1.05 M nominal gives ≥ 1 M active.
  large: { series: 1_050_000, ticks: 12 },
  replaySeconds: 300,
  drainSeconds: 300,
  queryRepeats: 20,
  visibilityProbes: 20,
  alertProbes: 10,
  agentSeconds: 60,
  isolationSeconds: 60,
  adversarialRange: '30d',
  rate: 0,
};

export interface BenchContext {
  readonly results: Results;
  readonly generator: GeneratorProcess;
  readonly workDir: string;
  readonly sizes: Sizes;
  readonly webhook: WebhookReceiver;
  /** The main data set, built in the generator under the name 'main'. */
  readonly dataset: DatasetSummary;
  log(message: string): void;
}
