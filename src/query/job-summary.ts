/**
 * The live numbers of the fleet page, per job: read from storage through the Querier like any other query,
 * over the last ten minutes of each job's data.
 */

import type { JobSummary } from '../model/api-types.js';
import { isStaleNaN, STALE_NAN_BITS_HI, STALE_NAN_BITS_LO } from '../model/batch.js';
import type { JobInfo } from '../model/job.js';
import { LabelMatcher, type LabelSet, METRIC_NAME_LABEL, WellKnownLabel } from '../model/labels.js';
import { type Querier, SampleBuffer, type SelectedSeries, type Storage } from '../storage/index.js';
import { jsonValue, selectSeries } from './series-read.js';

export type { JobSummary } from '../model/api-types.js';

/** A summary's latest numbers are the newest within this long before the job's newest sample. */
export const SUMMARY_WINDOW_MS = 10 * 60_000;

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

/** Scratch for the bulk reads of {@link newestValues} (synchronous: one read at a time). */
const newestScratch = new SampleBuffer(1024);

/**
 * The newest sample in [from, end] of a series read in bulk: `null` when there is none, undefined when it is a
 * staleness marker (the series ended), else its value. The read may hold more than [from, end] (a storage
 * may ignore the hints' narrower range), hence the bounds.
 */
function newestRead(s: SelectedSeries, from: number, end: number): number | undefined | null {
  const buf = newestScratch;
  let i = s.readSamples!(buf) - 1;
  while (i >= 0 && buf.t[i]! > end) i--;
  if (i < 0 || buf.t[i]! < from) return null;
  // The staleness marker is a NaN bit pattern: read the bits (low word first), not the number.
  if (buf.vb[i * 2 + 1] === STALE_NAN_BITS_HI && buf.vb[i * 2] === STALE_NAN_BITS_LO) return undefined;
  return buf.v[i]!;
}

function labelKey(labels: LabelSet): string {
  let key = '';
  for (const k of Object.keys(labels).sort()) key += `${k}\u0000${labels[k]}\u0000`;
  return key;
}

/**
 * As {@link newestValue} for every series matching `matchers`, with the same answers in the same order (the
 * select's), but in bulk: the last 30 s of every series are decoded chunk-wise in one select (most series
 * report every few seconds, so that settles nearly all of them), and only the series with nothing there are
 * read over the whole window. A 512-GPU job's summary then decodes its newest chunks in tight loops instead
 * of seeking 2,500 sample iterators through them, one call per sample.
 */
export async function newestValues(
  q: Querier,
  matchers: readonly LabelMatcher[],
  from: number,
  end: number,
  signal?: AbortSignal,
): Promise<{ labels: LabelSet; v: number }[]> {
  const recentFrom = Math.max(from, end - RECENT_MS);
  /** Series settled by a sample in the last 30 s: its value, or undefined for a staleness marker. */
  const settled = new Map<string, number | undefined>();
  if (recentFrom > from) {
    for (const s of await selectSeries(q, matchers, { minT: recentFrom, maxT: end }, signal)) {
      if (!s.readSamples) break;
      const v = newestRead(s, recentFrom, end);
      if (v !== null) settled.set(labelKey(s.labels), v);
    }
  }
  const out: { labels: LabelSet; v: number }[] = [];
  for (const s of await selectSeries(q, matchers, { minT: from, maxT: end }, signal)) {
    const key = settled.size > 0 ? labelKey(s.labels) : '';
    const v = settled.has(key)
      ? settled.get(key)
      : s.readSamples
        ? (newestRead(s, from, end) ?? undefined)
        : newestValue(s, from, end);
    if (v !== undefined) out.push({ labels: s.labels, v });
  }
  return out;
}

/** The newest value of every series matching the metric and job, skipping staleness markers. */
function latestValues(
  q: Querier,
  metric: string,
  jobId: string,
  from: number,
  end: number,
  signal?: AbortSignal,
): Promise<{ labels: Readonly<Record<string, string>>; v: number }[]> {
  return newestValues(
    q,
    [new LabelMatcher('=', METRIC_NAME_LABEL, metric), new LabelMatcher('=', WellKnownLabel.jobId, jobId)],
    from,
    end,
    signal,
  );
}

/** The mean of the finite values (a NaN or ±Inf gauge is left out); null when none is finite. */
export function meanOfFinite(xs: number[]): number | null {
  const finite = xs.filter(Number.isFinite);
  return finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : null;
}

/** The sum of the finite values; null when none is finite. */
export function sumOfFinite(xs: number[]): number | null {
  const finite = xs.filter(Number.isFinite);
  return finite.length ? finite.reduce((a, b) => a + b, 0) : null;
}

export async function summarizeJob(
  storage: Storage,
  job: JobInfo,
  signal?: AbortSignal,
): Promise<JobSummary> {
  const end = job.lastSampleMs ?? job.startMs ?? 0;
  const from = end - SUMMARY_WINDOW_MS;
  const q = storage.querier(job.tenant, from, end);
  return summaryOf(
    job,
    await readSummaryInputs((metric) => latestValues(q, metric, job.jobId, from, end, signal)),
  );
}

/** A series' newest value, with the series' labels. */
export interface LatestValue {
  readonly labels: LabelSet;
  readonly v: number;
}

/** What a job summary is made of: per metric, a `T` (one job's newest values, or every job's of a fleet). */
export interface SummaryInputs<T> {
  readonly util: T;
  readonly steps: T;
  readonly losses: T;
  readonly samples: T;
  readonly tokens: T;
}

/** Reads the summary's five metrics at once through `latest` (summarizeJob: one job; summarizeFleet: all). */
export async function readSummaryInputs<T>(
  latest: (metric: string) => Promise<T>,
): Promise<SummaryInputs<T>> {
  const [util, steps, losses, samples, tokens] = await Promise.all([
    latest('gpu_utilization_ratio'),
    latest('train_step'),
    latest('train_loss'),
    latest('train_samples_per_second'),
    latest('train_tokens_per_second'),
  ]);
  return { util, steps, losses, samples, tokens };
}

/** A job's summary from the newest value of each of its series (summarizeJob's, summarizeFleet's rows). */
export function summaryOf(job: JobInfo, m: SummaryInputs<readonly LatestValue[]>): JobSummary {
  // Loss as the job reports it: rank 0's when ranks report separately, else the mean of what there is.
  const rank0 = m.losses.find((l) => l.labels[WellKnownLabel.rank] === '0');
  const lossValue = rank0
    ? rank0.v
    : m.losses.some((l) => Number.isNaN(l.v))
      ? Number.NaN
      : meanOfFinite(m.losses.map((l) => l.v));
  const finiteSteps = m.steps.map((s) => s.v).filter(Number.isFinite);
  return {
    ...job,
    gpus: m.util.length,
    meanGpuUtilization: meanOfFinite(m.util.map((u) => u.v)),
    step: finiteSteps.length ? Math.max(...finiteSteps) : null,
    loss: lossValue === null ? null : jsonValue(lossValue),
    samplesPerSecond: sumOfFinite(m.samples.map((s) => s.v)),
    tokensPerSecond: sumOfFinite(m.tokens.map((s) => s.v)),
  };
}
