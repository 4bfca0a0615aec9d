/**
 * The live numbers of the fleet page, per job: read from storage through the Querier like any other query,
 * over the last ten minutes of each job's data.
 */
import { isStaleNaN } from '../model/batch.js';
import type { JobInfo } from '../model/job.js';
import { LabelMatcher, METRIC_NAME_LABEL, WellKnownLabel } from '../model/labels.js';
import type { Querier, SelectedSeries, Storage } from '../storage/index.js';
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

/** Where the newest sample is looked for first: most series report every few seconds. */
const RECENT_MS = 30_000;

/**
 * The value of a series' newest sample in [from, end], or undefined when there is none or it is a staleness
 * marker (the series ended). Only the newest sample decides, so the last 30 s are read first and the whole
 * window only when they are empty: a 512-GPU job's summary reads a few dozen samples per series, not 600.
 */
export function newestValue(s: SelectedSeries, from: number, end: number): number | undefined {
  for (const lo of from < end - RECENT_MS ? [end - RECENT_MS, from] : [from]) {
    const it = s.iterator();
    if (!it.seek(lo) || it.t > end) continue;
    let v = it.v;
    while (it.next() && it.t <= end) v = it.v;
    return isStaleNaN(v) ? undefined : v;
  }
  return undefined;
}

/** The newest value of every series matching the metric and job, skipping staleness markers. */
function latestValues(
  q: Querier,
  metric: string,
  jobId: string,
  from: number,
  end: number,
): { labels: Readonly<Record<string, string>>; v: number }[] {
  const out: { labels: Readonly<Record<string, string>>; v: number }[] = [];
  for (const s of q.select([
    new LabelMatcher('=', METRIC_NAME_LABEL, metric),
    new LabelMatcher('=', WellKnownLabel.jobId, jobId),
  ])) {
    const v = newestValue(s, from, end);
    if (v !== undefined) out.push({ labels: s.labels, v });
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
  const from = end - SUMMARY_WINDOW_MS;
  const q = storage.querier(job.tenant, from, end);
  const util = latestValues(q, 'gpu_utilization_ratio', job.jobId, from, end);
  const steps = latestValues(q, 'train_step', job.jobId, from, end);
  const losses = latestValues(q, 'train_loss', job.jobId, from, end);
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
    samplesPerSecond: sum(latestValues(q, 'train_samples_per_second', job.jobId, from, end).map((s) => s.v)),
    tokensPerSecond: sum(latestValues(q, 'train_tokens_per_second', job.jobId, from, end).map((s) => s.v)),
  };
}
