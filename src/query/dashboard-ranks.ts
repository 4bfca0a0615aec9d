/**
 * What the dashboard reads per rank of one job: the training curves (one representative series per metric,
 * with the step at each point) and the stragglers (robust z-scores of each rank's step time). Separate
 * from dashboard.ts, which only parses requests and shapes answers.
 */
import type { Curve, RankStepTime, StragglerResponse } from '../model/api-types.js';
import { isStaleNaN } from '../model/batch.js';
import { LabelMatcher, type LabelSet, METRIC_NAME_LABEL, WellKnownLabel } from '../model/labels.js';
import type { Querier, SampleIterator, SelectedSeries } from '../storage/index.js';
import { median, OUTLIER_Z, robustZ } from './dashboard-matrix.js';
import { naturalCompare } from './dashboard-params.js';
import { readSeries, selectSeries } from './series-read.js';

/** A rank whose step time is this much above the median, and an outlier by z-score, is a straggler. */
export const STRAGGLER_MIN_SLOWDOWN = 0.1;
const CURVES_PER_METRIC = 8;

/** Labels that tell ranks and GPUs of one job apart; a curve's identity is everything else. */
const PLACEMENT_LABELS = new Set([
  WellKnownLabel.rank,
  WellKnownLabel.localRank,
  WellKnownLabel.nodeId,
  WellKnownLabel.gpu,
  WellKnownLabel.gpuUuid,
]);

export type { Curve } from '../model/api-types.js';

/**
 * One curve per metric and distinct non-placement labels: rank 0's series when ranks report separately
 * (the loss every rank computes is the same model's), else the lowest rank's, else the only one.
 */
export async function readCurves(
  querier: Querier,
  jobMatcher: LabelMatcher,
  metrics: readonly string[],
  start: number,
  end: number,
  points: number | undefined,
  signal?: AbortSignal,
): Promise<Curve[]> {
  const stepSeries = await selectSeries(
    querier,
    [new LabelMatcher('=', METRIC_NAME_LABEL, 'train_step'), jobMatcher],
    undefined,
    signal,
  );
  const stepByRank = new Map<string, SelectedSeries>();
  for (const s of stepSeries) stepByRank.set(s.labels[WellKnownLabel.rank] ?? '', s);
  const anyStep = stepByRank.get('0') ?? stepSeries[0];
  const out: Curve[] = [];
  for (const metric of metrics) {
    const groups = new Map<string, SelectedSeries>();
    for (const s of await selectSeries(
      querier,
      [new LabelMatcher('=', METRIC_NAME_LABEL, metric), jobMatcher],
      undefined,
      signal,
    )) {
      const id = Object.keys(s.labels)
        .filter((k) => !PLACEMENT_LABELS.has(k as never))
        .sort()
        .map((k) => `${k}=${s.labels[k]}`)
        .join(',');
      const have = groups.get(id);
      if (!have || rankOrder(s.labels) < rankOrder(have.labels)) groups.set(id, s);
    }
    for (const s of [...groups.values()].slice(0, CURVES_PER_METRIC)) {
      const [read] = readSeries([s], start, end, points);
      if (!read) continue;
      const steps = stepByRank.get(s.labels[WellKnownLabel.rank] ?? '') ?? anyStep;
      out.push({
        metric,
        labels: s.labels,
        t: read.t,
        v: read.v,
        step: steps && metric !== 'train_step' ? stepsAt(steps.iterator(), read.t) : null,
      });
    }
  }
  return out;
}

function rankOrder(labels: LabelSet): number {
  const r = labels[WellKnownLabel.rank];
  if (r === undefined) return -1; // a job-level series beats any rank's
  const n = Number(r);
  return Number.isFinite(n) ? n : Number.MAX_SAFE_INTEGER;
}

/** For ascending times, the value of the step series at or before each; one forward pass. */
export function stepsAt(it: SampleIterator, times: readonly number[]): (number | null)[] {
  const out: (number | null)[] = new Array(times.length);
  let has = it.next();
  let current: number | null = null;
  for (let i = 0; i < times.length; i++) {
    const t = times[i]!;
    while (has && it.t <= t) {
      if (!isStaleNaN(it.v) && Number.isFinite(it.v)) current = it.v;
      has = it.next();
    }
    out[i] = current;
  }
  return out;
}

/**
 * Ranks' mean step time over the most recent quarter of the range, scored with robust z-scores. A straggler
 * is the slowest rank when it is an outlier (z ≥ 3.5) AND at least 10% slower than the median: with 512
 * ranks, z alone would flag a healthy rank now and then.
 */
export function findStragglers(selected: readonly SelectedSeries[], start: number, end: number) {
  const from = end - Math.max(1, Math.floor((end - start) / 4));
  const ranks = selected.map((s) => {
    const it = s.iterator();
    let sum = 0;
    let n = 0;
    if (it.seek(from)) {
      do {
        if (it.t > end) break;
        if (Number.isFinite(it.v)) {
          sum += it.v;
          n++;
        }
      } while (it.next());
    }
    return { labels: placementOf(s.labels), mean: n > 0 ? sum / n : null };
  });
  return scoreStragglers(ranks, from, end, 'train_step_duration_seconds');
}

/** The labels that say which rank and GPU a series is. */
export function placementOf(labels: LabelSet): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of [WellKnownLabel.rank, WellKnownLabel.localRank, WellKnownLabel.nodeId, WellKnownLabel.gpu])
    if (labels[k] !== undefined) out[k] = labels[k]!;
  return out;
}

/** Robust z-scores of the ranks' recent step times, and the straggler by the rule above. */
export function scoreStragglers(
  ranks: readonly { labels: Record<string, string>; mean: number | null }[],
  from: number,
  end: number,
  metric: string,
): StragglerResponse {
  const z = robustZ(ranks.map((r) => r.mean));
  const scored: RankStepTime[] = ranks.map((r, i) => ({ ...r, z: z[i] ?? null }));
  scored.sort((a, b) => naturalCompare(a.labels.rank ?? '', b.labels.rank ?? ''));
  const means = scored
    .map((r) => r.mean)
    .filter((m): m is number => m !== null)
    .sort((a, b) => a - b);
  const med = median(means);
  let straggler: RankStepTime | null = null;
  for (const r of scored) {
    if (r.z === null || r.mean === null || r.z < OUTLIER_Z) continue;
    if (!(med > 0) || (r.mean - med) / med < STRAGGLER_MIN_SLOWDOWN) continue;
    if (!straggler || r.z > straggler.z!) straggler = r;
  }
  return {
    metric,
    window: { start: from, end },
    medianSeconds: Number.isFinite(med) ? med : null,
    ranks: scored,
    straggler: straggler
      ? { ...straggler, slowdown: straggler.mean !== null && med > 0 ? straggler.mean / med - 1 : null }
      : null,
  };
}
