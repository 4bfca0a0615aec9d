/**
 * What loading a job page's panels needs from the job's answer (`GET /api/tw/v1/jobs/:id`), and the cell that
 * hands it to loads that started before the answer came. DOM-free, so unit tests run it in Node.
 */
import type { JobSummary } from './types.js';

/** GPUs up to this many get a line each in the power/temperature/clock charts; more get a min–max band. */
export const MAX_GPU_LINES = 16;

export interface JobFacts {
  /** The job's throughput metric: tokens per second when it reports them, else samples per second. */
  readonly throughputMetric: string;
  /** Few enough GPUs for a line each in the power, temperature and clock charts (else min–max bands). */
  readonly few: boolean;
}

export function throughputMetricOf(metrics: readonly string[]): string {
  return metrics.includes('train_tokens_per_second') ? 'train_tokens_per_second' : 'train_samples_per_second';
}

export function jobFactsOf(
  job: Pick<JobSummary, 'gpus' | 'worldSize'>,
  metrics: readonly string[],
): JobFacts {
  return {
    throughputMetric: throughputMetricOf(metrics),
    few: Math.max(job.gpus, job.worldSize ?? 0) <= MAX_GPU_LINES,
  };
}

/**
 * The newest known facts of one job, or a promise of the first: loads start without waiting for the job,
 * and only the requests that need the facts wait for them.
 */
export class JobFactsCell {
  constructor(
    /** The job these facts are of. */
    readonly jobId: string,
  ) {}

  private current: JobFacts | null = null;
  private waiters: ((f: JobFacts) => void)[] = [];

  /** The newest facts, or the first ones once the job answers. */
  get(): Promise<JobFacts> {
    return this.current
      ? Promise.resolve(this.current)
      : new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Takes the job's newest answer. Returns true when it changes what a load already begun fetches (a
   * tokens/s metric appeared, the GPU count crossed MAX_GPU_LINES): the panels must load again. The first
   * answer releases the waiting loads instead, and returns false.
   */
  update(next: JobFacts): boolean {
    const was = this.current;
    this.current = next;
    if (was === null) {
      for (const w of this.waiters.splice(0)) w(next);
      return false;
    }
    return was.throughputMetric !== next.throughputMetric || was.few !== next.few;
  }
}
