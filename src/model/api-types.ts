/**
 * The shapes of trainwatch's dashboard and REST answers (`/api/tw/v1`), written once: the query stage
 * (src/query) produces them and the dashboard (src/ui/lib/types.ts) reads them. Types only, free of Node
 * imports, so that both the server's and the dashboard's tsconfig compile this file.
 */
import type { JobInfo, JobStatus } from './job.js';

export type { JobStatus };

/** JSON has no NaN or infinities: they travel as the strings Prometheus uses. */
export type JsonSpecial = 'NaN' | '+Inf' | '-Inf';
export type JsonSample = number | JsonSpecial;

/** A job with its live numbers (GET /api/tw/v1/jobs, /jobs/:id). */
export interface JobSummary extends JobInfo {
  /** Distinct GPUs reporting utilization in the window. */
  readonly gpus: number;
  readonly meanGpuUtilization: number | null;
  readonly step: number | null;
  /** NaN and infinities as strings: a diverged loss must show as NaN, not vanish. */
  readonly loss: JsonSample | null;
  readonly samplesPerSecond: number | null;
  readonly tokensPerSecond: number | null;
}

/** A row of the fleet table (GET /api/tw/v1/fleet). */
export interface FleetJob extends JobSummary {
  /** GPUs whose newest utilization is at or above the idle threshold. */
  readonly busyGpus: number;
  readonly idleGpus: number;
}

/** A series as parallel arrays of times (ms) and values (GET /api/tw/v1/series). */
export interface ColumnarSeries {
  readonly labels: Readonly<Record<string, string>>;
  readonly t: number[];
  readonly v: JsonSample[];
}

/** A training curve of a job (GET /api/tw/v1/jobs/:id/curves). */
export interface Curve extends ColumnarSeries {
  readonly metric: string;
  /** The job's training step at each point (the rank's `train_step` at or before t); null before the first. */
  readonly step: (number | null)[] | null;
}

export interface RankStepTime {
  readonly labels: Record<string, string>;
  /** Mean step duration over the recent window. */
  readonly mean: number | null;
  readonly z: number | null;
}

/** Ranks scored on their recent step time (GET /api/tw/v1/jobs/:id/stragglers, spread with stragglers=1). */
export interface StragglerResponse {
  readonly metric: string;
  readonly window: { readonly start: number; readonly end: number };
  readonly medianSeconds: number | null;
  readonly ranks: RankStepTime[];
  /** The slowest rank when it is an outlier and at least 10% slower than the median; else null. */
  readonly straggler: (RankStepTime & { readonly slowdown: number | null }) | null;
}

/** Min, max, mean and sum across series per time column (GET /api/tw/v1/spread). */
export interface SpreadResponse {
  readonly metric: string;
  readonly start: number;
  readonly step: number;
  readonly cols: number;
  /** How many series were read. */
  readonly series: number;
  readonly t: number[];
  readonly min: (number | null)[];
  readonly max: (number | null)[];
  readonly mean: (number | null)[];
  readonly sum: (number | null)[];
  /** Series with a value in each column. */
  readonly count: number[];
  /** With `stragglers=1`: the series scored on their recent level. */
  readonly stragglers?: StragglerResponse;
}
