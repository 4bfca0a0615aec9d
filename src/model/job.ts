/**
 * Training jobs. A job is identified by (tenant, job_id); its metadata arrives as job events in the same
 * batches as its samples, so it travels through the bus in order with them.
 */

export const JOB_STATUSES = ['queued', 'running', 'stalled', 'completed', 'failed', 'unknown'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** Statuses after which a job never runs again; samples arriving later do not revive it. */
export const FINAL_JOB_STATUSES: ReadonlySet<JobStatus> = new Set(['completed', 'failed']);

export type JobEventKind = 'start' | 'update' | 'finish';

/**
 * What a sender says about a job. Every field but `jobId`, `kind` and `timeMs` is optional: an `update`
 * merges the fields it carries; a `start` sent again by another rank of the same job is merged the same way,
 * so that every rank may send it without coordination.
 */
export interface JobEvent {
  readonly kind: JobEventKind;
  readonly jobId: string;
  readonly timeMs: number;
  readonly name?: string;
  readonly project?: string;
  readonly owner?: string;
  readonly framework?: string;
  readonly worldSize?: number;
  readonly config?: Readonly<Record<string, unknown>>;
  readonly tags?: readonly string[];
  /** `finish`: how the job ended (completed or failed); `update`: a non-final status such as `queued`. */
  readonly status?: JobStatus;
  /** User metric keys as they were written (`train/loss`) by the sanitized metric name (`train_loss`). */
  readonly metricKeys?: Readonly<Record<string, string>>;
}

export interface JobInfo {
  readonly tenant: string;
  readonly jobId: string;
  readonly name: string;
  readonly project: string;
  readonly owner: string;
  readonly framework: string;
  readonly worldSize: number | null;
  readonly config: Readonly<Record<string, unknown>>;
  readonly tags: readonly string[];
  readonly status: JobStatus;
  readonly startMs: number | null;
  readonly endMs: number | null;
  /** Newest sample time seen for this job, by the processor. */
  readonly lastSampleMs: number | null;
  readonly metricKeys: Readonly<Record<string, string>>;
}

const JOB_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}$/;

/** Job ids come from schedulers (Slurm ids, Kubernetes names, torchelastic run ids): be liberal but bounded. */
export function validateJobId(jobId: string): string | undefined {
  if (!JOB_ID_RE.test(jobId)) {
    return `job_id ${JSON.stringify(jobId.slice(0, 80))} is invalid: use 1-200 characters from [A-Za-z0-9._:@/-], starting with a letter or digit`;
  }
  return undefined;
}
