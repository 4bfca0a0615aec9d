/**
 * Why a job failed, and whether a running job is hung, read from its alerts — so that a job that died of
 * an incident says so (`failed — diverged (NaN loss at step 1503)`) instead of `failed · healthy`.
 *
 * What "cause" means: the alerts that were firing when the job ended (its end time, give or take
 * {@link END_SLACK_MS}: detectors resolve a job's alerts as its series stop, a little before or after the
 * finish event) are the candidates. When several fired, the most likely root cause wins, in this order:
 * 1. a hardware fault (XID, ECC, NVLink…): it explains everything after it;
 * 2. GPU memory (a leak or a full GPU): the job died out of memory;
 * 3. non-finite loss (TrainingNaN): it diverged; a loss spike alone counts as divergence too, after NaN;
 * 4. a stall (TrainingStalled): it hung until a timeout killed it;
 * 5. any other alert, by severity — except "metrics absent" alerts, which the end itself raises.
 * Ties go to the alert that fired first (the earlier event is more likely the cause of the later).
 * A job that failed with no such alert is just `failed`: the page does not invent a cause.
 */
import {
  alertLocation,
  alertName,
  emptyHealth,
  type JobHealth,
  STALL_ALERT,
  severityLevel,
} from './alerts.js';
import type { Alert, FleetJob, JobStatus } from './types.js';

export type CauseKind = 'hardware' | 'oom' | 'diverged' | 'hung' | 'alert';

export interface JobCause {
  readonly kind: CauseKind;
  readonly alert: Alert;
  /** "diverged (NaN loss at step 1503)": what follows `failed — `. */
  readonly text: string;
  /** The alert's severity level (alerts.ts severityLevel). */
  readonly level: number;
}

/** How far from the job's end an alert may have resolved (or fired) and still count as firing at the end. */
export const END_SLACK_MS = 2 * 60_000;

type JobRef = Pick<FleetJob, 'tenant' | 'jobId' | 'status' | 'endMs' | 'lastSampleMs'>;

const KIND_ORDER: readonly CauseKind[] = ['hardware', 'oom', 'diverged', 'hung', 'alert'];

function kindOf(a: Alert): CauseKind {
  const name = alertName(a);
  if (/xid|ecc|nvlink|pcie|fell ?off|fallen|lost/i.test(name)) return 'hardware';
  if (/^GPUMemory|oom|outofmemory/i.test(name)) return 'oom';
  if (name === 'TrainingNaN' || /diverg|lossspike/i.test(name)) return 'diverged';
  if (name === STALL_ALERT) return 'hung';
  return 'alert';
}

/**
 * Alerts that a job's end raises by itself: its series stop, so "metrics absent" fires as it dies. They
 * tell that it ended, never why.
 */
function isEffectOfEnding(a: Alert): boolean {
  return /Absent$/.test(alertName(a));
}

/** Within a kind: a NaN before a loss spike (the NaN is the divergence; a spike may recover). */
function withinKind(a: Alert): number {
  return alertName(a) === 'TrainingNaN' ? 0 : 1;
}

/** When the job stopped: its end, else its last sample. */
export function endOf(job: JobRef): number | null {
  return job.endMs ?? job.lastSampleMs;
}

/** Whether the alert was firing when the job ended. */
export function firingAtEnd(a: Alert, endMs: number): boolean {
  if (a.state === 'pending' || a.firingAtMs === null) return false;
  return (
    a.firingAtMs <= endMs + END_SLACK_MS &&
    (a.resolvedAtMs === null || a.resolvedAtMs >= endMs - END_SLACK_MS)
  );
}

function ofJob(job: JobRef, a: Alert): boolean {
  return a.labels.job_id === job.jobId && (a.labels.tenant === undefined || a.labels.tenant === job.tenant);
}

/** "26 min", "42 s", "1 h 35 min". */
export function fmtSpan(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** NaN or Inf, as the detector wrote it in the summary ("train_loss is NaN: …"). */
function nonFiniteWord(a: Alert): string {
  const m = /\bis (NaN|[+-]?Inf(?:inity)?)\b/.exec(a.annotations.summary ?? a.annotations.description ?? '');
  if (!m) return 'NaN';
  return m[1]!.startsWith('-') ? '-Inf' : m[1] === 'NaN' ? 'NaN' : 'Inf';
}

/** "loss" for train_loss: the name the user thinks of. */
function metricWord(a: Alert): string {
  const metric = a.labels.metric ?? 'train_loss';
  return metric.replace(/^train_/, '').replace(/_/g, ' ');
}

function placeWords(a: Alert): string {
  if (a.labels.rank) return `rank ${a.labels.rank}`;
  return alertLocation(a.labels);
}

function describe(
  kind: CauseKind,
  a: Alert,
  endMs: number,
  step: number | null | undefined,
  stalledSinceMs: number | null | undefined,
): string {
  const where = placeWords(a);
  switch (kind) {
    case 'hardware':
      return `GPU fault (${alertName(a)})${where ? ` on ${where}` : ''}`;
    case 'oom':
      return `out of memory${where ? ` on ${where}` : ''}`;
    case 'diverged':
      return alertName(a) === 'TrainingNaN'
        ? `diverged (${nonFiniteWord(a)} ${metricWord(a)}${step !== null && step !== undefined ? ` at step ${Math.round(step)}` : ''})`
        : `diverged (${alertName(a)}${where ? ` on ${where}` : ''})`;
    case 'hung':
      return `hung ${fmtSpan(endMs - (stalledSinceMs ?? stallStartOf(a, endMs)))}`;
    case 'alert':
      return `${alertName(a)}${where ? ` on ${where}` : ''}`;
  }
}

/**
 * When the hang of a TrainingStalled alert began. The detector's value is the seconds since the step last
 * moved, as of its last evaluation (the alert's resolution, or `nowMs` while it fires): the hang began that
 * long before — minutes before the alert fired. Without a value, when the alert became active.
 */
export function stallStartOf(a: Alert, nowMs: number): number {
  const fromValue =
    typeof a.value === 'number' && a.value > 0 ? (a.resolvedAtMs ?? nowMs) - a.value * 1000 : null;
  return Math.min(a.activeAtMs, fromValue ?? a.activeAtMs);
}

/**
 * The cause of a failed job, from the alerts (any jobs', any states) and what the caller knows: for a
 * divergence, the training step at which the loss became non-finite; for a hang, when the step last
 * advanced (the stall alert fires only after the detector's threshold, minutes later). null for a job that
 * did not fail or whose alerts tell nothing.
 */
export function causeOfFailure(
  job: JobRef,
  alerts: readonly Alert[],
  divergedAtStep?: number | null,
  stalledSinceMs?: number | null,
): JobCause | null {
  if (job.status !== 'failed') return null;
  const end = endOf(job);
  if (end === null) return null;
  let best: Alert | undefined;
  let bestKey: number[] = [];
  for (const a of alerts) {
    if (!ofJob(job, a) || !firingAtEnd(a, end) || isEffectOfEnding(a)) continue;
    const kind = kindOf(a);
    const key = [
      KIND_ORDER.indexOf(kind),
      withinKind(a),
      -severityLevel(a.labels.severity),
      a.firingAtMs ?? a.activeAtMs,
    ];
    if (!best || lexLess(key, bestKey)) {
      best = a;
      bestKey = key;
    }
  }
  if (!best) return null;
  const kind = kindOf(best);
  return {
    kind,
    alert: best,
    text: describe(kind, best, end, divergedAtStep, stalledSinceMs),
    level: Math.max(1, severityLevel(best.labels.severity)),
  };
}

function lexLess(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}

/** `failed — out of memory on rank 7`, or the plain status. */
export function statusLine(job: Pick<FleetJob, 'status'>, cause: JobCause | null | undefined): string {
  return cause ? `${job.status} — ${cause.text}` : job.status;
}

/**
 * The status the page shows: a running job whose TrainingStalled alert fires is `stalled` (and `running`
 * again once the alert resolves). The stored status stays `running`: the stall is the alerting stage's
 * finding, and the fleet and job pages read both.
 */
export function jobStatusOf(
  job: Pick<FleetJob, 'tenant' | 'jobId' | 'status'>,
  health: ReadonlyMap<string, JobHealth>,
): JobStatus {
  if (job.status === 'running' && health.get(`${job.tenant}/${job.jobId}`)?.stalled) return 'stalled';
  return job.status;
}

/**
 * The health of failed jobs with their cause: the cause's alert, resolved as the job died, still counts at
 * its severity — a job that died of an incident is not "healthy". Returns a new map; `health` is unchanged.
 */
export function healthWithCauses(
  health: ReadonlyMap<string, JobHealth>,
  jobs: readonly JobRef[],
  alerts: readonly Alert[],
  defaultTenant: string,
  stepAt?: ReadonlyMap<string, number | null>,
): Map<string, JobHealth> {
  const out = new Map(health);
  for (const j of jobs) {
    const key = `${j.tenant || defaultTenant}/${j.jobId}`;
    const cause = causeOfFailure(j, alerts, stepAt?.get(key));
    if (!cause) continue;
    const h: JobHealth = { ...(out.get(key) ?? emptyHealth()) };
    h.cause = cause;
    if (!h.alerts.includes(cause.alert)) {
      h.alerts = [...h.alerts, cause.alert];
      if (cause.level === 3) h.critical++;
      else if (cause.level === 2) h.warning++;
      else h.info++;
      h.worst = Math.max(h.worst, cause.level);
    }
    out.set(key, h);
  }
  return out;
}

/** The PromQL of a job's training step (the highest rank's, as the fleet table shows). */
export function stepQueryOf(job: Pick<FleetJob, 'jobId'>): string {
  return `max(train_step{job_id=${JSON.stringify(job.jobId)}})`;
}

/**
 * For each failed job that diverged (TrainingNaN), the training step when the loss became non-finite, by
 * `stepAt(job, t)` (a PromQL instant query of {@link stepQueryOf} at t). Keys as healthByJob's. Known
 * answers in `known` are not asked again: a job's divergence step never changes.
 */
export async function divergenceSteps(
  health: ReadonlyMap<string, JobHealth>,
  jobs: readonly Pick<FleetJob, 'tenant' | 'jobId'>[],
  known: ReadonlyMap<string, number | null>,
  stepAt: (job: Pick<FleetJob, 'tenant' | 'jobId'>, t: number) => Promise<number | null>,
): Promise<Map<string, number | null>> {
  const out = new Map(known);
  await Promise.all(
    jobs.map(async (j) => {
      const key = `${j.tenant}/${j.jobId}`;
      const cause = health.get(key)?.cause;
      if (cause?.kind !== 'diverged' || alertName(cause.alert) !== 'TrainingNaN' || out.has(key)) return;
      out.set(key, await stepAt(j, cause.alert.activeAtMs).catch(() => null));
    }),
  );
  return out;
}

/**
 * When a job's step last advanced at or before `t`: the time of the first point at the step it was stuck on,
 * from a curve with the step at each point. null when the curve has no steps there.
 */
export function lastStepChange(
  curve: { readonly t: readonly number[]; readonly step: readonly (number | null)[] | null },
  t: number,
): number | null {
  if (!curve.step) return null;
  let since: number | null = null;
  let current: number | null = null;
  for (let k = 0; k < curve.t.length && curve.t[k]! <= t; k++) {
    const s = curve.step[k];
    if (s === null || s === undefined) continue;
    if (s !== current) {
      current = s;
      since = curve.t[k]!;
    }
  }
  return since;
}
