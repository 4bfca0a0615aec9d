/**
 * The fleet table's numbers (`GET /api/tw/v1/fleet`): every job's latest utilization, step, loss and
 * throughput, read with one select per metric for the whole fleet. Separate from dashboard.ts, which only
 * parses requests and shapes answers; fleet-page.ts pages the same summaries.
 */
import type { FleetJob } from '../model/api-types.js';
import type { JobInfo } from '../model/job.js';
import { LabelMatcher, METRIC_NAME_LABEL, regexOfLiterals, WellKnownLabel } from '../model/labels.js';
import type { Storage } from '../storage/index.js';
import {
  type LatestValue,
  newestValue,
  readSummaryInputs,
  SUMMARY_WINDOW_MS,
  summaryOf,
} from './job-summary.js';
import { selectSeries } from './series-read.js';

/** Utilization below this counts as an idle GPU (DCGM's tools use the same order of magnitude). */
export const IDLE_UTILIZATION = 0.05;

/** Up to this many jobs, summarizeFleet selects them by job_id (a literal set: the matcher's fast path). */
const PAGE_JOB_MATCHER_MAX = 2000;

export type { FleetJob } from '../model/api-types.js';

/**
 * The fleet table's numbers for every job, with the same meaning as summarizeJob (the newest value of each
 * series within ten minutes of the job's newest sample) but one select per metric for the whole fleet
 * instead of five per job.
 */
export async function summarizeFleet(
  storage: Storage,
  tenant: string | null,
  jobs: readonly JobInfo[],
  signal?: AbortSignal,
): Promise<FleetJob[]> {
  if (jobs.length === 0) return [];
  const endOf = (j: JobInfo) => j.lastSampleMs ?? j.startMs ?? 0;
  const index = new Map<string, number>();
  let minT = Number.POSITIVE_INFINITY;
  let maxT = Number.NEGATIVE_INFINITY;
  jobs.forEach((j, i) => {
    index.set(`${j.tenant}\u0000${j.jobId}`, i);
    minT = Math.min(minT, endOf(j) - SUMMARY_WINDOW_MS);
    maxT = Math.max(maxT, endOf(j));
  });
  const querier = storage.querier(tenant, minT, maxT);
  // A page of a large fleet names its jobs, so the select reads their series only, not every job's in the
  // page's time span (a page sorted by start time may span months).
  const jobMatchers =
    jobs.length <= PAGE_JOB_MATCHER_MAX
      ? [
          new LabelMatcher(
            '=~',
            WellKnownLabel.jobId,
            regexOfLiterals([...new Set(jobs.map((j) => j.jobId))]),
          ),
        ]
      : [];
  /** For each job, the newest value of each of its series of `metric`, with the series' labels. */
  const latest = async (metric: string): Promise<LatestValue[][]> => {
    const out: LatestValue[][] = jobs.map(() => []);
    for (const s of await selectSeries(
      querier,
      [new LabelMatcher('=', METRIC_NAME_LABEL, metric), ...jobMatchers],
      undefined,
      signal,
    )) {
      const i = index.get(`${s.labels[WellKnownLabel.tenant]}\u0000${s.labels[WellKnownLabel.jobId]}`);
      if (i === undefined) continue;
      const end = endOf(jobs[i]!);
      const v = newestValue(s, end - SUMMARY_WINDOW_MS, end);
      if (v !== undefined) out[i]!.push({ labels: s.labels, v });
    }
    return out;
  };
  const perJob = await readSummaryInputs(latest);
  return jobs.map((job, i) => {
    const summary = summaryOf(job, {
      util: perJob.util[i]!,
      steps: perJob.steps[i]!,
      losses: perJob.losses[i]!,
      samples: perJob.samples[i]!,
      tokens: perJob.tokens[i]!,
    });
    const u = perJob.util[i]!.map((x) => x.v);
    return {
      ...summary,
      busyGpus: u.filter((v) => v >= IDLE_UTILIZATION).length,
      idleGpus: u.filter((v) => v < IDLE_UTILIZATION).length,
    };
  });
}
