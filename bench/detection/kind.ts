/**
 * A kind of scenario (a clean behaviour or an incident): its shape variants, and how it turns a draw of
 * parameters into effects (and, for an incident, its ground truth).
 */
import type { Rng } from '../../src/simulator/rng.js';
import type { Effect } from './generator.js';
import type { Category, GroundTruth, RunParams, Split } from './types.js';

export interface Variant {
  readonly name: string;
  /** The splits this shape appears in: a variant only in `heldout` is a shape train never shows. */
  readonly splits: readonly Split[];
}

export interface MakeContext {
  readonly rng: Rng;
  readonly split: Split;
  readonly variant: string;
  /** The run's parameters before the kind's own overrides. */
  readonly params: RunParams;
  /** A uniform draw from the split's range: `train` for the train split, `heldout` for the held-out one. */
  draw(train: readonly [number, number], heldout: readonly [number, number]): number;
  /** One of the split's choices. */
  pick<T>(train: readonly T[], heldout: readonly T[]): T;
}

/** What the background behaviours of a run imply for an incident's minimum delay. */
export interface Background {
  /** Longest legitimate pause of the step (checkpoint, eval, stall), seconds. */
  readonly pauseS: number;
  /** Longest legitimate silence of a node or the job (restart gap, agent hiccup), seconds. */
  readonly silenceS: number;
}

export interface Made {
  readonly effects: Effect[];
  readonly description: string;
  /** Overrides of the run's parameters (logging cadence, noise, duration). */
  readonly params?: Partial<RunParams>;
  /** Longest legitimate pause this behaviour causes, seconds. */
  readonly pauseS?: number;
  /** Longest legitimate silence this behaviour causes, seconds. */
  readonly silenceS?: number;
  /** A scenario converted from a real trace: where the trace comes from. */
  readonly source?: string;
  /** Incidents: the ground truth, given the final params and what the background implies. */
  truth?(p: RunParams, bg: Background): GroundTruth;
}

export interface KindDef {
  readonly name: string;
  readonly category: Category;
  readonly summary: string;
  readonly variants: readonly Variant[];
  /** Incidents: world sizes below this cannot show the kind (a slow node needs several nodes to compare). */
  readonly minNodes?: number;
  make(ctx: MakeContext): Made;
}
