/**
 * The live numbers of the fleet page, per job: read from storage through the Querier like any other query,
 * over the last ten minutes of each job's data.
 */
import { isStaleNaN } from '../model/batch.js';
import type { JobInfo } from '../model/job.js';
import { LabelMatcher, METRIC_NAME_LABEL, WellKnownLabel } from '../model/labels.js';
import type { Querier, Storage } from '../storage/index.js';
import { type JsonSample, jsonValue } from './series-read.js';

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

const SUMMARY_WINDOW_MS = 10 * 60_000;

/** The newest value of every series matching the metric and job, skipping staleness markers. */
function latestValues(
  q: Querier,
  metric: string,
  jobId: string,
): { labels: Readonly<Record<string, string>>; v: number }[] {
  const out: { labels: Readonly<Record<string, string>>; v: number }[] = [];
  for (const s of q.select([
    new LabelMatcher('=', METRIC_NAME_LABEL, metric),
    new LabelMatcher('=', WellKnownLabel.jobId, jobId),
  ])) {
    const it = s.iterator();
    let last = Number.NaN;
    let found = false;
    while (it.next()) {
      if (isStaleNaN(it.v)) {
        found = false;
        continue;
      }
      last = it.v;
      found = true;
    }
    if (found) out.push({ labels: s.labels, v: last });
  }
  return out;
}

function mean(xs: number[]): number | null {
  const finite = xs.filter(Number.isFinite);
  return finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : null;
}

function sum(xs: number[]): number | null {
  const finite = xs.filter(Number.isFinite);
  return finite.length ? finite.reduce((a, b) => a + b, 0) : null;
}

export function summarizeJob(storage: Storage, job: JobInfo): JobSummary {
  const end = job.lastSampleMs ?? job.startMs ?? 0;
  const q = storage.querier(job.tenant, end - SUMMARY_WINDOW_MS, end);
  const util = latestValues(q, 'gpu_utilization_ratio', job.jobId);
  const steps = latestValues(q, 'train_step', job.jobId);
  const losses = latestValues(q, 'train_loss', job.jobId);
  // Loss as the job reports it: rank 0's when ranks report separately, else the mean of what there is.
  const rank0 = losses.find((l) => l.labels[WellKnownLabel.rank] === '0');
  const lossValue = rank0
    ? rank0.v
    : losses.some((l) => Number.isNaN(l.v))
      ? Number.NaN
      : mean(losses.map((l) => l.v));
  const finiteSteps = steps.map((s) => s.v).filter(Number.isFinite);
  return {
    ...job,
    gpus: util.length,
    meanGpuUtilization: mean(util.map((u) => u.v)),
    step: finiteSteps.length ? Math.max(...finiteSteps) : null,
    loss: lossValue === null ? null : jsonValue(lossValue),
    samplesPerSecond: sum(latestValues(q, 'train_samples_per_second', job.jobId).map((s) => s.v)),
    tokensPerSecond: sum(latestValues(q, 'train_tokens_per_second', job.jobId).map((s) => s.v)),
  };
}
